"""Give the deal to someone of a department: in turn, to whoever has the fewest open deals, or
to the department's head; people who are fired or away today are skipped.

The solar installer sends every deal that needs a loan to its finance department; the
experts' firm gives every inquiry to one of its divisions, whose staff pick it up. The
department is an ID of the company structure (``department.get``), with its sub-departments
when asked. Who is away comes from the absence chart, as the portal shows it: the messenger's
``absent`` (the end of the current absence, PROTOCOL §15). "In turn" is fair across workers:
the position is kept by the ``assignment`` capability (``next_in_turn``). "Fewest open deals"
counts each person's deals in progress (``STAGE_SEMANTIC_ID`` P) with one ``crm.deal.list``
per person in the same batch, reading only ``total``; a tie goes to whoever's turn it is.

One batch reads the structure, the department's people and the deal; a second one asks
who of them is away (and their open deals): it needs their IDs, and a batch command can take
one value of an earlier command's result, not a column of IDs, so it cannot join the first.
A third batch writes: the responsible person, the stage when one is given, the notification.
Nobody at work fails the robot with the reason: the deal is never given to the admin instead.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from app.context import RobotContext
from app.errors import PortalError, RobotFailed
from app.registry import Property, Robot
from handlers import assignment

PAGE = 50  # rows in a list page
ROUND_ROBIN, FEWEST_OPEN, HEAD = "round_robin", "fewest_open", "head"
PEOPLE_FIELDS = ["ID", "NAME", "LAST_NAME", "ACTIVE", "UF_DEPARTMENT"]
NAMED = 5  # people named in a failure message


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    department_id, rule = p["department"], p["rule"]
    if department_id <= 0:
        raise RobotFailed("property department: give a department ID of the company structure")
    subtree = bool(p["subdepartments"]) and rule != HEAD
    stage = (p["stage_id"] or "").strip()
    department, people, deal = read_department(ctx, department_id, subtree, stage)
    title = _department_title(department)

    # Who is at work today, and (fewest open deals) how many deals each one has open.
    if rule == HEAD:
        head = _int(department.get("UF_HEAD"))
        if not head:
            raise RobotFailed(f"{title} has no head in the company structure")
        candidates = [head]
    else:
        candidates = sorted(people)
        if not candidates:
            scope = " or its sub-departments" if subtree else ""
            raise RobotFailed(f"{title}{scope} has no active employees")
    checks: dict[str, tuple[str, dict[str, Any]]] = {}
    if p["skip_absent"]:
        checks["absence"] = ("im.user.list.get", {"ID": candidates})
    if rule == HEAD and candidates[0] not in people:  # a head from outside the department
        checks["head"] = (
            "user.get",
            {"FILTER": {"ID": candidates[0], "ACTIVE": True}, "select": PEOPLE_FIELDS},
        )
    if rule == FEWEST_OPEN:
        for user_id in candidates:
            checks[f"open_{user_id}"] = (
                "crm.deal.list",
                {
                    "filter": {"ASSIGNED_BY_ID": user_id, "STAGE_SEMANTIC_ID": "P"},
                    "select": ["ID"],
                },
            )
    got = ctx.portal.batch(checks) if checks else None
    if got is not None:
        got.raise_for_errors()
        if "head" in checks:
            people.update({_int(u["ID"]): u for u in got.results.get("head") or []})
    today = ctx.calendar.today(ctx.clock)
    away = _away(got.results.get("absence") if got else None, today)
    at_work = [u for u in candidates if u in people and u not in away]

    if rule == HEAD:
        head = candidates[0]
        if head not in people:
            raise RobotFailed(f"the head of {title} (user {head}) is not an active employee")
        if head in away:
            who = _person(people[head])
            raise RobotFailed(f"the head of {title}, {who}, is away until {away[head]}")
        turn = None
        chosen = head
    else:
        if not at_work:
            names = ", ".join(
                f"{_person(people[u])} until {away[u]}" for u in candidates[:NAMED] if u in away
            )
            more = f" and {len(candidates) - NAMED} more" if len(candidates) > NAMED else ""
            raise RobotFailed(f"nobody of {title} is at work today: {names}{more} away")
        pool = at_work
        if rule == FEWEST_OPEN:
            counted = got.totals if got is not None else {}
            open_deals = {u: counted.get(f"open_{u}", 0) for u in at_work}
            current = _int(deal.get("ASSIGNED_BY_ID"))
            if deal.get("STAGE_SEMANTIC_ID") == "P" and current in open_deals:
                open_deals[current] -= 1  # this very deal does not count against its holder
            fewest = min(open_deals.values())
            pool = [u for u in at_work if open_deals[u] == fewest]
        turn = assignment.next_in_turn(ctx, department_id, pool, subtree=subtree)
        chosen = turn.user_id

    # One batch writes: the responsible (and the stage), then the notification.
    fields: dict[str, Any] = {"ASSIGNED_BY_ID": chosen}
    if stage:
        fields["STAGE_ID"] = stage
    writes: dict[str, tuple[str, dict[str, Any]]] = {
        "deal": ("crm.deal.update", {"id": ctx.deal_id, "fields": fields})
    }
    if p["notify"]:
        writes["notify"] = (
            "im.notify.system.add",
            {
                "USER_ID": chosen,
                "MESSAGE": notification(p["message"], ctx.deal_id, deal.get("TITLE") or ""),
                "TAG": f"robot_server|assign|deal|{ctx.deal_id}",
            },
        )
    try:
        done = ctx.portal.batch(writes, halt=True)
    except PortalError:
        if turn is not None:
            assignment.give_back(ctx, turn)  # the retry gives the deal to the same person
        raise
    if "deal" in done.errors:
        if turn is not None:
            assignment.give_back(ctx, turn)
        error = done.errors["deal"]
        raise RobotFailed(
            f"deal {ctx.deal_id} could not be given to user {chosen}: "
            f"{error.code or 'error'}: {error.description}"
        )
    if "notify" in done.errors:
        ctx.log.warning("user %s not notified: %s", chosen, done.errors["notify"].description)
    ctx.log.info(
        "deal %s given to user %s (%s, department %s)", ctx.deal_id, chosen, rule, department_id
    )
    return {"user": f"user_{chosen}"}


def read_department(
    ctx: RobotContext, department_id: int, subtree: bool, stage: str
) -> tuple[dict[str, Any], dict[int, dict[str, Any]], dict[str, Any]]:
    """The department, its active people by ID (with its sub-departments': ``subtree``) and
    the deal, in one batch (one more for sub-departments' people, and for pages past 50)."""
    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "departments": (
            "department.get",
            {"sort": "ID", "order": "ASC"} if subtree else {"ID": department_id},
        ),
        "people": ("user.get", _people_query(department_id)),
        "deal": ("crm.deal.get", {"id": ctx.deal_id}),
    }
    if stage:
        funnel = _funnel_of(stage)
        entity = "DEAL_STAGE" if funnel == 0 else f"DEAL_STAGE_{funnel}"
        reads["stages"] = ("crm.status.list", {"filter": {"ENTITY_ID": entity}})
    got = ctx.portal.batch(reads)
    if "deal" in got.errors:
        raise RobotFailed(f"deal {ctx.deal_id} cannot be read: {got.errors['deal'].description}")
    got.raise_for_errors()
    deal = got.results["deal"] or {}
    if stage:
        _check_stage(stage, deal, got.results.get("stages") or [])
    departments = _all_pages(ctx, got, "departments", "department.get", reads, start="START")
    department = next((d for d in departments if _int(d.get("ID")) == department_id), None)
    if department is None:
        raise RobotFailed(f"department {department_id} is not in the company structure")
    rows = _all_pages(ctx, got, "people", "user.get", reads)
    if subtree:
        below = _below(departments, department_id)
        if below:
            more = {"people": ("user.get", _people_query(below))}
            rows += _all_pages(ctx, ctx.portal.batch(more), "people", "user.get", more)
    people = {_int(u.get("ID")): u for u in rows if u.get("ACTIVE") in (True, "Y", "1", 1)}
    return department, people, deal


def notification(text: str, deal_id: int, title: str) -> str:
    """The message to the new responsible: the admin's text (or ours), and a link to the deal."""
    link = f"[url=/crm/deal/details/{deal_id}/]{title or f'Deal #{deal_id}'}[/url]"
    return f"{(text or '').strip() or 'A deal is yours now:'} {link}"


def _people_query(departments: int | list[int]) -> dict[str, Any]:
    return {
        "sort": "ID",
        "order": "ASC",
        "FILTER": {"UF_DEPARTMENT": departments, "ACTIVE": True},
        "select": PEOPLE_FIELDS,
    }


def _all_pages(
    ctx: RobotContext,
    got: Any,
    label: str,
    method: str,
    reads: dict[str, tuple[str, dict[str, Any]]],
    *,
    start: str = "start",
) -> list[dict[str, Any]]:
    """A list command's rows, with the pages after the first read in one more batch."""
    rows = list(got.results.get(label) or [])
    total = int(got.totals.get(label) or len(rows))
    if total <= len(rows):
        return rows
    params = reads[label][1]
    pages = {
        f"{label}_{offset}": (method, {**params, start: offset})
        for offset in range(PAGE, total, PAGE)
    }
    more = ctx.portal.batch(pages)
    more.raise_for_errors()
    for page in pages:
        rows.extend(more.results.get(page) or [])
    return rows


def _below(departments: list[dict[str, Any]], root: int) -> list[int]:
    """IDs of every department under ``root`` (children, their children...)."""
    children: dict[int, list[int]] = {}
    for d in departments:
        children.setdefault(_int(d.get("PARENT")), []).append(_int(d.get("ID")))
    found: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        current = queue.pop(0)
        if current not in found and current != root:
            found.append(current)
            queue.extend(children.get(current, []))
    return sorted(found)


def _away(absence: Any, today: date) -> dict[int, str]:
    """Who is away today, with the last day of their absence (the messenger's ``absent``).

    ``im.user.list.get`` answers an object by user ID (null for unknown ids); ``absent`` is
    the absence's end (ATOM, the portal's offset) or false.
    """
    if isinstance(absence, dict):
        users = list(absence.values())
    elif isinstance(absence, list):
        users = absence
    else:
        return {}
    away: dict[int, str] = {}
    for user in users:
        if not isinstance(user, dict) or not user.get("absent"):
            continue
        until = str(user["absent"])[:10]
        try:
            ended = date.fromisoformat(until) < today
        except ValueError:
            ended = False  # absent, until when the portal did not say readably
        if not ended:
            away[_int(user.get("id"))] = until
    return away


def _check_stage(stage: str, deal: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    """The stage must be one of the deal's own funnel (crm.deal.update ignores others)."""
    funnel = _funnel_of(stage)
    if str(deal.get("CATEGORY_ID") or "0") != str(funnel):
        raise RobotFailed(
            f"stage {stage} is in funnel {funnel}, the deal in funnel {deal.get('CATEGORY_ID')}"
        )
    if stage not in {s.get("STATUS_ID") for s in stages}:
        raise RobotFailed(f"stage {stage} is not a stage of funnel {funnel}")


def _funnel_of(stage: str) -> int:
    """``C3:NEW`` is a stage of funnel 3; a bare ``NEW`` of the default funnel 0."""
    head, sep, _ = stage.partition(":")
    if sep and head[:1].upper() == "C" and head[1:].isdigit():
        return int(head[1:])
    return 0


def _department_title(department: dict[str, Any]) -> str:
    return f"department \u00ab{department.get('NAME') or ''}\u00bb ({_int(department.get('ID'))})"


def _person(user: dict[str, Any]) -> str:
    name = f"{user.get('NAME') or ''} {user.get('LAST_NAME') or ''}".strip()
    return f"{name} (user {_int(user.get('ID'))})" if name else f"user {_int(user.get('ID'))}"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


ROBOT = Robot(
    code="assign_from_department",
    name={
        "en": "Assign to someone from a department",
        "ru": "Назначить ответственного из отдела",
        "pl": "Przydziel osobie z działu",
    },
    description={
        "en": "Makes a person of the chosen department responsible for the deal: in turn, the"
        " one with the fewest open deals, or the head. People who are fired or absent today"
        " are skipped.",
        "ru": "Назначает ответственным сотрудника выбранного отдела: по очереди, того, у кого"
        " меньше открытых сделок, или руководителя. Уволенные и отсутствующие сегодня"
        " пропускаются.",
        "pl": "Ustawia jako odpowiedzialną osobę z wybranego działu: po kolei, tę z najmniejszą"
        " liczbą otwartych dealów lub kierownika. Osoby zwolnione i nieobecne dzisiaj są"
        " pomijane.",
    },
    run=run,
    properties={
        "department": Property(
            "int",
            {
                "en": "Department ID (company structure)",
                "ru": "ID отдела (структура компании)",
                "pl": "ID działu (struktura firmy)",
            },
            required=True,
        ),
        "subdepartments": Property(
            "bool",
            {
                "en": "Include its sub-departments",
                "ru": "Включая подотделы",
                "pl": "Łącznie z poddziałami",
            },
            default=False,
        ),
        "rule": Property(
            "select",
            {"en": "Who gets the deal", "ru": "Кому назначить", "pl": "Komu przydzielić"},
            default=ROUND_ROBIN,
            options={
                ROUND_ROBIN: {"en": "In turn", "ru": "По очереди", "pl": "Po kolei"},
                FEWEST_OPEN: {
                    "en": "Fewest open deals",
                    "ru": "У кого меньше открытых сделок",
                    "pl": "Najmniej otwartych dealów",
                },
                HEAD: {
                    "en": "The department head",
                    "ru": "Руководитель отдела",
                    "pl": "Kierownik działu",
                },
            },
        ),
        "skip_absent": Property(
            "bool",
            {
                "en": "Skip people absent today (absence chart)",
                "ru": "Пропускать отсутствующих сегодня (график отсутствий)",
                "pl": "Pomijaj nieobecnych dzisiaj (grafik nieobecności)",
            },
            default=True,
        ),
        "stage_id": Property(
            "string",
            {
                "en": "Then move the deal to stage (e.g. C2:NEW; empty: stays)",
                "ru": "Затем перевести сделку на стадию (например, C2:NEW; пусто: не переводить)",
                "pl": "Potem przenieś deal na etap (np. C2:NEW; pusty: bez zmiany)",
            },
            default="",
        ),
        "notify": Property(
            "bool",
            {
                "en": "Notify the new responsible",
                "ru": "Уведомить нового ответственного",
                "pl": "Powiadom nowego odpowiedzialnego",
            },
            default=False,
        ),
        "message": Property(
            "text",
            {
                "en": "Notification text (a link to the deal is added)",
                "ru": "Текст уведомления (ссылка на сделку добавляется)",
                "pl": "Treść powiadomienia (link do dealu jest dodawany)",
            },
            default="",
        ),
    },
    returns={
        "user": Property(
            "user", {"en": "Responsible", "ru": "Ответственный", "pl": "Odpowiedzialny"}
        ),
    },
)
