"""The gunicorn worker: gthread, except that gunicorn's own error pages are problem+json, not HTML.

gunicorn answers some requests before the app sees them: request line or header over its limits
(414/431), malformed HTTP or chunking (400), and a crash outside the app (500). Its worker writes
those through ``gunicorn.util.write_error``, as an HTML page. The spec says no answer is ever HTML,
so each worker process replaces that one function with :func:`write_problem` when it starts.
"""
from __future__ import annotations

import orjson
from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker as _GThreadWorker

MAX_DETAIL_CHARS = 300


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """Same contract as ``gunicorn.util.write_error``: write a complete response and let the connection close."""
    detail = mesg if len(mesg) <= MAX_DETAIL_CHARS else mesg[:MAX_DETAIL_CHARS] + "…"
    body = orjson.dumps({"type": "about:blank", "title": reason, "status": status_int, "detail": detail or reason})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ThreadWorker(_GThreadWorker):
    def init_process(self) -> None:
        # once per worker process, after the fork; every thread of this worker then uses it
        util.write_error = write_problem
        super().init_process()
