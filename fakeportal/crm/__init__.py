"""The emulated portal's CRM and workspace: state, rules and REST methods.

Importing the package registers the REST methods (crm.deal.*, crm.item.*, crm.category.*,
crm.status.*, crm.contact.*, crm.company.*, user fields, product rows, timeline comments,
activities, tasks.task.*, im.notify.*, im.user.get/list.get (absence), calendar.*, user.*,
department.get, catalog.product.get/list) and the admin actions, and seeds every new portal
(``portal.created``): users 1..5 (1 is the admin "Ivan Petrov"), departments, deal funnel 0
with the standard stages, the smart invoice funnel.

Python functions for the automation side and the admin surface (call them under
``world.lock``; ``user_id`` None means "made by automation on behalf of nobody"):

- ``create_category(portal, name, stages=None) -> id``: a deal funnel; ``stages`` are
  ``(status_id_suffix, name, semantics)`` (semantics P/S/F or process/success/failure/apology),
  ``C<N>:`` is prefixed; None gives the portal's default stage set.
- ``create_deal(portal, fields, user_id=None) -> id``: as crm.deal.add (upper-case names).
- ``update_deal(portal, deal_id, fields, user_id=None)``: as crm.deal.update (funnel fixed,
  other-funnel STAGE_ID ignored).
- ``move_deal(portal, deal_id, stage_id, user_id=None)``: into a stage, moving funnels when
  the stage is another funnel's (ONCRMDEALMOVETOCATEGORY).
- ``change_category(portal, deal_id, category_id, stage_id=None, user_id=None)``.
- ``get_deal(portal, deal_id) -> dict``: the crm.deal.get form (strings).
- ``delete_deal(portal, deal_id, user_id=None)``.
- ``create_contact(portal, fields, user_id=None) -> id`` / ``create_company(...)``.
- ``add_user_field(portal, "DEAL", name, type, label=None, multiple=False, ...) -> id``.
- ``stages(portal, entity_type_id, category_id)``: stage rows of a funnel;
  ``find_stage(portal, 2, "C1:WON")``.
- ``create_invoice(portal, fields, user_id=None)`` / ``move_invoice(...)``: smart invoices.
- ``add_timeline_comment(portal, entity_type, entity_id, text, user_id=None)``,
  ``add_todo(portal, owner_type_id, owner_id, deadline, title, ...)``,
  ``create_task(portal, fields, user_id=None)``, ``update_task(portal, task_id, fields, ...)``,
  ``change_task_status(portal, task_id, "complete", user_id=None)`` (start, pause, defer,
  complete, renew, approve, disapprove), ``delete_task(portal, task_id, user_id=None)``,
  ``notify(portal, user_id, message, ...)``.
- ``create_product(portal, fields, user_id=1) -> id`` / ``update_product(portal, id, fields)``:
  the catalogue's products (camelCase, ``purchasingPrice`` + ``purchasingCurrency``).

Signals sent: ``crm.event`` ``(portal, name, fields, user_id, data=...)`` on every change and
``deal.stage_entered`` ``(portal, deal_id, stage_id, category_id, user_id)`` after a deal is
created in or moved into a stage.
"""

from __future__ import annotations

from . import (  # noqa: F401  (registration)
    absence,
    admin,
    calendar,
    catalog,
    im,
    productrows,
    seed,
    users,
)
from .catalog import create_product, update_product
from .categories import create_category, find_stage, stages
from .contacts import create_company, create_contact, get_company, get_contact
from .deals import (
    change_category,
    create_deal,
    delete_deal,
    get_deal,
    list_deals,
    move_deal,
    update_deal,
)
from .im import notify
from .items import create_invoice, move_invoice, update_deal_item
from .tasks import change_status as change_task_status
from .tasks import create_task, delete_task, update_task
from .timeline import add_timeline_comment, add_todo
from .userfields import add_user_field

seed.connect()

__all__ = [
    "add_timeline_comment",
    "add_todo",
    "add_user_field",
    "change_category",
    "create_category",
    "create_company",
    "create_contact",
    "create_deal",
    "create_invoice",
    "create_product",
    "change_task_status",
    "create_task",
    "delete_deal",
    "delete_task",
    "find_stage",
    "get_company",
    "get_contact",
    "get_deal",
    "list_deals",
    "move_deal",
    "move_invoice",
    "notify",
    "stages",
    "update_deal",
    "update_deal_item",
    "update_product",
    "update_task",
]
