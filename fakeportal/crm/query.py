"""Filtering, ordering, select and paging for list methods, shared by all entities.

Filters use the key prefixes Bitrix24 spells: ``=`` (or none) equality, ``!``/``!=`` not
equal, ``>``, ``>=``, ``<``, ``<=``, ``%`` substring (case-insensitive), ``!%`` its negation,
``=%``/``%=`` LIKE with the caller's own ``%`` wildcards, ``@`` IN, ``!@`` NOT IN. Values are
compared by the field's kind: numbers numerically, dates and date-times as instants
(``"2026-01-31"`` is midnight in the portal's time zone), the rest as strings. An empty
string matches an empty field. ``crm.item.list`` also takes nested groups with
``logic: OR``.

Records are the stored dicts (canonical field names). Each entity gives a ``resolve``
function from a name as sent to a canonical name (or None when unknown) and the kinds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from fakeportal.api import Page
from fakeportal.state import Portal

from . import common

PAGE_SIZE = 50

# longest first, so "!@" is not read as "!" + "@FIELD"
_OPS = ("!@", "!=", "!%", ">=", "<=", "=%", "%=", "=", "!", ">", "<", "%", "@")

NUMERIC = {"int", "float", "money"}
TEMPORAL = {"date", "datetime"}

Resolver = Callable[[str], str | None]
Record = dict[str, Any]


def split_op(key: str) -> tuple[str, str]:
    """``">=OPPORTUNITY"`` -> (">=", "OPPORTUNITY"); no prefix -> ("=", key)."""
    for op in _OPS:
        if key.startswith(op) and len(key) > len(op):
            return op, key[len(op) :]
    return "=", key


def _coerce(portal: Portal, kind: str, value: Any) -> Any:
    """A filter value converted to the field's kind (None for empty)."""
    if value is None or value == "":
        return None
    try:
        if kind == "int" or kind == "list_int":
            return common.to_int(value)
        if kind in ("float", "money"):
            return common.to_float(value)
        if kind == "datetime":
            return common.parse_datetime(portal, value)
        if kind == "date":
            return common.parse_datetime(portal, value)
    except (TypeError, ValueError):
        return _Unmatchable
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


class _UnmatchableType:
    """A filter value that cannot be converted to the field's kind: matches nothing."""


_Unmatchable = _UnmatchableType()


def _stored(portal: Portal, kind: str, value: Any) -> Any:
    """A stored value in comparable form (dates become aware datetimes)."""
    if kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return common.parse_datetime(portal, value)
    if kind in NUMERIC and isinstance(value, str):
        try:
            return common.to_float(value)
        except ValueError:
            return value
    return value


def _like(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in pattern.split("%")]
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _compare(op: str, have: Any, want: Any) -> bool:
    """One comparison of a single stored value (never a list) with a filter value."""
    if want is _Unmatchable:
        return False
    if op == "=":
        if want is None:
            return have is None or have == ""
        return have == want
    if op == "%":
        return have is not None and str(want).lower() in str(have).lower()
    if op == "like":
        return have is not None and bool(_like(str(want)).match(str(have)))
    if have is None or want is None:
        return False
    try:
        if op == ">":
            return have > want
        if op == ">=":
            return have >= want
        if op == "<":
            return have < want
        if op == "<=":
            return have <= want
    except TypeError:
        return str(have) > str(want) if op == ">" else False
    raise ValueError(op)


def _match_one(portal: Portal, record: Record, field: str, kind: str, op: str, value: Any) -> bool:
    have = record.get(field)
    values = have if isinstance(have, list) else [have]
    values = [_stored(portal, kind, v) for v in values]
    if isinstance(have, list) and not have:
        values = [None]
    negate = op in ("!", "!=", "!@", "!%")
    base = {"!": "=", "!=": "=", "!@": "@", "!%": "%", "=%": "like", "%=": "like"}.get(op, op)
    if base == "@":
        wanted = value if isinstance(value, (list, tuple)) else _listish(value)
        wanted_c = [_coerce(portal, kind, w) for w in wanted]
        hit = any(_compare("=", v, w) for v in values for w in wanted_c if w is not None)
    elif base == "=" and isinstance(value, (list, tuple)):
        # Bitrix treats an array value with "=" (or no prefix) as IN
        wanted_c = [_coerce(portal, kind, w) for w in value]
        hit = any(_compare("=", v, w) for v in values for w in wanted_c)
    elif base in ("%", "like"):
        hit = any(_compare(base, v, "" if value is None else str(value)) for v in values)
    else:
        want = _coerce(portal, kind, value)
        hit = any(_compare(base, v, want) for v in values)
    return not hit if negate else hit


def _listish(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",")]
    return [value]


def compile_filter(
    portal: Portal,
    filter_: Any,
    resolve: Resolver,
    kinds: Callable[[str], str],
    unknown: Callable[[str], None] | None = None,
) -> Callable[[Record], bool]:
    """A predicate from a Bitrix filter object (AND of its keys; nested OR groups allowed)."""
    if not isinstance(filter_, dict) or not filter_:
        return lambda record: True
    tests: list[Callable[[Record], bool]] = []
    logic = "AND"
    for raw_key, value in filter_.items():
        key = str(raw_key)
        if key.upper() == "LOGIC":
            logic = str(value).upper()
            continue
        if isinstance(value, dict) and (key.isdigit() or key == ""):
            tests.append(compile_filter(portal, value, resolve, kinds, unknown))
            continue
        op, name = split_op(key)
        field = resolve(name)
        if field is None:
            if unknown:
                unknown(key)
            continue
        kind = kinds(field)
        tests.append(lambda r, f=field, k=kind, o=op, v=value: _match_one(portal, r, f, k, o, v))
    if logic == "OR":
        return lambda record: any(t(record) for t in tests) if tests else True
    return lambda record: all(t(record) for t in tests)


def _sort_key(portal: Portal, value: Any, kind: str) -> tuple[int, Any]:
    value = _stored(portal, kind, value)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return (0, 0)
    if isinstance(value, datetime):
        return (1, value.timestamp())
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value).lower())


def apply_order(
    portal: Portal,
    records: list[Record],
    order: Any,
    resolve: Resolver,
    kinds: Callable[[str], str],
    id_field: str = "ID",
) -> list[Record]:
    """Records sorted as ``order`` asks ({FIELD: ASC|DESC}); ties by id ascending."""
    result = sorted(records, key=lambda r: r.get(id_field) or 0)
    if not isinstance(order, dict):
        return result
    for raw_key, direction in reversed(list(order.items())):
        field = resolve(str(raw_key))
        if field is None:
            continue
        kind = kinds(field)
        desc = str(direction).strip().upper() == "DESC"
        result.sort(key=lambda r, f=field, k=kind: _sort_key(portal, r.get(f), k), reverse=desc)
    return result


def parse_start(value: Any) -> int:
    """The ``start`` parameter: an offset, or -1 for 'no count'; junk means 0."""
    try:
        start = common.to_int(value)
    except (TypeError, ValueError):
        return 0
    if start is None:
        return 0
    return -1 if start < 0 else start


def paginate(rows: list[Any], start: Any, wrap: str | None = None) -> Page:
    """One 50-row page with the portal's ``total``/``next`` (none of them for start=-1)."""
    offset = parse_start(start)
    if offset == -1:
        return Page(rows[:PAGE_SIZE], 0, None, wrap)
    page = rows[offset : offset + PAGE_SIZE]
    nxt = offset + PAGE_SIZE if offset + PAGE_SIZE < len(rows) else None
    return Page(page, len(rows), nxt, wrap)


def select_fields(
    select: Any,
    standard: Iterable[str],
    user_fields: Iterable[str],
    resolve: Resolver,
    default: tuple[str, ...] = ("*", "UF_*"),
    always: Iterable[str] = ("ID",),
) -> list[str]:
    """Canonical names a row shows: ``*`` = standard fields, ``UF_*`` = user fields."""
    if isinstance(select, dict):
        select = list(select.values())
    if isinstance(select, str):
        select = [select]
    if not select:
        select = list(default)
    standard = list(standard)
    user_fields = list(user_fields)
    chosen: list[str] = []
    for raw in select:
        name = str(raw)
        if name == "*":
            chosen.extend(standard)
        elif name.upper() == "UF_*":
            chosen.extend(user_fields)
        else:
            field = resolve(name)
            if field is not None:
                chosen.append(field)
    for name in always:
        if name not in chosen:
            chosen.insert(0, name)
    seen: set[str] = set()
    return [f for f in chosen if not (f in seen or seen.add(f))]


def run_list(
    portal: Portal,
    records: Iterable[Record],
    *,
    filter_: Any,
    order: Any,
    start: Any,
    resolve: Resolver,
    kinds: Callable[[str], str],
    id_field: str = "ID",
    unknown: Callable[[str], None] | None = None,
) -> tuple[list[Record], int, int | None]:
    """Filter, order and page stored records: (page rows, total, next)."""
    predicate = compile_filter(portal, filter_, resolve, kinds, unknown)
    matched = [r for r in records if predicate(r)]
    ordered = apply_order(portal, matched, order, resolve, kinds, id_field)
    page = paginate(ordered, start)
    return page.rows, page.total, page.next
