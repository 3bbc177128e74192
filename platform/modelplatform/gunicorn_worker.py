"""The gunicorn workers: gevent by default, gthread on request (``WEB_WORKER``), both hardened the same way.

- **Problem+json error pages.** gunicorn answers some requests before the app sees them: request line
  or header over its limits (414/431), malformed HTTP or chunking (400), and a crash outside the
  app (500). It writes those through ``gunicorn.util.write_error``, as an HTML page; the spec says no
  answer is ever HTML, so each worker process replaces that one function with :func:`write_problem`.
- **Boot failures never halt a master that has served.** A worker whose ``create_app()`` raises
  retries with backoff (1, 2, 4 … ``WEB_BOOT_RETRY_MAX`` seconds), telling the master it is alive
  meanwhile, and reports it: an ERROR log per attempt, ``modelplatform_worker_boot_failures_total``,
  and a state file that ``/readyz`` on the healthy workers lists (:mod:`modelplatform.bootstate`).
  Until some worker of this master has booted, a failure still exits with gunicorn's boot-error
  code, so a deploy whose very first workers cannot boot fails clearly, as before.
- **Host exits are not model failures.** gunicorn's abort (a worker timeout) raises
  :class:`~modelplatform.isolation.HostExit`, which the data plane never records as a model error.
- **gevent only: read deadlines.** Every connection's socket is wrapped in :class:`DeadlineSocket`:
  a request head must arrive within ``WEB_HEADER_TIMEOUT`` seconds, its body within
  ``WEB_BODY_TIMEOUT``, and an idle keep-alive connection is closed after ``WEB_KEEPALIVE``. psycopg2
  is made cooperative (psycogreen), so a request waiting on Postgres yields the worker to others.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import sys
import time
from typing import Any

import gevent
import orjson
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker
from gunicorn.workers.gthread import ThreadWorker as _GThreadWorker

from modelplatform import bootstate, forkenv
from modelplatform.errors import RequestTimeout
from modelplatform.isolation import HostExit
from modelplatform.settings import Limits

log = logging.getLogger("modelplatform.worker")

MAX_DETAIL_CHARS = 300
BOOT_RETRY_FIRST_S = 1.0


def write_problem(sock: Any, status_int: int, reason: str, mesg: str, problem_type: str = "about:blank") -> None:
    """Same contract as ``gunicorn.util.write_error``: write a complete response and let the connection close."""
    detail = mesg if len(mesg) <= MAX_DETAIL_CHARS else mesg[:MAX_DETAIL_CHARS] + "…"
    body = orjson.dumps({"type": problem_type, "title": reason, "status": status_int, "detail": detail or reason})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


# -- boot with retry (both workers) -----------------------------------------------------------------

class BootFailed(Exception):
    """``create_app()`` raised a ``BaseException`` that is not an ``Exception`` (reported as a boot failure)."""


def _no_access_log(*args: Any, **kwargs: Any) -> None:
    pass


class _Hardened:
    """Mixed into both gunicorn workers (first in the MRO): boot retry, problem+json pages, host exits."""

    limits: Limits

    def init_process(self) -> None:
        # once per worker process, after the fork; every thread or greenlet of this worker uses it
        util.write_error = write_problem
        if not self.cfg.accesslog:  # type: ignore[attr-defined]
            # the app writes its own line per request; gunicorn would still build its access-log
            # fields for every request (the logging config makes it think a log is wanted) to drop them
            self.log.access = _no_access_log  # type: ignore[attr-defined]
        from modelplatform.gunicorn_conf import server  # read and checked in the master; inherited at the fork

        self.limits = server.limits
        self._boot_failures: Any = None
        super().init_process()  # type: ignore[misc]

    def load_wsgi(self) -> None:
        directory = forkenv.metrics_dir()
        attempts, since = 0, time.time()
        while True:
            try:
                super().load_wsgi()  # type: ignore[misc]
                break
            except BaseException as exc:
                if self._stopping() or isinstance(exc, HostExit):
                    raise  # the master stopped or aborted this worker while it booted
                if not isinstance(exc, Exception):
                    # e.g. SystemExit from a model's unpickling: gunicorn would exit with *its* code (0: a
                    # respawn loop, 3: a halt); it is a boot failure like any other
                    failed = BootFailed(f"{type(exc).__name__} while booting: {exc}")
                    failed.__cause__ = exc
                    exc = failed
                if directory is None or not bootstate.has_booted(directory):
                    raise exc  # no worker of this master has served yet: fail the deploy (gunicorn halts)
                attempts += 1
                delay = min(BOOT_RETRY_FIRST_S * 2 ** (attempts - 1), self.limits.boot_retry_max)
                log.error("worker failed to boot (attempt %d), retrying in %.0f s: %s", attempts, delay, exc,
                          exc_info=exc, extra={"attempts": attempts, "retry_in_s": delay})
                self._count_boot_failure()
                bootstate.record_failure(directory, os.getpid(), attempts=attempts, since=since,
                                         error=f"{type(exc).__name__}: {exc}", next_retry_in=delay)
                self._pause(delay)
                if self._stopping():
                    bootstate.clear_failure(directory, os.getpid())
                    sys.exit(0)  # stopped (HUP, TERM) while retrying: a normal exit, not a boot error
        # everything loaded so far (the app, its models, boto3's service data) lives as long as the worker:
        # out of the collector's sight, a full collection walks only what requests allocate. Measured: a
        # full collection of a process holding the app took 80-110 ms (a pause for every connection of
        # a gevent worker), 0.3 ms after the freeze (docs/performance.md)
        gc.collect()
        gc.freeze()
        if directory is not None:
            bootstate.clear_failure(directory, os.getpid())
            bootstate.mark_booted(directory)
            if attempts:
                log.warning("worker booted after %d failed attempt(s)", attempts, extra={"attempts": attempts})

    def _stopping(self) -> bool:
        """The master stopped this worker (a method, not ``self.alive`` inline: it changes under our feet, in a
        signal handler, so it must not be narrowed like a local)."""
        return not self.alive

    def _pause(self, seconds: float) -> None:
        """Sleep, telling the master every second that this worker is alive (else it is killed as timed out)."""
        until = time.monotonic() + seconds
        while not self._stopping() and time.monotonic() < until:
            self.notify()  # type: ignore[attr-defined]
            time.sleep(min(1.0, max(0.0, until - time.monotonic())))

    def _count_boot_failure(self) -> None:
        try:
            if self._boot_failures is None:
                from prometheus_client import Counter

                # no registry: in multiprocess mode the value lands in this worker's file in
                # PROMETHEUS_MULTIPROC_DIR, which every healthy worker's /metrics adds up
                self._boot_failures = Counter("modelplatform_worker_boot_failures",
                                              "Failed boot attempts of gunicorn workers (each is retried)",
                                              registry=None)
            self._boot_failures.inc()
        except Exception:  # noqa: BLE001 - reporting must never stop the retry
            log.exception("cannot count the boot failure")

    def handle_abort(self, sig: int, frame: Any) -> None:
        # the master timed this worker out (WEB_TIMEOUT). gunicorn exits with sys.exit(1); HostExit is
        # that same SystemExit, marked so the data plane never swallows it as a model's failure
        self.alive = False
        self.cfg.worker_abort(self)  # type: ignore[attr-defined]
        raise HostExit(1)


class ThreadWorker(_Hardened, _GThreadWorker):
    """gthread (``WEB_WORKER=gthread``): one OS thread per in-flight request. Kept for models that
    compute for long without yielding; it has no read deadlines (put a buffering proxy in front)."""


# -- gevent ---------------------------------------------------------------------------------------------

class DeadlineSocket:
    """A client socket whose reads stop at the current phase's deadline.

    Phases: ``idle`` (no byte of the next request yet: a fresh connection has ``header`` seconds, a
    kept-alive one ``keepalive``), ``head`` (bytes arrived, head not complete: ``header`` seconds from
    the first byte, or from accept on a fresh connection), ``body`` (set by the worker when the head
    is parsed: ``body`` seconds for the app to read it). A read past the deadline raises
    :class:`~modelplatform.errors.RequestTimeout` with the phase: ``idle`` closes silently, ``head``
    is answered 408 by the worker, ``body`` by the app's error handler (then the connection closes:
    where the next request would start is unknown). Writes are bounded by ``body`` seconds too.
    """

    __slots__ = ("_sock", "_limits", "_phase", "_deadline", "_fresh", "_out", "_linger")

    # gunicorn writes a response's head and body in two calls; held back and sent together, they cost
    # one send (and one packet) instead of two. Anything larger goes out as it comes.
    MAX_HELD_BYTES = 64 * 1024
    # after a 408 the client may still be sending: closing at once would make the kernel answer its next
    # bytes with a reset, which can destroy the 408 before the client reads it. Lingering close: stop
    # writing, read and drop what still comes, for this long at most (as nginx and Apache do)
    LINGER_S = 2.0
    LINGER_MAX_BYTES = 256 * 1024

    def __init__(self, sock: Any, limits: Limits) -> None:
        self._sock = sock
        self._limits = limits
        self._phase: str | None = "idle"
        self._fresh = True
        self._deadline = time.monotonic() + limits.header
        self._out: list[bytes] | None = None
        self._linger = False

    def reading_body(self) -> None:
        """The head is parsed: the app reads the body now, and the answer is held until :meth:`awaiting_request`."""
        if self._phase is not None:
            self._phase, self._deadline = "body", time.monotonic() + self._limits.body
        self._out = []

    def awaiting_request(self) -> None:
        """The answer is complete: send it, and wait for the next request (keep-alive)."""
        self.flush()
        if self._phase is not None:
            self._phase, self._fresh = "idle", False
            self._deadline = time.monotonic() + self._limits.keepalive

    def flush(self) -> None:
        held, self._out = self._out, None
        if held:
            self._send(b"".join(held))

    def recv(self, size: int, *flags: int) -> bytes:
        if self._phase is None:
            return b""  # a body read timed out: this connection reads nothing more
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._expired()
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            raise self._expired() from None
        if data and self._phase == "idle":
            self._phase = "head"
            if not self._fresh:
                self._deadline = time.monotonic() + self._limits.header
        return data

    def sendall(self, data: bytes, *flags: int) -> None:
        held = self._out
        if held is not None and not flags:
            held.append(bytes(data))
            if sum(map(len, held)) > self.MAX_HELD_BYTES:
                self.flush()
                self._out = []
            return
        self.flush()
        self._send(data, *flags)

    def send(self, data: bytes, *flags: int) -> int:
        self.flush()
        self._sock.settimeout(self._limits.body)
        return self._sock.send(data, *flags)

    def close(self) -> None:
        try:
            self.flush()
            if self._linger:
                self._drain_before_close()
        except OSError:
            pass
        finally:
            self._sock.close()

    def _drain_before_close(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)
        until, drained = time.monotonic() + self.LINGER_S, 0
        while drained < self.LINGER_MAX_BYTES:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                return
            drained += len(data)

    def _send(self, data: bytes, *flags: int) -> None:
        self._sock.settimeout(self._limits.body)
        self._sock.sendall(data, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _expired(self) -> RequestTimeout:
        phase = self._phase or "body"
        self._linger = phase != "idle"  # a 408 follows: let the client read it
        if phase == "body":
            self._phase = None
            limit = self._limits.body
            detail = f"the request body was not received within {limit:g} s"
        elif phase == "head":
            limit = self._limits.header
            detail = f"the request line and headers were not received within {limit:g} s"
        else:
            limit = self._limits.keepalive if not self._fresh else self._limits.header
            detail = f"no request within {limit:g} s"
        return RequestTimeout(detail, phase=phase)


class GeventWorker(_Hardened, _GeventWorker):
    """gunicorn's gevent worker (the default): one greenlet per connection, read deadlines, psycopg2
    cooperative. A model that computes without yielding holds this worker's loop until it returns, or
    until the master's worker timeout (``WEB_TIMEOUT``) aborts the worker and replaces it."""

    def patch(self) -> None:
        super().patch()
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()  # every psycopg2 wait goes through gevent's hub instead of blocking the worker

    def timeout_ctx(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]  # stubs say None
        # gunicorn bounds next(parser) by `keepalive` seconds and then closes silently, whatever was
        # received; DeadlineSocket bounds each phase by its own setting instead
        return contextlib.nullcontext()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # DeadlineSocket stands in for the socket it wraps (same methods), which the stubs cannot know
        super().handle(listener, DeadlineSocket(client, self.limits), addr)  # type: ignore[arg-type]

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        # a client that sends its next request as soon as it has an answer never makes its greenlet wait
        # for data, so without this yield one busy connection could be served over and over while
        # the others' requests sit unread (measured: p99 of the bare app 216 ms → 47 ms)
        gevent.sleep(0)
        sock.reading_body()
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            sock.awaiting_request()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, RequestTimeout):
            if exc.phase != "idle":  # a client that sent nothing gets nothing: it may be a pre-opened connection
                log.info("request timeout (%s): %s", exc.phase, exc.detail,
                         extra={"phase": exc.phase, "client": (addr or ("",))[0]})
                try:
                    write_problem(client, exc.status, exc.title, exc.detail, exc.type)
                except OSError:
                    pass
            return
        super().handle_error(req, client, addr, exc)
