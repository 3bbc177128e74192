"""Is the audit database reachable? Answered for ``/readyz`` without costing the database a connection per call.

Load balancers and orchestrators poll readiness as often as they like, unauthenticated; a fresh
Postgres connection per poll (what a plain ``ping`` costs) let a poller open hundreds of connections a
second. :class:`DatabaseReadiness` answers from what is already known instead:

- the audit writer reports every batch it commits (reachable) and every connection it loses
  (unreachable) through :meth:`DatabaseReadiness.observe`; under traffic that is fresher than any probe;
- only when nothing was learnt for ``interval`` seconds does a call probe the database itself (one
  connection, ``select 1``, closed), and concurrent calls share that one probe.

So the worst case is one connection per ``interval`` per process (per gunicorn worker), however often
``/readyz`` is called, and an outage shows within ``interval`` seconds (at once when a write fails).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_PROBE_INTERVAL = 5.0


class DatabaseReadiness:
    """Thread-safe. ``probe`` returns whether the database answers now (it may take its connect timeout)."""

    def __init__(self, probe: Callable[[], bool], interval: float = DEFAULT_PROBE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._known: tuple[float, bool] | None = None  # (when, reachable)

    def observe(self, reachable: bool) -> None:
        """Record what was just learnt about the database (by a write, a lost connection or a probe)."""
        self._known = (self._clock(), reachable)

    def reachable(self) -> bool:
        """The latest knowledge if it is younger than ``interval``, else the result of one probe."""
        known = self._fresh()
        if known is not None:
            return known
        with self._lock:  # one probe at a time; callers waiting on it use its result
            known = self._fresh()
            if known is not None:
                return known
            reachable = self._probe()
            self.observe(reachable)
            return reachable

    def _fresh(self) -> bool | None:
        known = self._known
        if known is not None and self._clock() - known[0] < self.interval:
            return known[1]
        return None
