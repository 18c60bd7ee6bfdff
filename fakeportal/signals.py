"""In-process signals between the portal's parts (CRM state -> automation, events).

Signals used:
- ``"portal.created"``: ``(world, portal)``: seed a new portal (users, the default funnel).
- ``"world.reset"``: ``(world)``: the world was emptied (portals, apps, config, extra);
  drop any module-level state kept beside it.
- ``"crm.event"``: ``(portal, name, fields, user_id, *, data)``: a CRM or task change that
  bound event handlers hear about, e.g. ``name="ONCRMDEALUPDATE", fields={"ID": "12"}``;
  ``user_id`` is None when a robot/workflow made the change (the event then carries no user
  tokens). ``data`` is the event's whole ``data`` as handlers receive it: ``{"FIELDS":
  fields}`` for CRM events, ``{"FIELDS_BEFORE": ..., "FIELDS_AFTER": ..., "IS_ACCESSIBLE_*":
  ...}`` for ONTASK* events. Receivers take it as a keyword (``data=``). Who made the change
  through REST (app, ``auth_connector``) is ``fakeportal.api.current_call()``.
- ``"deal.stage_entered"``: ``(portal, deal_id, stage_id, category_id, user_id)``: a deal was
  created in or moved into a stage; automation rules of that stage run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

_receivers: dict[str, list[Callable[..., Any]]] = defaultdict(list)


def connect(signal: str, receiver: Callable[..., Any]) -> None:
    if receiver not in _receivers[signal]:
        _receivers[signal].append(receiver)


def send(signal: str, *args: Any, **kwargs: Any) -> None:
    for receiver in list(_receivers[signal]):
        receiver(*args, **kwargs)


def disconnect(signal: str, receiver: Callable[..., Any]) -> None:
    """Stop sending a signal to a receiver (tests connect recorders for one test)."""
    if receiver in _receivers[signal]:
        _receivers[signal].remove(receiver)
