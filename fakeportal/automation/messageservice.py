"""messageservice.*: an app's SMS senders, sending through them, delivery statuses.

Sending (``send_sms``, or the built-in "Send SMS" robot of a stage rule) creates a message
with a 32-hex id and POSTs the sender's HANDLER the form the real portal sends: from a CRM
card ``module_id=crm`` with ``bindings``, from a robot ``module_id=bizproc`` with the
workflow and document fields.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fakeportal.api import Call, admin, method
from fakeportal.automation import crmlink, outbox
from fakeportal.automation.checks import check_handler, php_empty
from fakeportal.automation.lifecycle import user_auth
from fakeportal.automation.models import (
    Installation,
    Message,
    NotFound,
    Sender,
    app_installation,
    automation,
    get_portal,
    installed,
    new_workflow_id,
)
from fakeportal.exceptions import (
    MessageNotFound,
    MessageStatusIncorrect,
    SenderAlreadyInstalled,
    SenderCodeRequired,
    SenderNotFound,
    SenderOtherParamsRequired,
    SenderValidationFailure,
)
from fakeportal.state import Portal, World

CODE_RE = re.compile(r"^[a-z0-9.\-_]+$", re.IGNORECASE)
STATUSES = ("queued", "sent", "delivered", "undelivered", "failed")


def _params(call: Call) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in call.params.items() if str(k).lower() != "auth"}


def _check_code(code: Any) -> str:
    if php_empty(code):
        raise SenderValidationFailure("Empty sender code!")
    if not isinstance(code, (str, int)) or not CODE_RE.match(str(code)):
        raise SenderValidationFailure("Wrong sender code!")
    return str(code)


def _context(call: Call, need_admin: bool = True) -> Installation:
    client_id = call.require_app()
    if need_admin:
        call.require_admin()
    return app_installation(call.portal, client_id)


@method("messageservice.sender.add", scope="messageservice", validates=True)
def sender_add(call: Call) -> bool:
    inst = _context(call)
    data = _params(call)
    if not data:
        raise SenderValidationFailure("Empty data!")
    code = _check_code(data.get("CODE"))
    handler = check_handler(data.get("HANDLER"))
    if php_empty(data.get("NAME")):
        raise SenderValidationFailure("Empty sender NAME!")
    if php_empty(data.get("TYPE")):
        raise SenderValidationFailure("Empty sender message TYPE!")
    if data["TYPE"] != "SMS":
        raise SenderValidationFailure("Unknown sender message TYPE!")
    with call.world.lock:
        if code in inst.senders:
            raise SenderAlreadyInstalled()
        inst.senders[code] = Sender(
            code=code,
            type="SMS",
            handler=handler,
            name=data["NAME"],
            description=data.get("DESCRIPTION") or "",
        )
    return True


@method("bizproc.provider.add", scope="bizproc", validates=True)
def provider_add(call: Call) -> bool:
    """The old alias of messageservice.sender.add."""
    return sender_add(call)


@method("messageservice.sender.update", scope="messageservice", validates=True)
def sender_update(call: Call) -> bool:
    inst = _context(call)
    data = _params(call)
    if php_empty(data.get("CODE")):
        raise SenderCodeRequired()
    fields = {k: data[k] for k in ("HANDLER", "NAME", "DESCRIPTION") if k in data}
    if not fields:
        raise SenderOtherParamsRequired()
    with call.world.lock:
        sender = inst.senders.get(str(data["CODE"]))
        if sender is None:
            raise SenderNotFound()
        if "HANDLER" in fields:
            sender.handler = check_handler(fields["HANDLER"])
        if "NAME" in fields:
            if php_empty(fields["NAME"]):
                raise SenderValidationFailure("Empty sender NAME!")
            sender.name = fields["NAME"]
        if "DESCRIPTION" in fields:
            sender.description = fields["DESCRIPTION"] or ""
    return True


@method("messageservice.sender.delete", scope="messageservice", validates=True)
def sender_delete(call: Call) -> bool:
    inst = _context(call)
    code = _check_code(_params(call).get("CODE"))
    with call.world.lock:
        if code not in inst.senders:
            raise SenderNotFound()
        del inst.senders[code]
    return True


@method("messageservice.sender.list", scope="messageservice", validates=True)
def sender_list(call: Call) -> list[str]:
    inst = _context(call)
    with call.world.lock:
        return list(inst.senders)


@method("messageservice.message.status.update", scope="messageservice", validates=True)
def status_update(call: Call) -> bool:
    """The sender reports delivery: queued, sent, delivered, undelivered, failed."""
    inst = _context(call, need_admin=False)
    data = _params(call)
    code = _check_code(data.get("CODE"))
    if php_empty(data.get("MESSAGE_ID")):
        raise MessageNotFound()
    status = str(data.get("STATUS") or "").lower()
    if status not in STATUSES:
        raise MessageStatusIncorrect()
    with call.world.lock:
        message = automation(call.portal).messages.get(str(data["MESSAGE_ID"]))
        if message is None or message.client_id != inst.client_id or message.sender_code != code:
            raise MessageNotFound()
        message.status = status
        message.history.append({"at": call.world.timestamp(), "status": status})
    return True


# sending -----------------------------------------------------------------------------------
def queue_sms(
    world: World,
    portal: Portal,
    client_id: str,
    sender_code: str,
    phone: str,
    text: str,
    *,
    deal_id: int | None = None,
    workflow_id: str | None = None,
    contact_id: int | None = None,
    user_id: int | None = None,
) -> Message:
    """Create a message and queue the POST to the sender's handler (call under the lock).

    ``workflow_id`` set means the message comes from a robot (``module_id=bizproc``).
    """
    inst = installed(portal, client_id)
    sender = inst.senders.get(sender_code)
    if sender is None:
        raise NotFound(f"sender {sender_code} is not registered by {client_id}")
    from_robot = workflow_id is not None
    message = Message(
        id=secrets.token_hex(16),
        client_id=client_id,
        sender_code=sender_code,
        phone=phone,
        text=text,
        module_id="bizproc" if from_robot else "crm",
        deal_id=deal_id,
        workflow_id=workflow_id,
        created_at=world.timestamp(),
    )
    form: dict[str, Any] = {"module_id": message.module_id}
    if from_robot:
        form["workflow_id"] = workflow_id
        if deal_id is not None:
            form["document_id"] = ["crm", "CCrmDocumentDeal", f"DEAL_{deal_id}"]
            form["document_type"] = ["crm", "CCrmDocumentDeal", "DEAL"]
    else:
        bindings = []
        if deal_id is not None:
            bindings.append({"OWNER_TYPE_ID": "2", "OWNER_ID": str(deal_id)})
        if contact_id is not None:
            bindings.append({"OWNER_TYPE_ID": "3", "OWNER_ID": str(contact_id)})
        form["bindings"] = bindings
    form.update(
        {
            "properties": {"phone_number": phone, "message_text": text},
            "type": "SMS",
            "code": sender_code,
            "message_id": message.id,
            "message_to": phone,
            "message_body": text,
            "ts": str(int(world.timestamp())),
            "auth": user_auth(world, portal, inst, int(user_id or inst.user_id)),
        }
    )
    automation(portal).messages[message.id] = message
    outbox.enqueue(world, portal, "sms", sender_code, sender.handler, form)
    return message


def send_sms(
    world: World,
    member_id: str,
    client_id: str,
    sender_code: str,
    phone: str,
    text: str,
    deal_id: int | None = None,
    from_robot: bool = True,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Send an SMS through an app's sender, as a robot (default) or from a deal card."""
    with world.lock:
        outbox.runtime(world)
        portal = get_portal(world, member_id)
        contact_id = None
        if deal_id is not None and not from_robot:
            deal = crmlink.get_deal(portal, int(deal_id))
            if deal is not None:
                contact_id = crmlink.deal_phone(portal, deal)[1]
        message = queue_sms(
            world,
            portal,
            client_id,
            sender_code,
            phone,
            text,
            deal_id=None if deal_id is None else int(deal_id),
            workflow_id=new_workflow_id(world) if from_robot else None,
            contact_id=contact_id,
            user_id=user_id,
        )
        return message.as_dict()


def list_messages(world: World, member_id: str, deal_id: int | None = None) -> list[dict]:
    with world.lock:
        portal = get_portal(world, member_id)
        return [
            m.as_dict()
            for m in automation(portal).messages.values()
            if deal_id is None or m.deal_id == int(deal_id)
        ]


@admin("send_sms")
def _admin_send_sms(world: World, **kw: Any) -> dict[str, Any]:
    return send_sms(world, **kw)


@admin("sms_messages")
def _admin_sms_messages(world: World, member_id: str, deal_id: int | None = None) -> list:
    return list_messages(world, member_id, deal_id)
