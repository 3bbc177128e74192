"""Shadow traffic: copies of unpinned calls run on the ``shadow`` versions, off the response path.

The data plane owns one :class:`ShadowDispatcher` (when some model has shadow versions) and gives it the
function that runs a call; the dispatcher knows nothing else of the data plane. It is a bounded queue and a
few daemon worker threads, started on the first call that needs them in the process that serves (gunicorn
forks its workers; a thread started before the fork would not exist in the child, so a change of pid starts
afresh).

The primary never waits for a shadow: :meth:`ShadowDispatcher.submit` only does a non-blocking put.
Under the gevent worker these "threads" are greenlets, and the data plane runs each shadow's
``predict`` in a real OS thread from gevent's pool (:class:`~modelplatform.isolation.ModelCaller`
with ``offload``), so a CPU-heavy shadow never holds the event loop that serves primaries.
When the queue is full, would hold more than ``max_bytes`` of request bodies, or is closed, the copy
is dropped, counted in :attr:`ShadowDispatcher.dropped` and logged (at most once a second, with the
running total). A shadow's outcome, whatever it is, is recorded as its own ``inferences`` row with
``routed_by = 'shadow'`` and the primary's ``request_id``, and never reaches the caller.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from modelplatform.errors import ProblemError
from modelplatform.inference import ShadowCall
from modelplatform.isolation import is_host_control_flow

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 1000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_WORKERS = 1
DROP_LOG_INTERVAL_S = 1.0
CLOSE_TIMEOUT_S = 5.0


# runs one shadow call to completion, recording it (given by the data plane that owns the dispatcher)
Runner = Callable[[ShadowCall], object]


class ShadowDispatcher:
    """A per-process bounded queue of shadow calls and the threads that run them.

    ``dropped`` counts calls refused because the queue was full (or closed); ``completed`` and
    ``failed`` count calls run (``failed``: the shadow raised, was rejected, or could not be recorded).
    """

    def __init__(self, runner: Runner, *, max_queue: int = DEFAULT_MAX_QUEUE,
                 max_bytes: int = DEFAULT_MAX_BYTES, workers: int = DEFAULT_WORKERS) -> None:
        if max_queue < 1 or workers < 1 or max_bytes < 1:
            raise ValueError("max_queue, max_bytes and workers must be positive")
        self._runner = runner
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self.workers = workers
        self.dropped = 0
        self.completed = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._queued_bytes = 0
        self._last_drop_log = float("-inf")
        self._pid: int | None = None
        self._queue: queue.Queue[ShadowCall | None] = queue.Queue(maxsize=max_queue)
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, call: ShadowCall) -> bool:
        """Queue ``call`` without blocking; False (and counted as dropped) when there is no room."""
        with self._lock:
            reason = None
            try:
                self._start_if_needed()
            except Exception:  # e.g. no thread could be started: shed the copy, never fail the primary
                log.exception("cannot start shadow workers")
                reason = "no worker"
            if reason is None and self._closed:
                reason = "shutting down"
            elif reason is None and self._queued_bytes + call.size > self.max_bytes:
                reason = "queue over its byte budget"
            elif reason is None:
                try:
                    self._queue.put_nowait(call)
                    self._queued_bytes += call.size
                except queue.Full:
                    reason = "queue full"
            if reason is not None:
                self._count_drop(call, reason)
        return reason is None

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> int:
        """Stop taking calls, let the workers finish what is queued for at most ``timeout`` seconds.

        Returns how many queued calls were abandoned (also added to ``dropped``).
        """
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            threads = self._threads if self._pid == os.getpid() else []
        atexit.unregister(self.close)
        deadline = time.monotonic() + timeout
        for _ in threads:
            self._put_stop(deadline)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        abandoned = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                abandoned += 1
        if abandoned:
            with self._lock:
                self.dropped += abandoned
            log.warning("shadow calls abandoned at shutdown", extra={"abandoned": abandoned})
        return abandoned

    def _put_stop(self, deadline: float) -> None:
        try:
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            pass  # the workers are stuck on slow shadows; they are daemons and die with the process

    def _start_if_needed(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        if self._pid is not None:
            # a forked child: the parent's threads do not exist here and its queue is not ours
            self._queue = queue.Queue(maxsize=self.max_queue)
            self._queued_bytes = 0
        self._pid = pid
        self._threads = [
            threading.Thread(target=self._work, name=f"shadow-{i}", daemon=True) for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        atexit.register(self.close)  # drain (bounded) when the worker process exits

    def _count_drop(self, call: ShadowCall, reason: str) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning("shadow call dropped, %s (%d dropped so far)", reason, self.dropped,
                        extra=_log_fields(call))

    def _work(self) -> None:
        work_queue = self._queue
        while True:
            call = work_queue.get()
            if call is None:
                return
            with self._lock:
                self._queued_bytes -= call.size
            ok = False
            try:
                self._runner(call)
                ok = True
            except ProblemError:
                pass  # invalid input, rejection, model error, deadline: the runner has recorded it
            except BaseException as exc:  # a shadow must never take its worker down
                if is_host_control_flow(exc):
                    raise  # the worker is stopping this greenlet
                log.error("shadow call failed", exc_info=exc, extra=_log_fields(call))
            with self._lock:
                if ok:
                    self.completed += 1
                else:
                    self.failed += 1


def _log_fields(call: ShadowCall) -> dict[str, object]:
    # logging must not fail where it reports a failure: read the call defensively
    return {"model": getattr(call.loaded, "model", None), "version": call.route.version}
