"""Users and departments: user.get, user.search, department.get (user.current is the core's).

Users print as the portal prints them: ids as strings, ``ACTIVE`` a boolean,
``UF_DEPARTMENT`` a list of ints, dates ISO with the portal's offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakeportal.api import Call, Page, flag, method
from fakeportal.state import Portal

from . import common, query

USER_KINDS = {
    "ID": "int",
    "UF_DEPARTMENT": "list_int",
    "LAST_LOGIN": "datetime",
    "DATE_REGISTER": "datetime",
}
HIDDEN = {"IS_ADMIN"}
USER_PARAMS = {"sort", "order", "filter", "admin_mode", "select", "image_resize", "start", "auth"}


def user_view(portal: Portal, row: dict[str, Any], select: list[str] | None = None) -> dict:
    view: dict[str, Any] = {}
    for key, value in row.items():
        if key in HIDDEN or (select and key not in select and key != "ID"):
            continue
        if key == "UF_DEPARTMENT":
            view[key] = [int(v) for v in value or []]
        elif key == "ACTIVE":
            view[key] = bool(value)
        else:
            view[key] = common.str_scalar(value, USER_KINDS.get(key, "str"), portal)
    return view


def _resolve(portal: Portal, name: str) -> str | None:
    upper = name.upper()
    fields = next(iter(portal.table("user").values()), {})
    return upper if upper in fields and upper not in HIDDEN else None


def _users_page(call: Call, filter_: dict[str, Any]) -> Page:
    portal = call.portal
    sort = call.get("sort")
    order = {str(sort): str(call.get("order") or "ASC")} if sort else {"ID": "ASC"}
    find = filter_.pop("FIND", None)
    department_name = filter_.pop("UF_DEPARTMENT_NAME", None)
    active = _active_filter(filter_)
    rows = [r for r in portal.table("user").values() if active(r)]
    if find:
        needle = str(find).lower()
        rows = [
            r
            for r in rows
            if any(
                needle in str(r.get(k) or "").lower()
                for k in ("NAME", "LAST_NAME", "SECOND_NAME", "EMAIL", "WORK_POSITION")
            )
        ]
    if department_name:
        needle = str(department_name).lower()
        ids = {d["ID"] for d in portal.table("department").values() if needle in d["NAME"].lower()}
        rows = [r for r in rows if set(r.get("UF_DEPARTMENT") or []) & ids]
    page_rows, total, nxt = query.run_list(
        portal,
        rows,
        filter_=filter_,
        order=order,
        start=call.get("start"),
        resolve=lambda n: _resolve(portal, n),
        kinds=lambda f: USER_KINDS.get(f, "str"),
    )
    select = call.get("select")
    select = [str(s).upper() for s in select] if isinstance(select, list) and select else None
    return Page([user_view(portal, r, select) for r in page_rows], total, nxt)


def _active_filter(filter_: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """The ``ACTIVE`` conditions (also ``=ACTIVE``, ``!ACTIVE``), taken out of ``filter_``:
    the Y/N flag, ``true``/``Y`` keeps working users, ``false``/``N`` the fired ones. The
    generic filter would compare the stored boolean with a string and match nothing; an
    unreadable value filters nothing."""
    tests: list[tuple[bool, bool]] = []  # (wanted, equal)
    for key in [k for k in filter_ if query.split_op(str(k))[1].upper() == "ACTIVE"]:
        op = query.split_op(str(key))[0]
        wanted = flag(filter_.pop(key), None)
        if wanted is not None and op in ("=", "!", "!="):
            tests.append((wanted, op == "="))
    return lambda row: all(
        (flag(row.get("ACTIVE"), True) == wanted) == equal for wanted, equal in tests
    )


def _filter(call: Call) -> dict[str, Any]:
    raw = call.get("FILTER")
    filter_ = dict(raw) if isinstance(raw, dict) else {}
    for key, value in call.params.items():
        if key.lower() not in USER_PARAMS and not key.startswith("__"):
            filter_[key] = value  # user.get also takes field filters at the top level
    return {str(k).upper() if k[:1] not in "<>=!%@" else k: v for k, v in filter_.items()}


@method("user.get", scope="user")
def user_get(call: Call) -> Page:
    return _users_page(call, _filter(call))


@method("user.search", scope="user")
def user_search(call: Call) -> Page:
    return _users_page(call, _filter(call))


DEPARTMENT_KINDS = {"ID": "int", "SORT": "int", "PARENT": "int", "UF_HEAD": "int"}
DEPARTMENT_FILTERS = ("ID", "NAME", "SORT", "PARENT", "UF_HEAD")


@method("department.get", scope="department")
def department_get(call: Call) -> Page:
    # Filters are the upper-case fields, ordering the lower-case ``sort``/``order``: PHP keys
    # are case-sensitive, so ``sort=ID`` orders and ``SORT=500`` filters.
    portal = call.portal
    filter_ = {k: v for k, v in call.params.items() if k in DEPARTMENT_FILTERS}
    sort = call.params.get("sort")
    rows, total, nxt = query.run_list(
        portal,
        portal.table("department").values(),
        filter_=filter_,
        order={str(sort).upper(): str(call.params.get("order") or "ASC")} if sort else None,
        start=call.get("START") if call.get("START") is not None else call.get("start"),
        resolve=lambda n: (
            n.upper() if n.upper() in ("ID", "NAME", "SORT", "PARENT", "UF_HEAD") else None
        ),
        kinds=lambda f: DEPARTMENT_KINDS.get(f, "str"),
    )
    view = [
        {
            "ID": str(r["ID"]),
            "NAME": r["NAME"],
            "SORT": r["SORT"],
            **({"PARENT": str(r["PARENT"])} if r.get("PARENT") else {}),
            **({"UF_HEAD": str(r["UF_HEAD"])} if r.get("UF_HEAD") else {}),
        }
        for r in rows
    ]
    return Page(view, total, nxt)
