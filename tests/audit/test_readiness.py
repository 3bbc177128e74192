"""DatabaseReadiness: knowledge first, then at most one probe per interval, shared by concurrent callers."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from modelplatform.audit.readiness import DatabaseReadiness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fresh_knowledge_answers_without_probing_and_stale_knowledge_probes_once() -> None:
    clock, probes = Clock(), []
    readiness = DatabaseReadiness(lambda: probes.append(1) or True, interval=5.0, clock=clock)
    readiness.observe(False)  # the writer just lost its connection
    assert [readiness.reachable() for _ in range(100)] == [False] * 100
    assert probes == []
    clock.now += 5.0
    assert [readiness.reachable() for _ in range(100)] == [True] * 100
    assert probes == [1]
    clock.now += 4.9
    readiness.observe(True)  # a committed batch
    clock.now += 4.9
    assert readiness.reachable() and probes == [1]


def test_concurrent_callers_share_one_probe() -> None:
    probes: list[int] = []

    def slow_probe() -> bool:
        probes.append(1)
        time.sleep(0.3)
        return True

    readiness = DatabaseReadiness(slow_probe, interval=60.0)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: readiness.reachable(), range(64)))
    assert answers == [True] * 64
    assert probes == [1]
