"""``rq cron app/cron.py``: every Schedule of the registry on its cron line, in UTC."""

from __future__ import annotations

from rq import cron

from app.jobs import run_schedule
from app.registry import Registry
from app.services import BULK

for schedule in Registry.load().schedules.values():
    cron.register(
        run_schedule,
        queue_name=BULK,
        args=(schedule.name,),
        cron=schedule.cron,
        name=f"schedule-{schedule.name}",
    )
