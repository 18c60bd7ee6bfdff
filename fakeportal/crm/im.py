"""Notifications: im.notify.system.add and im.notify.personal.add (stored, readable through
the admin ``dump``); the reply is the new notification's id."""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, method
from fakeportal.exceptions import AttachOversize, MessageEmpty, UserIdEmpty
from fakeportal.state import Portal

from . import common


def notify(
    portal: Portal,
    user_id: int,
    message: str,
    *,
    kind: str = "system",
    author_id: int | None = None,
    tag: str | None = None,
    sub_tag: str | None = None,
    message_out: str | None = None,
    attach: Any = None,
    app_id: str | None = None,
) -> int:
    """Store a notification for a user; a same-TAG one of the same app is replaced."""
    table = portal.table("notification")
    if tag:
        for key in [k for k, v in table.items() if v["TAG"] == tag and v["APP_ID"] == app_id]:
            del table[key]
    notification_id = portal.next_id("notification", start=1001)
    table[notification_id] = {
        "ID": notification_id,
        "TYPE": kind,
        "USER_ID": user_id,
        "AUTHOR_ID": author_id,
        "MESSAGE": message,
        "MESSAGE_OUT": message_out,
        "TAG": tag,
        "SUB_TAG": sub_tag,
        "ATTACH": attach,
        "APP_ID": app_id,
        "DATE": common.now(portal),
    }
    return notification_id


def _add(call: Call, kind: str) -> int:
    user_id = common.positive_id(call.get("USER_ID"))
    if user_id is None:
        raise UserIdEmpty("User ID can't be empty")
    message = str(call.get("MESSAGE") or "").strip()
    if not message:
        raise MessageEmpty("Message can't be empty")
    attach = call.get("ATTACH")
    if attach is not None and len(str(attach)) > 60000:
        raise AttachOversize("You have exceeded the maximum allowable size of attach")
    return notify(
        call.portal,
        user_id,
        message,
        kind=kind,
        author_id=call.caller.user_id if kind == "personal" else None,
        tag=call.get("TAG"),
        sub_tag=call.get("SUB_TAG"),
        message_out=call.get("MESSAGE_OUT"),
        attach=attach,
        app_id=call.caller.app_id or call.get("CLIENT_ID"),
    )


@method("im.notify.system.add", scope="im", validates=True)
def notify_system_add(call: Call) -> int:
    return _add(call, "system")


@method("im.notify.personal.add", scope="im", validates=True)
def notify_personal_add(call: Call) -> int:
    return _add(call, "personal")
