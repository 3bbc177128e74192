"""An S3 endpoint a test controls: it counts every request, and can be taken down or made to refuse credentials.

It is a second HTTP server onto the same moto backend as the session's endpoint (moto keeps its buckets and
objects in-process), so what a test publishes through ``platform.store`` is visible through the gate. Give the
server under test ``gate.env()``; the test itself keeps using the session endpoint, which never goes down.

The counts come from a WSGI middleware around moto's own app, so they are what the store saw on the wire,
independently of our code's idea of what it did.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from support.processes import free_port

EXPIRED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
           b"<Message>The provided token has expired.</Message></Error>")


class S3Gate:
    """``up()``/``down()``/``expire()``; ``requests`` lists ``(method, path)`` of everything that got through."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        self._moto = DomainDispatcherApplication(create_backend_app)
        self._handler = MotoRequestHandler
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str]] = []
        self.expired = False
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _app(self, environ: dict[str, Any], start_response) -> Iterable[bytes]:
        if self.expired:
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(EXPIRED)))])
            return [EXPIRED]
        with self._lock:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        return self._moto(environ, start_response)

    def env(self) -> dict[str, str]:
        """The environment that sends a server's boto3 through this gate."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def up(self) -> S3Gate:
        """Listen (again) on the same port."""
        if self._server is None:
            self._server = make_server("127.0.0.1", self.port, self._app, threaded=True,
                                       request_handler=self._handler)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: connections are refused, as for a store that is unreachable."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None

    def expire(self, expired: bool = True) -> None:
        """Answer every request 403 ExpiredToken, as S3 does when credentials have expired."""
        self.expired = expired

    def object_gets(self, suffix: str = ".dill") -> int:
        """GETs of model files seen so far."""
        with self._lock:
            return sum(1 for method, path in self.requests if method == "GET" and path.endswith(suffix))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
