"""Group commit: concurrent requests' records are committed together by one writer thread per process.

A request thread enqueues its record and blocks until the batch holding it is committed (one
multi-row INSERT, one COMMIT), so a burst of N concurrent requests costs one round trip and one WAL
flush instead of N. Only while Postgres is unreachable are batches appended to the local
:class:`~modelplatform.audit.spool.Spool` (fsynced before any request is released), and replayed
from the same thread once Postgres answers again. Why this design and what it measured:
``docs/performance.md``.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg2
import psycopg2.extensions

from modelplatform.audit import rows as audit_rows
from modelplatform.audit.base import AuditHealth, AuditMeter, NoMeter
from modelplatform.audit.readiness import DEFAULT_PROBE_INTERVAL, DatabaseReadiness
from modelplatform.audit.records import InferenceRecord
from modelplatform.audit.spool import Spool
from modelplatform.errors import AuditUnavailable

log = logging.getLogger(__name__)

UNAVAILABLE = "the inference could not be recorded, so it was not answered; retry"


class _Pending:
    """One record waiting for its batch. ``error`` is set before release when it was not stored.

    A bare lock, held until the writer settles the record, is the cheapest wake-up Python offers
    (an ``Event`` allocates a Condition and a second lock per wait).
    """

    __slots__ = ("record", "error", "settled", "_lock")

    def __init__(self, record: InferenceRecord) -> None:
        self.record = record
        self.error: AuditUnavailable | None = None
        self.settled = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def wait(self, timeout: float) -> bool:
        return self._lock.acquire(timeout=timeout)

    def done(self) -> None:
        if not self.settled:
            self.settled = True
            self._lock.release()

    def fail(self, detail: str = UNAVAILABLE) -> None:
        if not self.settled:
            self.error = AuditUnavailable(detail)
            self.done()


_STOP = object()
# seconds the writer (its thread or greenlet, and its one database connection) stays up with nothing to write:
# a minute, so a service with any steady traffic never pays a reconnect (TCP, authentication, PREPARE: a few
# ms, tens with TLS) on a request, while an idle worker gives its connection back within a minute (off-peak,
# scale-in; docs/operations.md, "The Postgres connection budget")
DEFAULT_IDLE_TIMEOUT = 60.0


class GroupCommitAuditLog:
    """The default audit log. Thread-safe; the writer thread and its connection are created lazily in
    the process that records (gunicorn workers fork before ``create_app``; a pid check covers any
    other fork), and the thread exits after ``idle_timeout`` seconds with nothing to do.

    ``spool_dir`` None disables the spool: an outage then answers 503 (:class:`AuditUnavailable`).
    Batches committed, rows refused and the spool's depth and traffic are reported to ``meter``
    (:class:`~modelplatform.metrics.Metrics` in an app: ``/metrics``). ``close()`` writes what is queued and
    stops the writer; an app closes it at worker exit (:func:`modelplatform.app.close_app`).
    """

    def __init__(self, url: str, *, spool_dir: Path | None = None, max_batch: int = 512,
                 wait_timeout: float = 10.0, retry_interval: float = 1.0, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 readiness_interval: float = DEFAULT_PROBE_INTERVAL, prepare: bool = True,
                 meter: AuditMeter | None = None) -> None:
        self.url = url
        self.prepare = prepare  # False behind PgBouncer's transaction pooling (see audit.rows)
        self.meter: AuditMeter = meter if meter is not None else NoMeter()
        self.spool = Spool(spool_dir, self.meter) if spool_dir is not None else None
        self.max_batch = max_batch
        self.wait_timeout = wait_timeout
        self.retry_interval = retry_interval
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._conn: psycopg2.extensions.connection | None = None
        self._inherited: list[object] = []
        self._retry_at = 0.0
        self._last_outage_log = 0.0
        # what /readyz reports: fed by this writer's own commits and lost connections (audit/readiness.py)
        self.readiness = DatabaseReadiness(self.ping, readiness_interval)

    # -- request side ---------------------------------------------------------------------------

    def record(self, record: InferenceRecord) -> None:
        """Return once ``record`` is committed (or, during an outage, fsynced to the spool).

        Raises :class:`AuditUnavailable` when it was not stored: database unreachable with no usable
        spool, the row rejected by the database, or no confirmation within ``wait_timeout`` seconds
        (the row may still land later: a row without a 200 is allowed, a 200 without a row is not).
        """
        pending = _Pending(record)
        with self._lock:
            self._ensure_writer()
            self._queue.put(pending)
        if not pending.wait(self.wait_timeout):
            log.error("audit write not confirmed in time", extra={"inference_id": record.id})
            raise AuditUnavailable(UNAVAILABLE)
        if pending.error is not None:
            raise pending.error

    def start(self) -> None:
        """Start the writer now when spools left by crashed processes are waiting, so they are
        replayed before serving; otherwise the writer starts with the first record."""
        if self.spool is not None and self.spool.has_leftovers():
            with self._lock:
                self._ensure_writer()

    def spool_depth(self) -> int:
        """Records in this process's spool, not yet replayed into Postgres."""
        return self.spool.depth if self.spool is not None else 0

    def ping(self) -> bool:
        try:
            conn = audit_rows.connect(self.url, connect_timeout=2, prepare=False)
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("select 1")
            return True
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    def health(self) -> AuditHealth:
        database = self.readiness.reachable()
        spool_ok = self.spool is not None and self.spool.writable()
        return AuditHealth(database=database, spool_depth=self.spool_depth(), can_record=database or spool_ok)

    def close(self) -> None:
        """Write what is queued, stop the writer (waiting up to ``wait_timeout``), disconnect, and release the
        spool file (anything left in it is replayed by the next process to start)."""
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(self.wait_timeout)
        if self.spool is not None:
            self.spool.close()

    def _ensure_writer(self) -> None:
        # caller holds self._lock
        pid = os.getpid()
        if self._pid != pid:
            if self._conn is not None:
                # a parent's connection: closing it here would end the parent's session too
                self._inherited.append(self._conn)
            self._conn, self._thread, self._pid = None, None, pid
            self._queue = queue.SimpleQueue()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    # -- writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:
            # a bug must not leave a dead writer that every later record waits on: the next one restarts it
            log.exception("audit writer stopped unexpectedly")
            with self._lock:
                self._disconnect()
                self._thread = None

    def _serve(self) -> None:
        self._replay()
        while True:
            timeout = self.retry_interval if self.spool_depth() else self.idle_timeout
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                if self.spool_depth():
                    self._replay()
                elif self._exit_if_idle():
                    return
                continue
            # let every request that is ready to run reach its record() before the batch is cut: under
            # gevent the writer is woken by the first record, before the other greenlets of this loop turn
            # have queued theirs (one switch when nobody else is ready; under threads, a GIL hand-over)
            time.sleep(0)
            batch: list[_Pending] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write_safely(batch)
            if stop and self._exit_if_idle():
                return

    def _exit_if_idle(self) -> bool:
        # all under the lock: a record arriving now starts a new writer only after this one let go of
        # the connection and the spool file, so the two never share either
        with self._lock:
            if not self._queue.empty():
                return False
            self._disconnect()
            if self.spool is not None:
                self.spool.release_if_empty()
            self._thread = None
        return True

    def _write_safely(self, batch: list[_Pending]) -> None:
        try:
            self._write(batch)
        except Exception:  # the writer must survive anything, and no request may wait forever
            log.exception("audit writer failed on a batch")
            self._disconnect()
            for pending in batch:
                pending.fail()

    def _write(self, batch: list[_Pending]) -> None:
        rows = [pending.record.as_params() for pending in batch]
        conn = self._connection()
        if conn is not None:
            try:
                if self.spool_depth():
                    self._replay_on(conn, whole=False)
                rejected = audit_rows.store(conn, rows)
            except psycopg2.Error as exc:  # store() only lets "unreachable" through
                self._lost_connection(exc)
            else:
                self._release(batch, rejected)
                return
        self._spool_or_fail(batch, rows)

    def _release(self, batch: list[_Pending], rejected: list[tuple[int, str]]) -> None:
        self.readiness.observe(True)
        self.meter.batch_committed(len(batch), len(rejected))
        for index, reason in rejected:
            # a data error, not an outage: retrying cannot help and spooling would only defer it
            log.error("audit row rejected by the database", extra={
                "inference_id": batch[index].record.id, "reason": reason})
            batch[index].fail("the inference record was rejected by the audit database, so it was not answered")
        for pending in batch:
            pending.done()

    def _spool_or_fail(self, batch: list[_Pending], rows: Sequence[audit_rows.Row]) -> None:
        if self.spool is None:
            for pending in batch:
                pending.fail()
            return
        try:
            self.spool.append(rows)
        except OSError as exc:
            log.error("audit spool write failed; answering 503", extra={
                "spool_dir": str(self.spool.directory), "error": str(exc)})
            for pending in batch:
                pending.fail()
            return
        now = time.monotonic()
        if now - self._last_outage_log >= 5.0:
            self._last_outage_log = now
            log.warning("audit database unreachable: spooling, spool depth %d", self.spool_depth(),
                        extra={"spool_depth": self.spool_depth(), "spool_file": str(self.spool.path)})
        for pending in batch:
            pending.done()

    def _replay(self) -> None:
        if self.spool is None:
            return
        conn = self._connection()
        if conn is None:
            return
        try:
            self._replay_on(conn)
        except psycopg2.Error as exc:
            self._lost_connection(exc)

    def _replay_on(self, conn: psycopg2.extensions.connection, whole: bool = True) -> None:
        """Replay the spool (all of it, or a bounded slice so live requests never wait for a whole
        spool). Raises only :class:`psycopg2.Error` (unreachable); anything else is logged, because a
        broken spool file must not fail live requests or stop the writer."""
        assert self.spool is not None
        try:
            replayed = self.spool.replay(conn) if whole else self.spool.replay_some(conn)
        except psycopg2.Error:
            raise
        except Exception:
            log.exception("audit spool replay failed", extra={"spool_dir": str(self.spool.directory)})
            return
        if replayed:
            log.warning("audit spool replayed %d record(s); spool depth %d", replayed, self.spool_depth(),
                        extra={"spool_depth": self.spool_depth()})

    def _connection(self) -> psycopg2.extensions.connection | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() < self._retry_at:
            return None
        try:
            self._conn = audit_rows.connect(self.url, prepare=self.prepare)
        except psycopg2.Error as exc:
            self._lost_connection(exc)
            return None
        return self._conn

    def _lost_connection(self, exc: BaseException) -> None:
        self.readiness.observe(False)
        self._disconnect()
        self._retry_at = time.monotonic() + self.retry_interval
        now = time.monotonic()
        if now - self._last_outage_log >= 5.0:
            self._last_outage_log = now
            log.warning("audit database unreachable: %s", str(exc).strip(), extra={"spool_depth": self.spool_depth()})

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass
