"""The dispatcher on its own: lazy threads, a fresh start after a fork, bounded shutdown."""
from __future__ import annotations

import os
import threading
import time

from modelplatform.routing import Route
from modelplatform.shadow import ShadowCall, ShadowDispatcher


def call(size: int = 10) -> ShadowCall:
    # the dispatcher only hands calls to its runner; these runners never look inside
    return ShadowCall(loaded=None, route=Route("2.0.0", "shadow"), request=None, size=size)  # type: ignore[arg-type]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_no_thread_exists_until_the_first_call() -> None:
    ran = threading.Event()
    before = {t.name for t in threading.enumerate()}
    dispatcher = ShadowDispatcher(lambda c: ran.set())
    assert {t.name for t in threading.enumerate()} == before
    assert dispatcher.submit(call())
    assert ran.wait(10)
    assert dispatcher.close(timeout=5) == 0
    assert (dispatcher.completed, dispatcher.failed, dispatcher.dropped) == (1, 0, 0)


def test_a_runner_that_raises_is_counted_and_the_worker_keeps_going() -> None:
    runs: list[int] = []

    def runner(c: ShadowCall) -> None:
        runs.append(c.size)
        if c.size == 1:
            raise ValueError("shadow bug")

    dispatcher = ShadowDispatcher(runner)
    assert dispatcher.submit(call(1)) and dispatcher.submit(call(2))
    assert wait_for(lambda: dispatcher.completed + dispatcher.failed == 2)
    assert (dispatcher.completed, dispatcher.failed, runs) == (1, 1, [1, 2])
    dispatcher.close(timeout=5)


def test_close_is_bounded_and_counts_what_it_abandons() -> None:
    release = threading.Event()
    dispatcher = ShadowDispatcher(lambda c: release.wait(30), max_queue=5)
    for _ in range(3):
        assert dispatcher.submit(call())
    started = time.monotonic()
    abandoned = dispatcher.close(timeout=0.5)
    assert time.monotonic() - started < 5
    release.set()
    assert abandoned in (2, 3)  # the two queued behind the running one (three if the worker had not taken it yet)
    assert dispatcher.dropped == abandoned
    assert not dispatcher.submit(call())  # closed: refused and counted
    assert dispatcher.dropped == abandoned + 1


def test_a_forked_child_starts_its_own_workers() -> None:
    done = threading.Event()
    dispatcher = ShadowDispatcher(lambda c: done.set())
    assert dispatcher.submit(call()) and done.wait(10)  # the parent's worker exists now
    done.clear()

    pid = os.fork()
    if pid == 0:  # child: the parent's thread is gone; a call must still run
        ok = dispatcher.submit(call()) and done.wait(10)
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not finished:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert finished and os.waitstatus_to_exitcode(status) == 0
    dispatcher.close(timeout=5)
