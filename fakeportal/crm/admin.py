"""The CRM's admin actions (``POST /_admin/<action>``, JSON body): funnels, deals, contacts,
users, departments and the absence chart, user fields, tasks, and a dump of a portal's
tables. Changes made here carry no user (``user_id`` None) unless the body names one, so
events go out without user tokens. Task status actions name the user who acts
(``complete_task(task_id=7, user_id=4)``: "the accountant completes it in the UI"), with
that user's rights.

Admin actions are the portal's UI, not REST calls of an app: their changes always reach
offline queues (no ``auth_connector`` applies).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from typing import Any

from fakeportal.admin import find_portal
from fakeportal.api import admin as _register
from fakeportal.api import flag
from fakeportal.exceptions import ApiError
from fakeportal.state import World

from . import absence, categories, contacts, deals, seed, tasks, userfields


def admin(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an admin action whose portal errors answer as the admin surface's 400s."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(handler)
        def run(world: World, *args: Any, **body: Any) -> Any:
            try:
                return handler(world, *args, **body)
            except ApiError as err:
                raise ValueError(f"{err.code}: {err.description}") from err

        return _register(name)(run)

    return decorate


def _stage_specs(stages: Any) -> list[tuple[str, str, str | None]] | None:
    """Stages as JSON: ``[["NEW", "New", "P"], ...]`` or ``[{"id": .., "name": .., ...}]``."""
    if stages is None:
        return None
    result = []
    for item in stages:
        if isinstance(item, dict):
            suffix = item.get("id") or item.get("status_id") or item.get("STATUS_ID")
            name = item.get("name") or item.get("NAME") or suffix
            sem = item.get("semantics") or item.get("SEMANTICS")
        else:
            suffix, name, *rest = list(item) + [None]
            sem = rest[0] if rest else None
        if not suffix:
            raise ValueError(f"stage without id: {item!r}")
        result.append((str(suffix), str(name), sem))
    return result


@admin("create_funnel")
def create_funnel(
    world: World,
    name: str,
    stages: list[Any] | None = None,
    member_id: str | None = None,
    sort: int = 500,
) -> dict[str, Any]:
    """A deal funnel; returns its id and its stages' STATUS_IDs."""
    with world.lock:
        portal = find_portal(world, member_id)
        category_id = categories.create_category(portal, name, _stage_specs(stages), sort=sort)
        rows = categories.stages(portal, categories.DEAL, category_id)
        return {
            "id": category_id,
            "stages": [
                {"STATUS_ID": r["STATUS_ID"], "NAME": r["NAME"], "SEMANTICS": r["SEMANTICS"]}
                for r in rows
            ],
        }


@admin("create_deal")
def create_deal(
    world: World, fields: dict[str, Any], member_id: str | None = None, user_id: int | None = None
) -> dict[str, Any]:
    with world.lock:
        portal = find_portal(world, member_id)
        deal_id = deals.create_deal(portal, fields, user_id)
        return deals.get_deal(portal, deal_id)


@admin("update_deal")
def update_deal(
    world: World,
    id: int,
    fields: dict[str, Any],
    member_id: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    with world.lock:
        portal = find_portal(world, member_id)
        deals.update_deal(portal, int(id), fields, user_id)
        return deals.get_deal(portal, int(id))


@admin("move_deal")
def move_deal(
    world: World,
    id: int,
    stage_id: str,
    member_id: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Into a stage (moving funnels when the stage is another funnel's)."""
    with world.lock:
        portal = find_portal(world, member_id)
        deals.move_deal(portal, int(id), stage_id, user_id)
        return deals.get_deal(portal, int(id))


@admin("get_deal")
def get_deal(world: World, id: int, member_id: str | None = None) -> dict[str, Any]:
    with world.lock:
        return deals.get_deal(find_portal(world, member_id), int(id))


@admin("list_deals")
def list_deals(
    world: World,
    member_id: str | None = None,
    filter: dict[str, Any] | None = None,
    select: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Every matching deal (no paging)."""
    with world.lock:
        portal = find_portal(world, member_id)
        rows: list[dict[str, Any]] = []
        start = 0
        while True:
            page = deals.list_deals(
                portal, filter_=filter, order={"ID": "ASC"}, select=select, start=start
            )
            rows.extend(page.rows)
            if page.next is None:
                return rows
            start = page.next


@admin("create_contact")
def create_contact(
    world: World, fields: dict[str, Any], member_id: str | None = None, user_id: int | None = None
) -> dict[str, Any]:
    with world.lock:
        portal = find_portal(world, member_id)
        contact_id = contacts.create_contact(portal, fields, user_id)
        return contacts.get_contact(portal, contact_id)


@admin("create_company")
def create_company(
    world: World, fields: dict[str, Any], member_id: str | None = None, user_id: int | None = None
) -> dict[str, Any]:
    with world.lock:
        portal = find_portal(world, member_id)
        company_id = contacts.create_company(portal, fields, user_id)
        return contacts.get_company(portal, company_id)


@admin("create_user")
def create_user(
    world: World, fields: dict[str, Any], member_id: str | None = None
) -> dict[str, Any]:
    """A portal user (NAME, LAST_NAME, EMAIL, UF_DEPARTMENT, WORK_POSITION, IS_ADMIN...)."""
    with world.lock:
        portal = find_portal(world, member_id)
        user_id = seed.new_user(portal, {str(k).upper(): v for k, v in fields.items()})
        return {"ID": str(user_id)}


@admin("update_user")
def update_user(
    world: World, id: int, fields: dict[str, Any], member_id: str | None = None
) -> dict[str, Any]:
    """Change a user as the HR admin does: ``ACTIVE: "N"`` fires them, ``UF_DEPARTMENT``
    moves them; ``ACTIVE`` and ``IS_ADMIN`` are Y/N flags."""
    with world.lock:
        portal = find_portal(world, member_id)
        row = portal.table("user").get(int(id))
        if row is None:
            raise LookupError(f"no user {id}")
        for key, value in fields.items():
            name = str(key).upper()
            if name in ("ID", "DATE_REGISTER"):
                continue
            if name in ("ACTIVE", "IS_ADMIN"):
                row[name] = flag(value, name == "ACTIVE")
            elif name == "UF_DEPARTMENT":
                row[name] = [int(v) for v in (value if isinstance(value, list) else [value])]
            else:
                row[name] = value
        return {"ID": str(row["ID"])}


@admin("create_department")
def create_department(
    world: World,
    name: str,
    parent: int | None = None,
    head: int | None = None,
    sort: int = 500,
    member_id: str | None = None,
) -> dict[str, Any]:
    """A department of the company structure (``parent`` None: under the root, 1), with its
    head (``UF_HEAD``); its ID as department.get prints it."""
    with world.lock:
        portal = find_portal(world, member_id)
        table = portal.table("department")
        parent_id = 1 if parent is None else int(parent)
        if parent_id not in table:
            raise LookupError(f"no department {parent_id}")
        if head is not None and int(head) not in portal.table("user"):
            raise LookupError(f"no user {head}")
        department_id = max(table, default=0) + 1
        table[department_id] = {
            "ID": department_id,
            "NAME": name,
            "SORT": int(sort),
            "PARENT": parent_id,
            "UF_HEAD": int(head) if head else None,
        }
        return {"ID": str(department_id)}


@admin("add_absence")
def add_absence(
    world: World,
    user_id: int,
    date_from: str,
    date_to: str,
    type: str = "VACATION",
    name: str = "",
    member_id: str | None = None,
) -> dict[str, Any]:
    """An entry of the absence chart: ``user_id`` is away from ``date_from`` to ``date_to``
    (both days included; ``type`` VACATION, ASSIGNMENT, LEAVESICK...). The messenger's user
    objects then show ``absent`` (im.user.get, im.user.list.get)."""
    with world.lock:
        portal = find_portal(world, member_id)
        absence_id = absence.add_absence(
            portal, int(user_id), date_from, date_to, kind=type, name=name
        )
        return absence.absence_view(portal, portal.table(absence.TABLE)[absence_id])


@admin("delete_absence")
def delete_absence(world: World, id: int, member_id: str | None = None) -> bool:
    """Remove an entry of the absence chart (the user is back)."""
    with world.lock:
        portal = find_portal(world, member_id)
        return portal.table(absence.TABLE).pop(int(id), None) is not None


@admin("add_deal_userfield")
def add_deal_userfield(
    world: World,
    name: str,
    type: str = "string",
    member_id: str | None = None,
    label: str | None = None,
    multiple: bool = False,
    list: list[Any] | None = None,
) -> dict[str, Any]:
    """A deal user field (``name`` gets the UF_CRM_ prefix)."""
    with world.lock:
        portal = find_portal(world, member_id)
        field_id = userfields.add_user_field(
            portal, "DEAL", name, type, label=label, multiple=multiple, list_values=list
        )
        return userfields.view(userfields.table(portal)[field_id])


@admin("create_task")
def create_task(
    world: World, fields: dict[str, Any], member_id: str | None = None, user_id: int | None = None
) -> dict[str, Any]:
    """A task as tasks.task.add makes it (upper-case fields); the reply's ``task`` form."""
    with world.lock:
        portal = find_portal(world, member_id)
        task_id = tasks.create_task(portal, fields, user_id)
        return tasks.task_view(portal, tasks.table(portal)[task_id])


@admin("get_task")
def get_task(
    world: World, task_id: int, member_id: str | None = None, select: list[str] | None = None
) -> dict[str, Any]:
    """A task as tasks.task.get shows it (``select`` as there, e.g. ``["*", "UF_CRM_TASK"]``)."""
    with world.lock:
        portal = find_portal(world, member_id)
        return tasks.task_view(portal, tasks.require_task(portal, task_id), tasks.select(select))


def _task_action(world: World, action: str, task_id: int, user_id: int, member_id: str | None):
    with world.lock:
        portal = find_portal(world, member_id)
        tasks.change_status(portal, task_id, action, int(user_id))
        return tasks.task_view(portal, tasks.require_task(portal, task_id))


@admin("start_task")
def start_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """``user_id`` starts the task (-> 3), as tasks.task.start."""
    return _task_action(world, "start", task_id, user_id, member_id)


@admin("pause_task")
def pause_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """``user_id`` pauses the task (3 -> 2), as tasks.task.pause."""
    return _task_action(world, "pause", task_id, user_id, member_id)


@admin("complete_task")
def complete_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """``user_id`` completes the task (-> 5; 4 under TASK_CONTROL unless the creator)."""
    return _task_action(world, "complete", task_id, user_id, member_id)


@admin("defer_task")
def defer_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """``user_id`` defers the task (-> 6), as tasks.task.defer."""
    return _task_action(world, "defer", task_id, user_id, member_id)


@admin("renew_task")
def renew_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """``user_id`` renews a closed or deferred task (-> 2; closedBy/closedDate cleared)."""
    return _task_action(world, "renew", task_id, user_id, member_id)


@admin("approve_task")
def approve_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """The creator (or an admin) accepts a task awaiting control (4 -> 5)."""
    return _task_action(world, "approve", task_id, user_id, member_id)


@admin("disapprove_task")
def disapprove_task(
    world: World, task_id: int, user_id: int, member_id: str | None = None
) -> dict[str, Any]:
    """The creator (or an admin) sends a task awaiting control back (4 -> 2)."""
    return _task_action(world, "disapprove", task_id, user_id, member_id)


@admin("delete_task")
def delete_task(world: World, task_id: int, user_id: int, member_id: str | None = None) -> bool:
    """``user_id`` (the creator or an admin) deletes the task; ONTASKDELETE fires."""
    with world.lock:
        tasks.delete_task(find_portal(world, member_id), task_id, int(user_id))
        return True


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@admin("dump")
def dump(world: World, member_id: str | None = None, table: str | None = None) -> dict[str, Any]:
    """A portal's tables (or one of them) as stored."""
    with world.lock:
        portal = find_portal(world, member_id)
        names = [table] if table else sorted(portal.tables)
        return {
            name: {str(k): _plain(v) for k, v in portal.tables.get(name, {}).items()}
            for name in names
        }
