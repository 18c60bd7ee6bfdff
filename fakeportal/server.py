"""The emulator's HTTP server: REST, the OAuth server and the admin surface on one port.

Routes:
- ``/rest/<method>[.json]`` (token in ``auth``) and ``/rest/<user_id>/<code>/<method>``;
- ``/oauth/token/`` (GET query or POST form);
- ``GET /_admin/`` (index) and ``POST /_admin/<action>`` (JSON body).
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import BadRequest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from fakeportal import oauth, phpform, rest
from fakeportal.api import ADMIN_ACTIONS, portal_hit
from fakeportal.state import WireRecord, World


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        content_type="application/json; charset=utf-8",
    )


def request_params(request: Request) -> dict[str, Any]:
    """Query and body merged (body wins): JSON, urlencoded or multipart, PHP brackets parsed."""
    pairs: list[tuple[str, Any]] = list(request.args.items(multi=True))
    body: dict[str, Any] = {}
    if request.mimetype == "application/json":
        try:
            data = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            data = None
        if isinstance(data, dict):
            body = data
    elif request.method == "POST":
        pairs.extend(request.form.items(multi=True))
    params = phpform.parse_pairs(pairs)
    params.update(body)
    return params


class PortalApp:
    """The WSGI application over one World."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:  # never let the emulator hang up without an answer
            traceback.print_exc(file=sys.stderr)
            response = _json(
                {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"},
                500,
            )
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/rest/"):
            return self.rest(request, path[len("/rest/") :])
        if path.rstrip("/") == "/oauth/token":
            return self.token(request)
        if path.rstrip("/") == "/_admin":
            return _json({"actions": sorted(ADMIN_ACTIONS), "url": self.world.base_url})
        if path.startswith("/_admin/"):
            return self.admin(request, path[len("/_admin/") :].strip("/"))
        return _json({"error": "NOT_FOUND", "error_description": "Not found"}, 404)

    def rest(self, request: Request, tail: str) -> Response:
        parts = [p for p in tail.strip("/").split("/") if p]
        params = request_params(request)
        if len(parts) == 1:
            status, body = rest.serve_call(self.world, parts[0], params)
        elif len(parts) == 3:
            status, body = rest.serve_call(self.world, parts[2], params, (parts[0], parts[1]))
        else:
            status = 404
            body = {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
        return _json(body, status)

    def token(self, request: Request) -> Response:
        params = request_params(request)
        try:
            body, status = oauth.token_endpoint(self.world, params), 200
        except oauth.OAuthError as err:
            body, status = err.body, err.status
        member_id = body.get("member_id")
        portal = self.world.portals.get(member_id) if member_id else None
        if portal is not None:
            with self.world.lock:
                safe = {
                    "grant_type": params.get("grant_type"),
                    "client_id": params.get("client_id"),
                }
                portal.log(
                    WireRecord(
                        self.world.timestamp(), "in", "oauth", "oauth/token", status, safe, None
                    )
                )
        return _json(body, status)

    def admin(self, request: Request, action: str) -> Response:
        handler = ADMIN_ACTIONS.get(action)
        if handler is None:
            return _json({"error": f"unknown admin action {action!r}"}, 404)
        if request.method != "POST":
            return _json({"error": "admin actions are POST with a JSON body"}, 405)
        try:
            body = request.get_json(force=True, silent=False) if request.get_data() else {}
        except BadRequest:
            return _json({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "body must be a JSON object"}, 400)
        try:
            with portal_hit():  # an admin action is one portal hit (a click in the UI)
                return _json({"result": handler(self.world, **body)})
        except (TypeError, ValueError, KeyError, LookupError) as exc:
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)


class _QuietHandler(WSGIRequestHandler):
    """No access log: query strings may carry tokens."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Server:
    """A running emulator: its URL, its world, and how to stop it."""

    url: str
    world: World
    httpd: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.httpd.server_port

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def make_app(world: World) -> PortalApp:
    return PortalApp(world)


def serve(world: World | None = None, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Start the emulator on ``host:port`` (0: any free port) in a daemon thread."""
    import fakeportal  # noqa: F401  (registers every method module)

    world = world or World()
    httpd = make_server(host, port, make_app(world), threaded=True, request_handler=_QuietHandler)
    url = f"http://{host}:{httpd.server_port}"
    with world.lock:
        world.base_url = url
        for portal in world.portals.values():
            portal.base_url = url
    thread = threading.Thread(target=httpd.serve_forever, name="fakeportal", daemon=True)
    thread.start()
    return Server(url, world, httpd, thread)
