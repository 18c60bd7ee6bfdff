"""The composition root: robots and capabilities -> Catalogue -> services -> the Flask app.

gunicorn (``server:create_app()``), the workers and the clock (``robot-server worker``,
``robot-server cron``), the operator's commands and the tests all start here; nothing below
imports this module.
"""

from __future__ import annotations

from flask import Flask

import handlers
import robots
from app import create_app as flask_app
from app.calendar import Clock, SystemClock
from app.cli import command_line
from app.registry import Catalogue
from app.services import Services
from app.settings import Settings
from installers import sync_registrations

CATALOGUE = Catalogue(robots.ROBOTS, handlers.CAPABILITIES)


def build_services(
    settings: Settings | None = None,
    *,
    catalogue: Catalogue = CATALOGUE,
    clock: Clock | None = None,
) -> Services:
    """The services of one process (``settings`` from the environment when omitted)."""
    return Services(
        settings or Settings.from_env(),
        catalogue,
        clock or SystemClock(),
        installer=sync_registrations,
    )


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """The web app (``gunicorn "server:create_app()"``)."""
    return flask_app(services or build_services(settings))


main = command_line(build_services)  # the ``robot-server`` console script
