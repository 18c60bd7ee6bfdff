"""The settings page in the portal's language: the emulated portal opens it with its ``LANG``
(ru, pl, en; anything else falls back to English), and every form carries the page's language
back, so what a form answers (saved, refused, expired) reads in the same language.

With ``SETTINGS_PAGE_HTML_DIR`` set, the pages rendered here are written there as
``settings-<lang>.html`` (to look at, e.g. as a screenshot).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import pytest
import requests

HEADINGS = {
    "ru": [
        "<title>Настройки сервера роботов</title>",
        "<h1>Настройки сервера роботов</h1>",
        "<h2>Календарь портала</h2>",
        "<h2>SMS-шлюз</h2>",
        "<h2>Отслеживание дат</h2>",
        "<h3>Добавить отслеживание</h3>",
        "Часовой пояс (название IANA)",
        "Страна (код ISO; пусто — без праздников)",
        "Часовой пояс и страна портала определяют даты, рабочие дни и праздники",
        "Отслеживаемых дат пока нет.",
        "ID воронки (0 — общая воронка)",
        "Поле с датой",
        "Считать только рабочие дни",
        "<legend>Затем</legend>",
        "перевести сделку на стадию",
        "запустить триггер",
        "Гарантия истекает (warranty_expiring)",  # the trigger's own name in the portal's language
        '<button type="submit">Сохранить</button>',
        '<button type="submit">Добавить</button>',
    ],
    "pl": [
        "<title>Ustawienia serwera robotów</title>",
        "<h1>Ustawienia serwera robotów</h1>",
        "<h2>Kalendarz portalu</h2>",
        "<h2>Bramka SMS</h2>",
        "<h2>Obserwowane daty</h2>",
        "<h3>Dodaj obserwację</h3>",
        "Strefa czasowa (nazwa IANA)",
        "Kraj (kod ISO; puste — bez świąt)",
        "Strefa czasowa i kraj portalu wyznaczają daty, dni robocze i święta",
        "Nie ma jeszcze obserwowanych dat.",
        "ID lejka (0 — lejek ogólny)",
        "Pole z datą",
        "Licz tylko dni robocze",
        "<legend>Następnie</legend>",
        "przenieś deal do etapu",
        "uruchom wyzwalacz",
        "Gwarancja wygasa (warranty_expiring)",
        '<button type="submit">Zapisz</button>',
        '<button type="submit">Dodaj</button>',
    ],
    "en": [
        "<title>Robot server settings</title>",
        "<h1>Robot server settings</h1>",
        "<h2>Portal calendar</h2>",
        "<h2>SMS gateway</h2>",
        "<h2>Date watches</h2>",
        "<h3>Add a watch</h3>",
        "Time zone (IANA name)",
        "The portal's time zone and country decide dates",
        "No date watches yet.",
        "<legend>Then</legend>",
        "move the deal to the stage",
        "Warranty is expiring (warranty_expiring)",
        '<button type="submit">Save</button>',
        '<button type="submit">Add</button>',
    ],
}
ENGLISH = ["Portal calendar", "SMS gateway", "Date watches", ">Save<", "No date watches yet."]


def set_language(stack, lang: str) -> None:
    """The portal's language: what it sends as ``LANG`` when it opens the app's page."""
    with stack.world.lock:
        stack.portal.language = lang


def open_page(stack, user_id: int = 1) -> dict[str, Any]:
    return stack.admin.open_app_page(
        member_id=stack.member_id, client_id=stack.client_id,
        url=f"{stack.app_url}/settings", user_id=user_id,
    )  # fmt: skip


def text_of(body: str) -> str:
    return html.unescape(body)


def hidden(body: str, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'name="{name}" value="([^"]*)"', body)]


def send(stack, token: str, lang: str, action: str, **fields: str) -> requests.Response:
    """A form of the page as the browser sends it back: the hidden fields and the inputs."""
    data = {"member_id": stack.member_id, "form_token": token, "lang": lang, "action": action}
    return requests.post(f"{stack.app_url}/settings", data={**data, **fields}, timeout=10)


def keep(name: str, body: str) -> None:
    """Write a rendered page out when SETTINGS_PAGE_HTML_DIR is set."""
    folder = os.environ.get("SETTINGS_PAGE_HTML_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"settings-{name}.html").write_text(body, encoding="utf-8")


@pytest.mark.parametrize(("portal_lang", "lang"), [("ru", "ru"), ("pl", "pl"), ("en", "en"),
                                                    ("de", "en")])  # fmt: skip
def test_the_page_opens_in_the_portals_language(stack, portal_lang: str, lang: str) -> None:
    stack.install()
    set_language(stack, portal_lang)
    page = open_page(stack)
    assert page["status"] == 200, page["body"][:500]
    body = page["body"]
    assert f'<html lang="{lang}">' in body
    text = text_of(body)
    missing = [expected for expected in HEADINGS[lang] if expected not in text]
    assert not missing, missing
    if lang != "en":
        assert not [english for english in ENGLISH if english in text]
    forms = body.count("<form ")
    assert forms >= 3 and hidden(body, "lang") == [lang] * forms  # every form says the language


@pytest.mark.parametrize(
    ("lang", "refusal"),
    [
        ("ru", "Изменять настройки может только администратор портала."),
        ("pl", "Tylko administrator portalu może zmieniać ustawienia."),
        ("de", "Only a portal administrator can change the settings."),
    ],
)
def test_an_employee_is_refused_in_the_portals_language(stack, lang: str, refusal: str) -> None:
    stack.install()
    set_language(stack, lang)
    page = open_page(stack, user_id=2)  # a seeded employee, not an admin
    assert page["status"] == 403
    assert refusal in text_of(page["body"])
    assert f'<html lang="{"en" if lang == "de" else lang}">' in page["body"]
    assert "form_token" not in page["body"]


ANSWERS = {
    "ru": {
        "no_zone": "Не сохранено: укажите часовой пояс (название IANA, например Europe/Warsaw).",
        "calendar": "Сохранено: часовой пояс Europe/Warsaw, праздники страны PL.",
        "no_holidays": "Сохранено: часовой пояс Europe/Warsaw, без праздников.",
        "heading": "<h2>Календарь портала</h2>",
        "not_a_number": "Не добавлено: значение «число дней» должно быть целым числом.",
        "watching": "Отслеживание добавлено: ",
        "table": [
            "<th>Название</th>",
            "<th>Воронка</th>",
            "<th>Поле</th>",
            "<th>Правило</th>",
            "<th>Действие</th>",
            "<th>Последняя проверка</th>",
            "<td>перевести на стадию</td>",
            "<td>ещё не было</td>",
            '<button type="submit" class="secondary">Удалить</button>',
        ],
        "removed": "Отслеживание {id} удалено.",
        "gone": "Отслеживание {id} не найдено (возможно, оно уже удалено).",
        "sms": "Сохранено: SMS отправляются через SMS.ru.",
        "sms_page": [
            "URL для отчётов о доставке:",
            'placeholder="задан; пусто — без изменений"',
            "Номера без + считаются номерами страны PL (страна из календаря портала).",
        ],
        "no_gateway": "Выберите шлюз.",
        "expired": "Срок действия формы истёк. Откройте страницу заново.",
        "unknown": "Неизвестное действие.",
    },
    "pl": {
        "no_zone": "Nie zapisano: podaj strefę czasową (nazwę IANA, np. Europe/Warsaw).",
        "calendar": "Zapisano: strefa czasowa Europe/Warsaw, święta kraju PL.",
        "no_holidays": "Zapisano: strefa czasowa Europe/Warsaw, bez świąt.",
        "heading": "<h2>Kalendarz portalu</h2>",
        "not_a_number": "Nie dodano: wartość „liczba dni” musi być liczbą całkowitą.",
        "watching": "Dodano obserwację: ",
        "table": [
            "<th>Nazwa</th>",
            "<th>Lejek</th>",
            "<th>Pole</th>",
            "<th>Reguła</th>",
            "<th>Działanie</th>",
            "<th>Ostatnie sprawdzenie</th>",
            "<td>przenieś do etapu</td>",
            "<td>jeszcze nie było</td>",
            '<button type="submit" class="secondary">Usuń</button>',
        ],
        "removed": "Usunięto obserwację {id}.",
        "gone": "Nie znaleziono obserwacji {id} (może została już usunięta).",
        "sms": "Zapisano: SMS-y są wysyłane przez SMS.ru.",
        "sms_page": [
            "Adres URL raportów doręczenia:",
            'placeholder="ustawione; puste — bez zmian"',
            "Numery bez + są traktowane jako numery z kraju PL (kraj z kalendarza portalu).",
        ],
        "no_gateway": "Wybierz bramkę.",
        "expired": "Formularz wygasł. Otwórz stronę ponownie.",
        "unknown": "Nieznana akcja.",
    },
}


@pytest.mark.parametrize("lang", ["ru", "pl"])
def test_the_forms_answer_in_the_pages_language(stack, lang: str) -> None:
    said = ANSWERS[lang]
    stack.install()
    set_language(stack, lang)
    page = open_page(stack)
    assert page["status"] == 200
    [token] = set(hidden(page["body"], "form_token"))

    def answered(response: requests.Response, status: int, *expected: str) -> str:
        text = text_of(response.text)
        assert response.status_code == status, text[-1500:]
        assert f'<html lang="{lang}">' in response.text
        missing = [e for e in expected if e not in text]
        assert not missing, (missing, text[-2500:])
        return text

    refused = send(stack, token, lang, "calendar", timezone=" ", country="PL")
    answered(refused, 400, said["no_zone"], said["heading"], '<p class="note err">')
    assert hidden(refused.text, "lang") == [lang] * refused.text.count("<form ")
    assert stack.services.store.get_setting(stack.member_id, "calendar") is None

    answered(send(stack, token, lang, "calendar", timezone="Europe/Warsaw", country=""), 200,
             said["no_holidays"])  # fmt: skip
    answered(send(stack, token, lang, "calendar", timezone="Europe/Warsaw", country="pl"), 200,
             said["calendar"], '<p class="note ok">')  # fmt: skip

    watch = {"name": "Гарантия" if lang == "ru" else "Gwarancja", "category_id": "0",
             "field": "UF_CRM_WARRANTY_END", "within_days": "3", "working_days": "1",
             "then": "move", "stage": "LOSE"}  # fmt: skip
    answered(send(stack, token, lang, "add_watch", **{**watch, "within_days": "three"}), 400,
             said["not_a_number"])  # fmt: skip
    added = answered(send(stack, token, lang, "add_watch", **watch), 200,
                     said["watching"], *said["table"])  # fmt: skip
    [watch_id] = re.findall(r'<tr id="watch-(\d+)">', added)

    answered(send(stack, token, lang, "sms"), 400, said["no_gateway"])
    saved = answered(send(stack, token, lang, "sms", gateway="smsru", **{"smsru.api_id": "k"}),
                     200, said["sms"], *said["sms_page"])  # fmt: skip
    keep(lang, saved)  # the fullest page: a watch listed, a gateway chosen

    answered(send(stack, token, lang, "remove_watch", watch_id=watch_id), 200,
             said["removed"].format(id=watch_id))  # fmt: skip
    answered(send(stack, token, lang, "remove_watch", watch_id=watch_id), 400,
             said["gone"].format(id=watch_id))  # fmt: skip
    answered(send(stack, token, lang, "drop_everything"), 400, said["unknown"])
    expires, _, signature = token.partition(".")
    answered(send(stack, f"{int(expires) + 60}.{signature}", lang, "calendar"), 403,
             said["expired"])  # fmt: skip
