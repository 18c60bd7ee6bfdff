"""The settings page's catalogues (app/translations): complete, faithful and compiled.

The messages are extracted afresh (Babel's own ``pybabel extract`` with the project's
babel.cfg) into a temporary directory, so a string marked in a template or in Python but not
yet in the catalogues fails here: run ``scripts/translations update``, translate, then
``scripts/translations compile``.
"""

from __future__ import annotations

import gettext
import io
import logging
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "app" / "translations"
LANGUAGES = ("ru", "pl")
# Python's %-format conversions: %(name)s, %s, %d, %% ...
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def ids(catalog: Catalog) -> set[str]:
    return {m.id for m in catalog if m.id}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """What ``pybabel extract -F babel.cfg`` finds in the project now."""
    pot = tmp_path_factory.mktemp("translations") / "messages.pot"
    babel_log = logging.getLogger("babel")
    handlers = list(babel_log.handlers)
    try:
        CommandLineInterface().run(
            ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-o", str(pot), str(ROOT)]
        )
    finally:
        babel_log.handlers[:] = handlers  # the CLI adds its own console handler
    catalog = read_catalog(pot)
    assert len(ids(catalog)) > 40
    return catalog


@pytest.fixture(scope="module", params=LANGUAGES)
def catalog(request: pytest.FixtureRequest) -> Catalog:
    return read_catalog(TRANSLATIONS / request.param / "LC_MESSAGES" / "messages.po", request.param)


def test_extraction_reads_templates_and_python(extracted: Catalog) -> None:
    found = ids(extracted)
    assert "Robot server settings" in found  # app/templates
    assert "Portal calendar" in found  # a capability's own template
    assert "Delivery report URL:" in found  # an expression inside a Jinja tag
    assert "Only a portal administrator can change the settings." in found  # app/pages.py
    assert "Saved: time zone %(tz)s, no public holidays." in found  # handlers/
    assert "Send URL" in found  # a gateway's field label, marked with N_
    assert all("python-format" in m.flags for m in extracted if m.id and "%(" in m.id)


def test_the_committed_template_is_up_to_date(extracted: Catalog) -> None:
    committed = read_catalog(TRANSLATIONS / "messages.pot")
    assert ids(committed) == ids(extracted), "run scripts/translations update"


def test_every_message_is_translated_with_the_same_placeholders(
    extracted: Catalog, catalog: Catalog
) -> None:
    lang = catalog.locale_identifier
    assert ids(catalog) == ids(extracted), f"{lang}: run scripts/translations update"
    problems = []
    for message in extracted:
        if not message.id:
            continue
        entry = catalog.get(message.id)
        if entry is None:
            problems.append(f"untranslated: {message.id!r}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
            continue
        if message.pluralizable:
            # Every form of the language (Plural-Forms' nplurals), each a whole translation
            # with the placeholders of the English plural: a language's "one" form also
            # serves 21, 31... (Russian), so it must say %(num)d too.
            english, forms = message.id[1], entry.string
            if not isinstance(forms, tuple) or len(forms) != catalog.num_plurals:
                problems.append(f"not {catalog.num_plurals} plural forms: {message.id!r}")
                continue
        else:
            english, forms = message.id, (entry.string,)
        for form in forms:
            if not form or not str(form).strip():
                problems.append(f"untranslated: {message.id!r}")
            elif placeholders(form) != placeholders(english):
                problems.append(f"placeholders differ: {message.id!r} -> {form!r}")
            elif form in (message.id if message.pluralizable else (message.id,)) and re.search(
                r"[a-z]{3}", form
            ):
                problems.append(f"left in English: {message.id!r}")
    assert not problems, f"{lang}:\n" + "\n".join(problems)
    assert not catalog.fuzzy  # a fuzzy header would make pybabel compile skip the catalogue


# Which plural form the language uses for a number (CLDR's rules for the gettext header):
# Russian one (1, 21, 101; not 11), few (2-4, 22-24; not 12-14), many (0, 5-20, 25...);
# Polish one (1 only), few (2-4, 22-24; not 12-14), many (0, 5-21, 25...).
PLURAL_FORMS = {
    "ru": {1: 0, 21: 0, 101: 0, 2: 1, 4: 1, 22: 1, 34: 1, 0: 2, 5: 2, 11: 2, 12: 2, 14: 2, 111: 2},
    "pl": {1: 0, 2: 1, 4: 1, 22: 1, 34: 1, 0: 2, 5: 2, 11: 2, 12: 2, 14: 2, 21: 2, 101: 2, 111: 2},
}


def test_the_plural_forms_header_is_the_languages(catalog: Catalog) -> None:
    lang = catalog.locale_identifier
    assert catalog.num_plurals == 3
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    plural = gettext.GNUTranslations(compiled).plural  # the header's formula, as gettext reads it
    got = {n: plural(n) for n in PLURAL_FORMS[lang]}
    assert got == PLURAL_FORMS[lang], f"{lang}: Plural-Forms header"


def test_plural_messages_are_extracted_with_both_english_forms(extracted: Catalog) -> None:
    plurals = {m.id for m in extracted if m.pluralizable}
    assert ("%(num)d working day before the date", "%(num)d working days before the date") in (
        plurals
    )
    assert all(singular and plural_ for singular, plural_ in plurals)


def test_the_committed_mo_files_are_compiled_from_the_po_files(catalog: Catalog) -> None:
    lang = catalog.locale_identifier
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)
    mo = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo"
    with mo.open("rb") as f:
        committed = gettext.GNUTranslations(f)
    assert committed._catalog == expected._catalog, f"{lang}: run scripts/translations compile"
    assert committed.gettext("Save") != "Save"
