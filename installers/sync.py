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

from app.errors import PortalError
from app.registry import Catalogue, localized
from app.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "events"
SMS_PATH = "sms"
ALWAYS_BOUND = ("ONAPPUNINSTALL",)
ALREADY_BOUND = "Handler already binded"


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

    handler = settings.url(EVENTS_PATH)
    wanted = set(registry.events.events) | set(ALWAYS_BOUND)
    bound = {
        (str(b.get("event", "")).upper(), b.get("handler", ""))
        for b in bindings
        if isinstance(b, dict)
    }
    for event in sorted(wanted):
        if (event, handler) in bound:
            report["unchanged"].append(f"event:{event}")
        else:
            writes[f"bind_{event}"] = ("event.bind", {"event": event, "handler": handler})
            report["bound"].append(event)
    for event, url in sorted(bound):
        # Bindings of ours that the registry no longer wants, or that point at an old URL.
        if event not in wanted or url != handler:
            writes[f"unbind_{event}_{len(writes)}"] = (
                "event.unbind",
                {"event": event, "handler": url},
            )
            report["unbound"].append(event)

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
