"""Registrations in a portal, made to match the catalogue in two batch requests.

Idempotent: it runs at install, after an app update (when Bitrix24 has wiped every robot
and binding of the app) and from ``robot-server sync``. One batch reads what the portal
has, one batch adds, updates and deletes the difference; when nothing differs, nothing is
written. The portal lists robots and SMS senders by code only, so what we last registered
under a code is remembered as a fingerprint (``previous`` in, ``fingerprints`` out): a
robot whose code is there and whose fingerprint is the same is left unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from app.bitrix import AUTH_CONNECTOR
from app.errors import PortalError
from app.jobs import WAKE_UP_MIN_TIMEOUT
from app.registry import Catalogue, localized
from app.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "events"
SMS_PATH = "sms"
ALWAYS_BOUND = ("ONAPPUNINSTALL",)
ALREADY_BOUND = "Handler already binded"
WAKE_UP = "ONOFFLINEEVENT"


def _binding_key(binding: Mapping[str, Any]) -> tuple[str, str, str]:
    """(event, "online", handler URL) or (event, "offline", connector) as event.get lists it."""
    event = str(binding.get("event", "")).upper()
    if str(binding.get("offline", "0")) in ("1", "true", "True"):
        return event, "offline", str(binding.get("connector_id") or "")
    return event, "online", str(binding.get("handler", ""))


def fingerprint(params: Mapping[str, Any]) -> str:
    """What we registered, in a few characters: a change of any parameter changes it."""
    text = json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sync_registrations(
    portal: Any,
    registry: Catalogue,
    settings: Settings,
    language: str = "en",
    previous: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Make the portal's robots, triggers, event bindings and SMS sender match ``registry``.

    Returns what was added, updated, left unchanged, deleted, bound and unbound, and the
    ``fingerprints`` to pass as ``previous`` next time."""
    previous = previous or {}
    fingerprints: dict[str, str] = {}
    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "robots": ("bizproc.robot.list", {}),
        "events": ("event.get", {}),
        "triggers": ("crm.automation.trigger.list", {}),
    }
    if registry.sms_provider is not None:
        reads["senders"] = ("messageservice.sender.list", {})
    have = portal.batch(reads)
    have.raise_for_errors()
    robots_there = set(have.results.get("robots") or [])
    bindings = have.results.get("events") or []
    triggers_there = {
        str(t["CODE"]).lower(): t.get("NAME", "") for t in have.results.get("triggers") or []
    }
    senders_there = set(have.results.get("senders") or [])

    writes: dict[str, tuple[str, dict[str, Any]]] = {}
    report: dict[str, list[str]] = {
        k: [] for k in ("added", "updated", "unchanged", "deleted", "bound", "unbound")
    }

    for code, robot in registry.robots.items():
        params = robot.to_bitrix(settings.url(robot.handler_path()))
        key = f"robot:{code}"
        fingerprints[key] = fingerprint(params)
        if code in robots_there and previous.get(key) == fingerprints[key]:
            report["unchanged"].append(key)
        elif code in robots_there:
            fields = {k: v for k, v in params.items() if k != "CODE"}
            writes[f"robot_update_{code}"] = (
                "bizproc.robot.update",
                {"CODE": code, "FIELDS": fields},
            )
            report["updated"].append(f"robot:{code}")
        else:
            writes[f"robot_add_{code}"] = ("bizproc.robot.add", params)
            report["added"].append(f"robot:{code}")
    for code in sorted(robots_there - set(registry.robots)):
        writes[f"robot_delete_{code}"] = ("bizproc.robot.delete", {"CODE": code})
        report["deleted"].append(f"robot:{code}")

    # The catalogue's events are bound offline: the portal keeps them while the app is away,
    # and ONOFFLINEEVENT (online) wakes the drainer. ONAPPUNINSTALL stays online.
    handler = settings.url(EVENTS_PATH)
    offline = sorted(registry.events.events)
    wanted: dict[tuple[str, str, str], dict[str, Any]] = {
        (event, "online", handler): {"event": event, "handler": handler} for event in ALWAYS_BOUND
    }
    for event in offline:
        wanted[(event, "offline", AUTH_CONNECTOR)] = {
            "event": event,
            "event_type": "offline",
            "auth_connector": AUTH_CONNECTOR,
        }
    if offline:
        wanted[(WAKE_UP, "online", handler)] = {
            "event": WAKE_UP,
            "handler": handler,
            "options": {"minTimeout": WAKE_UP_MIN_TIMEOUT},
        }
    bound = {_binding_key(b) for b in bindings if isinstance(b, dict)}
    for key, params in sorted(wanted.items()):
        name = f"event:{key[0]}" + (" (offline)" if key[1] == "offline" else "")
        if key in bound:
            report["unchanged"].append(name)
        else:
            writes[f"bind_{key[1]}_{key[0]}"] = ("event.bind", params)
            report["bound"].append(name)
    for event, kind, target in sorted(bound - set(wanted)):
        # Bindings of ours the catalogue no longer wants, or that point at an old URL.
        params = {"event": event, "handler": target} if kind == "online" else {
            "event": event, "event_type": "offline", "auth_connector": target,
        }  # fmt: skip
        writes[f"unbind_{kind}_{event}_{len(writes)}"] = ("event.unbind", params)
        report["unbound"].append(f"event:{event}" + (" (offline)" if kind == "offline" else ""))

    for code, trigger in registry.triggers.items():
        params = trigger.to_bitrix(language)
        if triggers_there.get(code.lower()) == params["NAME"]:
            report["unchanged"].append(f"trigger:{code}")
            continue
        # Adding an existing CODE only updates its NAME: the call is idempotent.
        writes[f"trigger_{code}"] = ("crm.automation.trigger.add", params)
        (report["updated"] if code.lower() in triggers_there else report["added"]).append(
            f"trigger:{code}"
        )
    for code in sorted(set(triggers_there) - {c.lower() for c in registry.triggers}):
        writes[f"trigger_delete_{code}"] = ("crm.automation.trigger.delete", {"CODE": code})
        report["deleted"].append(f"trigger:{code}")

    provider = registry.sms_provider
    if provider is not None:
        sender = {
            "HANDLER": settings.url(SMS_PATH),
            "NAME": localized(provider.name),
            "DESCRIPTION": localized(provider.description or provider.name),
        }
        key = f"sender:{provider.code}"
        fingerprints[key] = fingerprint(sender)
        if provider.code in senders_there and previous.get(key) == fingerprints[key]:
            report["unchanged"].append(key)
        elif provider.code in senders_there:
            writes["sender"] = ("messageservice.sender.update", {"CODE": provider.code, **sender})
            report["updated"].append(f"sender:{provider.code}")
        else:
            writes["sender"] = (
                "messageservice.sender.add",
                {"CODE": provider.code, "TYPE": "SMS", **sender},
            )
            report["added"].append(f"sender:{provider.code}")

    if writes:
        done = portal.batch(writes)
        for label, error in done.errors.items():
            if label.startswith("bind_") and ALREADY_BOUND in (error.description or ""):
                continue  # bound meanwhile: the state we want
            raise PortalError(error.code, f"{label}: {error.description}", error.status, "sync")
    log.info("portal synced: %s", {k: len(v) for k, v in report.items()})
    return {**report, "fingerprints": fingerprints}
