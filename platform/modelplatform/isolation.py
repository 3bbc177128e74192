"""Calling foreign model code: under a deadline, and without letting what it raises stop the host.

A model's ``predict`` may raise anything, ``BaseException`` included (``SystemExit``,
``KeyboardInterrupt``, ``GeneratorExit``): the data plane records it as that inference's failure.
Only the host's own control flow passes through untouched (:func:`is_host_control_flow`): gevent's
``GreenletExit`` (a worker stopping its connections) and ``Timeout`` objects that are not ours, and
:class:`HostExit`, which the worker's abort handler raises when the master times it out.

How a deadline is enforced depends on the worker model (``docs/operations.md``, "Deadlines"):

- gevent worker (the process is monkey-patched): a ``gevent.Timeout`` interrupts ``predict`` the
  moment it waits (I/O, ``sleep``, a lock). A ``predict`` that computes without ever yielding
  cannot be interrupted; it holds the worker's event loop until gunicorn's worker timeout
  (``WEB_TIMEOUT``) has the master abort the worker, which is then replaced.
- threads (gthread, tests, the CLI): a thread cannot be interrupted; a ``predict`` that returns
  after its deadline is still answered as exceeded, never as a late 200.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, cast


class HostExit(SystemExit):
    """Raised by the host itself to stop a worker (e.g. gunicorn's abort after a worker timeout);
    never swallowed as a model's failure."""


class DeadlineExpired(Exception):
    """``predict`` did not return within its deadline (internal: the data plane records it and
    answers :class:`~modelplatform.errors.DeadlineExceeded`)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


def cooperative() -> bool:
    """True in a process whose threads are gevent greenlets (the gevent worker monkey-patched it)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))


def is_host_control_flow(exc: BaseException) -> bool:
    """True for exceptions that belong to the host, not the model: let them through unrecorded."""
    if isinstance(exc, HostExit):
        return True
    gevent = sys.modules.get("gevent")
    return gevent is not None and isinstance(exc, (gevent.GreenletExit, gevent.Timeout))


class ModelCaller:
    """``caller(predictor, payload)`` returns ``predictor.predict(payload)`` or raises what it raised,
    or :class:`DeadlineExpired` after ``deadline`` seconds (None: no deadline).

    ``offload=True`` runs ``predict`` in a real OS thread from gevent's thread pool when the process
    is cooperative, so a CPU-heavy model cannot hold the event loop (used for shadow calls, which
    nobody waits for); the greenlet that asked stops waiting at the deadline, the thread runs on.
    """

    def __init__(self, deadline: float | None, *, offload: bool = False) -> None:
        if deadline is not None and deadline <= 0:
            raise ValueError("deadline must be positive")
        self.deadline = deadline
        self.offload = offload
        self._cooperative: bool | None = None

    def __call__(self, predictor: Any, payload: Any) -> Any:
        if self._cooperative is None:
            # decided on first use, in the serving process (gunicorn patches after the fork)
            self._cooperative = cooperative()
        started = time.monotonic()
        if not self._cooperative:
            output = predictor.predict(payload)
        elif self.offload:
            output = self._in_thread(predictor, payload)
        else:
            output = self._in_greenlet(predictor, payload)
        if self.deadline is not None and time.monotonic() - started > self.deadline:
            # not interruptible (a thread, a loop that never yielded, or a model that swallowed
            # our Timeout): a late answer is still not a 200
            raise DeadlineExpired(self.deadline)
        return output

    def _in_greenlet(self, predictor: Any, payload: Any) -> Any:
        if self.deadline is None:
            return predictor.predict(payload)
        import gevent

        timer = gevent.Timeout(self.deadline)
        timer.start()
        try:
            return predictor.predict(payload)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise DeadlineExpired(self.deadline) from None
        finally:
            timer.close()

    def _in_thread(self, predictor: Any, payload: Any) -> Any:
        import gevent

        # the native thread never lets an exception escape (a KeyboardInterrupt there would reach
        # the pool's machinery): it hands the outcome back and the greenlet re-raises it
        result = gevent.get_hub().threadpool.spawn(_outcome, predictor.predict, payload)
        try:
            ok, value = cast("tuple[bool, Any]", result.get(timeout=self.deadline))
        except gevent.Timeout:
            raise DeadlineExpired(self.deadline or 0.0) from None
        if ok:
            return value
        raise value


def _outcome(function: Callable[[Any], Any], argument: Any) -> tuple[bool, Any]:
    try:
        return True, function(argument)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
        return False, exc
