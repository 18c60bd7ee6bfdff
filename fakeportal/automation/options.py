"""app.option.get / app.option.set: an app's own key-value settings on one portal."""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, method
from fakeportal.automation.models import app_installation
from fakeportal.exceptions import InvalidArgs


@method("app.option.set", scope="app", validates=True)
def option_set(call: Call) -> bool:
    client_id = call.require_app()
    call.require_admin()
    inst = app_installation(call.portal, client_id)
    options = call.get("options")
    if not isinstance(options, dict) or not options:
        raise InvalidArgs("Argument 'options' is null or empty")
    with call.world.lock:
        inst.options.update({str(k): v for k, v in options.items()})
    return True


@method("app.option.get", scope="app", validates=True)
def option_get(call: Call) -> Any:
    client_id = call.require_app()
    inst = app_installation(call.portal, client_id)
    name = call.get("option")
    with call.world.lock:
        if name not in (None, ""):
            return inst.options.get(str(name))
        return dict(inst.options) if inst.options else []
