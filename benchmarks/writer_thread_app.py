"""Diagnostic, never a deployment: the platform under the gevent worker with the audit writer in a real OS
thread instead of a greenlet, to measure which costs less (docs/performance.md).

The thread takes records from an unpatched (real) queue and blocks on Postgres without the event loop;
it wakes each waiting request greenlet through ``loop.run_callback_threadsafe`` (a gevent lock released
from a foreign thread would only be noticed at the hub's next wake-up, up to a second later)."""
from __future__ import annotations

import os

import gevent
from flask import Flask
from gevent import monkey

from modelplatform.app import create_app as platform_app
from modelplatform.audit.group_commit import GroupCommitAuditLog, _Pending
from modelplatform.errors import AuditUnavailable
from modelplatform.settings import Settings


class _HubPending(_Pending):
    """Settled by the writer thread, released in the requesting greenlet's hub."""

    __slots__ = ("hub",)

    def __init__(self, record, hub) -> None:  # noqa: ANN001
        super().__init__(record)
        self.hub = hub

    def done(self) -> None:
        if not self.settled:
            self.settled = True
            self.hub.loop.run_callback_threadsafe(self._lock.release)


class _Native:
    """What ``GroupCommitAuditLog.close`` needs of its writer: ``join(timeout)``."""

    def __init__(self, thread) -> None:  # noqa: ANN001
        self.thread = thread

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


class NativeThreadWriter(GroupCommitAuditLog):
    def record(self, record) -> None:  # noqa: ANN001 - same contract as the parent's
        pending = _HubPending(record, gevent.get_hub())
        with self._lock:
            self._ensure_writer()
            self._queue.put(pending)
        if not pending.wait(self.wait_timeout):
            raise AuditUnavailable("not confirmed in time")
        if pending.error is not None:
            raise pending.error

    def _ensure_writer(self) -> None:
        pid = os.getpid()
        if self._pid != pid:
            self._conn, self._thread, self._pid = None, None, pid
            self._queue = monkey.get_original("queue", "SimpleQueue")()
        if self._thread is None:
            thread_class = monkey.get_original("threading", "Thread")
            # the original Thread class still starts through the patched start_new_thread: use the real one
            start = monkey.get_original("_thread", "start_new_thread")
            done = monkey.get_original("threading", "Event")()

            def run() -> None:
                try:
                    self._run()
                finally:
                    done.set()

            start(run, ())
            self._thread = _Native(type("T", (), {"join": lambda _, t=None: done.wait(t)})())
            del thread_class


def create_app() -> Flask:
    settings = Settings.from_env()
    return platform_app(settings, audit=NativeThreadWriter(settings.database_url, spool_dir=settings.audit_spool_dir))
