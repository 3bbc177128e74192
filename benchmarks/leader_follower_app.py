"""Diagnostic prototype, never a deployment (no spool, no outage handling, no timeout): group commit
without a writer thread. The first request thread to find no commit in flight leads: it inserts
everything queued (its own record included) and releases the others; records queued meanwhile are
led by their first waiter. Measures what the hand-off to and from the writer thread costs
(``docs/performance.md``)."""
from __future__ import annotations

import threading

from flask import Flask

from modelplatform.app import create_app as platform_app
from modelplatform.audit import InferenceRecord
from modelplatform.audit import rows as audit_rows
from modelplatform.settings import Settings
from no_audit_app import DiscardingAuditLog


class _Waiter:
    __slots__ = ("params", "lock", "lead")

    def __init__(self, params: audit_rows.Row) -> None:
        self.params = params
        self.lead = False
        self.lock = threading.Lock()
        self.lock.acquire()


class LeaderFollowerAuditLog(DiscardingAuditLog):
    """Stores every record (``record`` overridden); health stubs from the diagnostic base."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._mutex = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False
        self._conn = None

    def record(self, record: InferenceRecord) -> None:
        waiter = _Waiter(record.as_params())
        with self._mutex:
            self._queue.append(waiter)
            follow, self._leading = self._leading, True
        if follow:
            waiter.lock.acquire()
            if not waiter.lead:
                return  # committed by a leader
        self._lead()

    def _lead(self) -> None:
        with self._mutex:
            batch, self._queue = self._queue, []
        if self._conn is None:
            self._conn = audit_rows.connect(self.url)
        rejected = audit_rows.store(self._conn, [waiter.params for waiter in batch])
        assert not rejected, rejected
        with self._mutex:
            successor = self._queue[0] if self._queue else None
            if successor is not None:
                successor.lead = True
            else:
                self._leading = False
        for waiter in batch:
            waiter.lock.release()
        if successor is not None:
            successor.lock.release()


def create_app() -> Flask:
    settings = Settings.from_env()
    return platform_app(settings, audit=LeaderFollowerAuditLog(settings.database_url))
