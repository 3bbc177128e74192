"""Racing publishers: each in its own thread, released at the same moment, as on different machines."""
from __future__ import annotations

import threading
from collections.abc import Callable

from modelplatform.store import VersionExists


def race(publishers: list[Callable[[], object]], timeout: float = 120) -> list[object]:
    """Run every publisher at once; returns what each returned, or the :class:`VersionExists` it raised
    (anything else it raises fails the test). Bounded: every thread must finish within ``timeout``."""
    barrier = threading.Barrier(len(publishers), timeout=30)
    results: list[object] = [None] * len(publishers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = publishers[i]()
        except VersionExists as exc:
            results[i] = exc
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(publishers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a publisher did not finish"
    assert not errors, errors
    return results


def winners(results: list[object]) -> list[int]:
    return [i for i, result in enumerate(results) if not isinstance(result, VersionExists)]
