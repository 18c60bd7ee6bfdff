"""The robot server: a Bitrix24 app that runs robots, triggers and handlers in RQ jobs."""

from __future__ import annotations

import logging

from flask import Flask

from app import services as services_module
from app.services import Services
from app.settings import Settings

__all__ = ["create_app", "Settings", "Services"]


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """The Flask app; ``services`` (or ``settings``) lets tests and the demo inject their own."""
    from app import cli, web

    if services is None:
        services = Services(settings or Settings.from_env())
    services_module.use(services)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.extensions["robot_server"] = services
    app.register_blueprint(web.bp)
    for route in services.registry.routes:
        app.add_url_rule(route.rule, route.endpoint, route.view, methods=list(route.methods))
    cli.init_app(app)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return app
