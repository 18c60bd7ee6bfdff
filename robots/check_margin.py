"""Check the offer's margin; below the minimum, send it to the board: notify, ask, move.

The expert-opinion firm's offers go to the board only when their margin is below the minimum
it set: every other offer goes to the client without the board seeing it. The margin comes
from the deal's product rows: the price after discount (with or without tax, as the admin
chooses) times the quantity, against the cost: the catalogue's purchasing price of each row's
product (``catalog.product.get`` ``purchasingPrice``, in the deal's currency), or a deal user
field holding the offer's total cost (an amount, or a money field ``1500|PLN``). Money is
Decimal throughout; the margin is (revenue - cost) / revenue.

Below the minimum the robot notifies the chosen users (``im.notify.system.add``), creates one
approval task for them linked to the deal (the first is responsible, the others take part),
and moves the deal to the chosen stage. It returns ``margin_percent``, ``margin_amount`` and
``below_minimum`` (Y/N). A deal without rows, and rows without a cost, fail with a message
naming them.

Requests: one batch reads the deal, its rows (and the target stage, to check it is one of
the deal's funnel). The catalogue products are a second batch, one ``catalog.product.get``
per distinct product: the portal's ``$result[rows][N][PRODUCT_ID]`` references need N known
in advance, and a filter cannot be built from a list of rows, so the products can only be
asked for once the rows are read. Below the minimum one batch writes everything; a move to
another stage follows the robot's answer (``ctx.then``): a stage change may end the
automation of the stage the robot runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.context import RobotContext, wire_value
from app.errors import PortalError, RobotFailed, transient
from app.registry import Property, Robot

CATALOG, DEAL_FIELD = "catalog", "deal_field"
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
MAX_NAMED = 10  # rows named in a failure; the rest are counted
# Catalogue errors that mean "the app may not read it", not "this product has no cost".
NO_RIGHT = {"200040300010", "200040300030", "200040300040", "ACCESS_DENIED"}

# What the board reads, in the portal's language.
TEXTS = {
    "notify": {
        "en": "Offer {link}: margin {percent}% ({amount} {currency}) is below the minimum"
        " {minimum}%.",
        "ru": "Предложение {link}: маржа {percent}% ({amount} {currency}) ниже минимума"
        " {minimum}%.",
        "pl": "Oferta {link}: marża {percent}% ({amount} {currency}) jest poniżej minimum"
        " {minimum}%.",
    },
    "notify_task": {
        "en": " Please approve it in the task.",
        "ru": " Согласуйте его в задаче.",
        "pl": " Zaakceptuj ją w zadaniu.",
    },
    "task_title": {
        "en": 'Approve the offer "{title}": margin {percent}% below {minimum}%',
        "ru": "Согласовать предложение «{title}»: маржа {percent}% ниже {minimum}%",
        "pl": "Zaakceptuj ofertę „{title}”: marża {percent}% poniżej {minimum}%",
    },
    "task_description": {
        "en": "Deal {link}: revenue {revenue} {currency}, cost {cost} {currency}, margin"
        " {amount} {currency} ({percent}%), below the minimum {minimum}%.\n"
        "Approve the offer before it goes to the client, or send it back for a new price.",
        "ru": "Сделка {link}: выручка {revenue} {currency}, себестоимость {cost} {currency},"
        " маржа {amount} {currency} ({percent}%), ниже минимума {minimum}%.\n"
        "Согласуйте предложение до отправки клиенту или верните его на пересчёт цены.",
        "pl": "Deal {link}: przychód {revenue} {currency}, koszt {cost} {currency}, marża"
        " {amount} {currency} ({percent}%), poniżej minimum {minimum}%.\n"
        "Zaakceptuj ofertę, zanim trafi do klienta, albo odeślij ją do ponownej wyceny.",
    },
}


def text(key: str, lang: str, **values: str) -> str:
    texts = TEXTS[key]
    return (texts.get(lang) or texts["en"]).format(**values)


@dataclass(frozen=True)
class Line:
    """One product row as the margin sees it."""

    name: str
    product_id: int
    quantity: Decimal
    revenue: Decimal  # price after discount (with or without tax) x quantity


@dataclass(frozen=True)
class Margin:
    revenue: Decimal
    cost: Decimal
    minimum: Decimal  # percent

    @property
    def amount(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def percent(self) -> Decimal:
        return self.amount * HUNDRED / self.revenue

    @property
    def below(self) -> bool:
        return self.amount * HUNDRED < self.minimum * self.revenue  # exact, not rounded

    def returns(self) -> dict[str, str]:
        return {
            "margin_percent": money(self.percent),
            "margin_amount": money(self.amount),
            "below_minimum": wire_value(self.below),
        }


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def plain(value: Decimal) -> str:
    """``Decimal("20.0")`` -> ``20``, ``Decimal("12.5")`` -> ``12.5``."""
    return format(value.normalize(), "f")


def decimal(value: Any) -> Decimal | None:
    """A portal number (``1000``, ``"1000.00"``, ``"1000.000000"``) as Decimal; None if empty."""
    if value is None or isinstance(value, bool):
        return None
    raw = str(value).strip().replace(",", ".")
    if not raw:
        return None
    try:
        result = Decimal(raw)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def named(names: list[str]) -> str:
    """``"A", "B" and 3 more`` (a failure message names rows, but stays short)."""
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def lines_of(rows: list[dict[str, Any]], include_tax: bool) -> list[Line]:
    lines = []
    for row in rows:
        name = '"' + str(row.get("PRODUCT_NAME") or f"row {row.get('ID')}") + '"'
        quantity = decimal(row.get("QUANTITY"))
        price = decimal(row.get("PRICE"))  # after discount, with tax
        if not include_tax:
            exclusive = decimal(row.get("PRICE_EXCLUSIVE"))  # after discount, without tax
            if exclusive is None and price is not None:
                tax = decimal(row.get("TAX_RATE")) or Decimal(0)
                exclusive = price * HUNDRED / (HUNDRED + tax)
            price = exclusive
        if quantity is None or price is None:
            raise RobotFailed(f"product row {name} has no price or quantity")
        product_id = decimal(row.get("PRODUCT_ID")) or Decimal(0)
        lines.append(Line(name, int(product_id), quantity, price * quantity))
    return lines


def _batch(ctx: RobotContext, commands: dict[str, Any], what: str, **options: Any) -> Any:
    """A batch whose refusal (not an outage: that is retried) fails the robot readably."""
    try:
        return ctx.portal.batch(commands, **options)
    except PortalError as exc:
        if transient(exc):
            raise
        raise RobotFailed(f"{what}: the portal answered {exc.code or exc.status}: "
                          f"{exc.description}") from exc  # fmt: skip


def catalogue_cost(ctx: RobotContext, lines: list[Line], currency: str) -> Decimal:
    """The rows' cost from the catalogue's purchasing prices; RobotFailed naming the rows
    that have none (not a catalogue product, no price, another currency, not found)."""
    ids = sorted({line.product_id for line in lines if line.product_id > 0})
    got = (
        _batch(
            ctx,
            {f"p{pid}": ("catalog.product.get", {"id": pid}) for pid in ids},
            "the catalogue cannot be read",
        )
        if ids
        else None
    )
    prices: dict[int, Decimal] = {}
    missing: dict[int, str] = {}
    for pid in ids:
        error = got.errors.get(f"p{pid}")
        if error is not None:
            if error.code == "insufficient_scope":
                raise RobotFailed(
                    'the catalogue cannot be read: the app has no "catalog" permission'
                    " (allow it in the app's settings and reinstall), or take the cost"
                    " from a deal field"
                )
            if error.code in NO_RIGHT:
                raise RobotFailed(
                    f"the catalogue cannot be read: {error.description or error.code}"
                    " (the app's user needs the right to view the catalogue)"
                )
            if error.code in ("0", "") and "exist" in error.description.lower():
                missing[pid] = "not in the catalogue"
                continue
            raise RobotFailed(
                f"the catalogue answered {error.code}: {error.description} for product {pid}"
            )
        product = (got.results.get(f"p{pid}") or {}).get("product") or {}
        price = decimal(product.get("purchasingPrice"))
        if price is None:
            missing[pid] = "no purchasing price"
            continue
        of = str(product.get("purchasingCurrency") or currency)
        if currency and of != currency:
            missing[pid] = f"purchasing price in {of}, the deal is in {currency}"
            continue
        prices[pid] = price
    total = Decimal(0)
    without: list[str] = []
    for line in lines:
        if line.product_id <= 0:
            without.append(f"{line.name} (not a catalogue product)")
        elif line.product_id in missing:
            without.append(f"{line.name} ({missing[line.product_id]})")
        else:
            total += prices[line.product_id] * line.quantity
    if without:
        raise RobotFailed(
            f"no cost for {named(without)}: set the purchasing price in the catalogue,"
            " or take the cost from a deal field"
        )
    return total


def field_cost(deal: dict[str, Any], field: str, currency: str) -> Decimal:
    """The offer's total cost from a deal field: an amount or a money value ``1500|PLN``."""
    if field not in deal:
        raise RobotFailed(f"the deal has no field {field}: name the field holding the total cost")
    raw = deal[field]
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if raw in (None, ""):
        raise RobotFailed(f"the deal's {field} (the offer's total cost) is empty")
    amount, _, of = str(raw).partition("|")
    cost = decimal(amount)
    if cost is None:
        raise RobotFailed(f"the deal's {field} holds {str(raw)[:40]!r}, not an amount")
    if of and currency and of.strip() != currency:
        raise RobotFailed(f"the cost in {field} is in {of.strip()}, the deal is in {currency}")
    return cost


def stage_of_funnel(rows: list[dict[str, Any]], stage: str, category_id: int) -> bool:
    entity = "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"
    return any(r.get("ENTITY_ID") == entity and r.get("STATUS_ID") == stage for r in rows)


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    deal_id = ctx.deal_id
    minimum = decimal(p["min_margin"])
    if minimum is None or not Decimal(0) <= minimum < HUNDRED:
        raise RobotFailed("the minimum margin must be a percentage from 0 to under 100")
    source = p["cost_source"]
    field = (p["cost_field"] or "").strip().upper()
    if source == DEAL_FIELD and not field.startswith("UF_"):
        raise RobotFailed(
            "the cost is taken from a deal field: name the user field holding the offer's"
            " total cost (UF_CRM_...)"
        )
    users: list[int] = list(dict.fromkeys(p["notify_users"]))
    if p["approval_task"] and not users:
        raise RobotFailed("an approval task needs the users who approve: fill in whom to notify")
    stage = (p["target_stage"] or "").strip()

    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "deal": ("crm.deal.get", {"id": deal_id}),
        "rows": ("crm.deal.productrows.get", {"id": deal_id}),
    }
    if stage:
        reads["stage"] = ("crm.status.list", {"filter": {"STATUS_ID": stage}})
    got = _batch(ctx, reads, f"deal {deal_id} cannot be read")
    for label, what in (("deal", f"deal {deal_id}"), ("rows", "the deal's product rows")):
        if label in got.errors:
            raise RobotFailed(f"{what} cannot be read: {got.errors[label].description}")
    deal = got.results["deal"] or {}
    currency = str(deal.get("CURRENCY_ID") or "")
    category_id = int(decimal(deal.get("CATEGORY_ID")) or 0)
    if stage:
        if "stage" in got.errors:
            raise RobotFailed(f"the stages cannot be read: {got.errors['stage'].description}")
        if not stage_of_funnel(got.results.get("stage") or [], stage, category_id):
            raise RobotFailed(f"stage {stage} is not a stage of the deal's funnel {category_id}")
    rows = got.results.get("rows") or []
    if not rows:
        raise RobotFailed(
            "the deal has no product rows: the margin is counted from the offer's products"
            " and services"
        )
    lines = lines_of(rows, p["include_tax"])
    revenue = sum((line.revenue for line in lines), Decimal(0))
    if revenue <= 0:
        raise RobotFailed(f"the offer's total is {money(revenue)} {currency}: no margin to check")
    cost = (
        catalogue_cost(ctx, lines, currency)
        if source == CATALOG
        else field_cost(deal, field, currency)
    )
    margin = Margin(revenue, cost, minimum)
    values = margin.returns()
    ctx.log.info(
        "deal %s: margin %s%% (%s %s), minimum %s%%",
        deal_id,
        values["margin_percent"],
        values["margin_amount"],
        currency,
        plain(minimum),
    )
    if margin.below:
        send_to_the_board(ctx, deal, margin, currency, users, stage, values)
    return values


def send_to_the_board(
    ctx: RobotContext,
    deal: dict[str, Any],
    margin: Margin,
    currency: str,
    users: list[int],
    stage: str,
    values: dict[str, str],
) -> None:
    """One batch: the approval task, a line in the workflow log, the notifications, and the
    move (after the robot's own answer to the workflow)."""
    p = ctx.properties
    deal_id = ctx.deal_id
    lang = ctx.language
    title = str(deal.get("TITLE") or f"#{deal_id}")
    figures = {
        "title": title,
        "link": f"[URL=/crm/deal/details/{deal_id}/]{title}[/URL]",
        "percent": values["margin_percent"],
        "amount": values["margin_amount"],
        "revenue": money(margin.revenue),
        "cost": money(margin.cost),
        "currency": currency,
        "minimum": plain(margin.minimum),
    }
    moves = bool(stage) and deal.get("STAGE_ID") != stage
    writes: dict[str, tuple[str, dict[str, Any]]] = {}
    done: list[str] = []
    # The task and the log first: the log refers to the task, in the same 50-command request.
    if p["approval_task"]:
        fields: dict[str, Any] = {
            "TITLE": text("task_title", lang, **figures),
            "DESCRIPTION": text("task_description", lang, **figures),
            "RESPONSIBLE_ID": users[0],
            "UF_CRM_TASK": [f"D_{deal_id}"],
        }
        if users[1:]:
            fields["ACCOMPLICES"] = users[1:]
        writes["task"] = ("tasks.task.add", {"fields": fields})
        done.append("approval task $result[task][task][id]")
    if users:
        done.append("notified users " + ", ".join(str(u) for u in users))
    if moves:
        done.append(f"the deal moves to {stage}")
    if not done:
        return  # nothing to do below the minimum but to say so (the return values do)
    if ctx.event_token:
        summary = (
            f"Margin {values['margin_percent']}% is below the minimum {plain(margin.minimum)}%: "
            + "; ".join(done)
        )
        writes["log"] = (
            "bizproc.activity.log",
            {"EVENT_TOKEN": ctx.event_token, "LOG_MESSAGE": summary[:1000]},
        )
    for user in users:
        writes[f"notify_{user}"] = (
            "im.notify.system.add",
            {
                "USER_ID": user,
                "MESSAGE": text("notify", lang, **figures)
                + (text("notify_task", lang) if p["approval_task"] else ""),
                "TAG": f"ROBOT_SERVER_MARGIN|{deal_id}|{user}",  # a re-run replaces it
            },
        )
    if moves:  # once the workflow has its answer: the move may end this stage's automation
        ctx.then("move", "crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": stage}})
    if not writes:
        return
    got = _batch(ctx, writes, "the offer could not be sent to the board", halt=True)
    if not got.errors:
        return
    ctx.after_answer.clear()  # a refused write: the deal stays where it is
    label, error = next(iter(got.errors.items()))
    what = {"task": "the approval task", "log": "the workflow log"}.get(label) or (
        f"the notification of user {label.removeprefix('notify_')}"
    )
    raise RobotFailed(f"{what} was refused: {error.description or error.code}")


ROBOT = Robot(
    code="check_margin",
    name={
        "en": "Check the offer's margin",
        "ru": "Проверить маржу предложения",
        "pl": "Sprawdź marżę oferty",
    },
    description={
        "en": "Counts the margin of the deal's products against their cost; below the minimum"
        " it notifies the board, creates an approval task and moves the deal.",
        "ru": "Считает маржу по товарам сделки и их себестоимости; ниже минимума уведомляет"
        " руководство, ставит задачу на согласование и переводит сделку.",
        "pl": "Liczy marżę produktów dealu względem ich kosztu; poniżej minimum powiadamia"
        " zarząd, tworzy zadanie akceptacji i przenosi deal.",
    },
    run=run,
    properties={
        "min_margin": Property(
            "double",
            {"en": "Minimum margin, %", "ru": "Минимальная маржа, %", "pl": "Minimalna marża, %"},
            {
                "en": "Margin = (price - cost) / price",
                "ru": "Маржа = (цена - себестоимость) / цена",
                "pl": "Marża = (cena - koszt) / cena",
            },
            required=True,
        ),
        "cost_source": Property(
            "select",
            {"en": "Cost from", "ru": "Себестоимость из", "pl": "Koszt z"},
            default=CATALOG,
            options={
                CATALOG: {
                    "en": "Catalogue purchasing price",
                    "ru": "Закупочная цена в каталоге",
                    "pl": "Cena zakupu w katalogu",
                },
                DEAL_FIELD: {
                    "en": "A deal field with the total cost",
                    "ru": "Поле сделки с общей себестоимостью",
                    "pl": "Pole dealu z łącznym kosztem",
                },
            },
        ),
        "cost_field": Property(
            "string",
            {
                "en": "Deal field with the total cost (UF_CRM_...)",
                "ru": "Поле сделки с себестоимостью (UF_CRM_...)",
                "pl": "Pole dealu z kosztem (UF_CRM_...)",
            },
            default="",
        ),
        "include_tax": Property(
            "bool",
            {"en": "Prices with tax", "ru": "Цены с налогом", "pl": "Ceny z podatkiem"},
            {
                "en": "Compare prices with tax (when the costs include tax too)",
                "ru": "Сравнивать цены с налогом (если себестоимость тоже с налогом)",
                "pl": "Porównuj ceny z podatkiem (gdy koszty też są z podatkiem)",
            },
            default=False,
        ),
        "notify_users": Property(
            "user",
            {
                "en": "Below the minimum: notify these users",
                "ru": "Ниже минимума: уведомить сотрудников",
                "pl": "Poniżej minimum: powiadom użytkowników",
            },
            multiple=True,
        ),
        "approval_task": Property(
            "bool",
            {
                "en": "Below the minimum: create an approval task for them",
                "ru": "Ниже минимума: поставить им задачу на согласование",
                "pl": "Poniżej minimum: utwórz im zadanie akceptacji",
            },
            default=False,
        ),
        "target_stage": Property(
            "string",
            {
                "en": "Below the minimum: move the deal to this stage (e.g. C2:APPROVAL)",
                "ru": "Ниже минимума: перевести сделку на стадию (например, C2:APPROVAL)",
                "pl": "Poniżej minimum: przenieś deal na etap (np. C2:APPROVAL)",
            },
            default="",
        ),
    },
    returns={
        "margin_percent": Property(
            "double", {"en": "Margin, %", "ru": "Маржа, %", "pl": "Marża, %"}
        ),
        "margin_amount": Property(
            "double", {"en": "Margin, amount", "ru": "Маржа, сумма", "pl": "Marża, kwota"}
        ),
        "below_minimum": Property(
            "bool", {"en": "Below the minimum", "ru": "Ниже минимума", "pl": "Poniżej minimum"}
        ),
    },
)
