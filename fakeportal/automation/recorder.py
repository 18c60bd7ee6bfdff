"""A stand-in app endpoint that records what the portal POSTs to it.

For tests and demos of robot authors: start a ``Recorder`` on 127.0.0.1, use ``recorder.url
+ "/robot"`` as a robot HANDLER (or an event handler, an SMS sender, an install URL), and
read back the raw form pairs the portal sent. ``on(path, fn)`` answers a path with a
function (called in the request thread with the received ``Post``), e.g. to call
``bizproc.event.send`` back while the portal's delivery is in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from fakeportal import phpform


@dataclass
class Post:
    """One request the recorder received."""

    path: str
    method: str
    query: dict[str, str]
    pairs: list[tuple[str, str]]  # the form exactly as sent (flat bracket keys, in order)
    content_type: str

    @property
    def form(self) -> dict[str, str]:
        """Flat ``{"auth[access_token]": "..."}`` view."""
        return dict(self.pairs)

    @property
    def data(self) -> dict[str, Any]:
        """Nested view (PHP brackets parsed)."""
        return phpform.parse_pairs(self.pairs)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Recorder:
    """A threaded HTTP server on 127.0.0.1 that records every request."""

    posts: list[Post] = field(default_factory=list)
    hooks: dict[str, Callable[[Post], Any]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # path -> HTTP status to answer
    cond: threading.Condition = field(default_factory=threading.Condition)
    httpd: BaseWSGIServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None, "start() first"
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def start(self) -> Recorder:
        self.httpd = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Quiet)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def on(self, path: str, hook: Callable[[Post], Any]) -> None:
        """Run ``hook(post)`` for requests to ``path``; its return value is the reply body."""
        self.hooks[path] = hook

    def received(self, path: str | None = None) -> list[Post]:
        with self.cond:
            return [p for p in self.posts if path is None or p.path == path]

    def wait_for(self, path: str | None = None, count: int = 1, timeout: float = 5.0) -> list[Post]:
        """Block until ``count`` requests reached ``path``; returns them (AssertionError late)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [p for p in self.posts if path is None or p.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} of {count} requests to {path} arrived")
                self.cond.wait(left)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        post = Post(
            path=request.path,
            method=request.method,
            query=dict(request.args.items()),
            pairs=list(request.form.items(multi=True)),
            content_type=request.mimetype,
        )
        body: Any = '{"status":"success"}'
        hook = self.hooks.get(request.path)
        try:
            if hook is not None:
                result = hook(post)
                if result is not None:
                    body = result
        finally:
            with self.cond:
                self.posts.append(post)
                self.cond.notify_all()
        status = self.status.get(request.path, 200)
        ctype = "text/html" if str(body).lstrip().startswith("<") else "application/json"
        return Response(str(body), status=status, content_type=ctype)(environ, start_response)
