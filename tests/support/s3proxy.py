"""S3-compatible HTTP endpoints in front of moto's server, for testing what publish does with a store.

Some S3-compatible servers (npm's ``s3rver``, older MinIO and Ceph releases) accept ``If-None-Match: *``
and then ignore it. ``s3_proxy(upstream)`` is such a server: a small WSGI proxy that drops the
``If-None-Match`` header from every request before forwarding it, reached by boto3 over HTTP like any
store. With ``honour_conditions=True`` it forwards the header and lets one conditional request through
at a time: S3 decides a conditional write atomically, while moto's server checks the key and then
writes it, so two completions arriving together could both pass there. ``after`` lets a test act right
after a request was answered, e.g. let another publisher's write land before the first publisher reads
back what the store holds.
"""
from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import make_server

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}

#: ``after(method, path, query, status)``, called once a request was forwarded and answered
AfterHook = Callable[[str, str, str, int], None]


class S3Proxy:
    """The WSGI app: forwards everything to ``upstream``, without the ``If-None-Match`` header unless
    ``honour_conditions``."""

    def __init__(self, upstream: str, *, honour_conditions: bool = False, after: AfterHook | None = None) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.honour_conditions = honour_conditions
        self.after = after
        self.dropped = 0  # If-None-Match headers ignored
        self._conditional = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ["PATH_INFO"]
        headers = {}
        for name, value in environ.items():
            if name.startswith("HTTP_"):
                headers[name[5:].replace("_", "-").title()] = value
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").title()] = environ[name]
        conditional = "If-None-Match" in headers
        if conditional and not self.honour_conditions:
            del headers["If-None-Match"]
            self.dropped += 1
        if environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read()
            headers.pop("Transfer-Encoding", None)
            headers["Content-Length"] = str(len(body))
        else:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if conditional and self.honour_conditions:
            with self._conditional:
                status, reason, response_headers, data = self._forward(method, path, body, headers)
        else:
            status, reason, response_headers, data = self._forward(method, path, body, headers)
        start_response(f"{status} {reason}", response_headers)
        if self.after is not None:
            target, _, query = path.partition("?")
            self.after(method, target, query, status)
        return [data]

    def _forward(self, method: str, path: str, body: bytes, headers: dict[str, str]
                 ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, response.reason, kept, data
        finally:
            conn.close()


@contextmanager
def s3_proxy(upstream: str, *, honour_conditions: bool = False, after: AfterHook | None = None
             ) -> Iterator[tuple[str, S3Proxy]]:
    """Serve :class:`S3Proxy` on a loopback port; yields its endpoint URL and the app."""
    app = S3Proxy(upstream, honour_conditions=honour_conditions, after=after)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="s3-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
