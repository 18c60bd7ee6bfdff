"""The portal side of apps and automation: install lifecycle, robots and workflows, events,
triggers, SMS senders, placements and app options. Importing the package registers its REST
methods, admin actions and signal receivers."""

from fakeportal.automation import (  # noqa: F401  (registration on import)
    events,
    lifecycle,
    messageservice,
    options,
    placement,
    robots,
    rules,
    triggers,
)
from fakeportal.automation.lifecycle import (
    install_app,
    install_finish,
    open_app_page,
    uninstall_app,
    update_app,
)
from fakeportal.automation.messageservice import list_messages, send_sms
from fakeportal.automation.outbox import wait_idle
from fakeportal.automation.rules import (
    add_robot_rule,
    add_sms_rule,
    add_trigger_rule,
    delete_rule,
    list_rules,
    list_workflows,
)

__all__ = [
    "add_robot_rule",
    "add_sms_rule",
    "add_trigger_rule",
    "delete_rule",
    "install_app",
    "install_finish",
    "list_messages",
    "list_rules",
    "list_workflows",
    "open_app_page",
    "send_sms",
    "uninstall_app",
    "update_app",
    "wait_idle",
]
