"""The robot server's small framework: a Bitrix24 app that runs robots, triggers and
handlers in RQ jobs. It names no robot and no capability: the composition root
(``server.py``) hands it a Catalogue."""

from __future__ import annotations

import logging

from flask import Flask

from app import jobs, pages, web
from app.registry import Catalogue
from app.services import Services
from app.settings import Settings

__all__ = ["Catalogue", "Services", "Settings", "create_app"]


def create_app(services: Services) -> Flask:
    """The Flask app serving ``services``' catalogue; its jobs run with the same services."""
    jobs.use(services)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    web.init_app(app, services)
    pages.init_app(app, services)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return app
