"""Load for the gunicorn tests: client threads that send predicts and record every outcome."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

QUOTE = {"vehicle": "suv", "driver_age": 40}


class Load:
    """Threads sending unpinned predicts, recording every outcome: half on keep-alive connections (which
    the old workers close while shutting down), half on a fresh connection per request."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url + "/models/auto_pricing/predict"
        self.stop = threading.Event()
        self.results: list[tuple[float, int, str]] = []  # (time, status, version or error)
        self.events: list[tuple[float, str]] = []  # what the test did when, to read failures against
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self._go = threading.Event()
        self._go.set()
        self._busy = threading.Semaphore(threads)
        self._threads = threads
        self.threads = [threading.Thread(target=self._run, args=(n % 2 == 0,), daemon=True) for n in range(threads)]

    def _run(self, keep_alive: bool) -> None:
        session = requests.Session()
        headers = {} if keep_alive else {"Connection": "close"}
        while not self.stop.is_set():
            if not self._go.wait(timeout=0.1):
                continue
            with self._busy:
                started = time.monotonic()
                try:
                    r = session.post(self.url, json=QUOTE, headers=headers, timeout=30)
                    outcome = (time.monotonic(), r.status_code, r.headers.get("X-Model-Version", r.text[:200]))
                except requests.RequestException as exc:
                    outcome = (time.monotonic(), 0, repr(exc))
                with self.lock:
                    self.results.append(outcome)
                    self.latencies.append(outcome[0] - started)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)

    @contextmanager
    def paused(self, timeout: float = 30) -> Iterator[None]:
        """No request in flight inside the block; load resumes after it.

        For killing a worker: the requests a SIGKILLed worker is serving are lost by definition (a client
        would retry them); what a test checks is that every other request is answered.
        """
        self._go.clear()
        acquired = 0
        try:
            for _ in range(self._threads):
                assert self._busy.acquire(timeout=timeout), "a request stayed in flight"
                acquired += 1
            yield
        finally:
            for _ in range(acquired):
                self._busy.release()
            self._go.set()

    def wait_for_version(self, version: str, timeout: float = 90) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for at, status, got in self.results:
                    if status == 200 and got == version:
                        return at
            time.sleep(0.1)
        raise AssertionError(f"version {version} never answered within {timeout}s")

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` more requests have been answered (whatever the outcome)."""
        with self.lock:
            target = len(self.results) + count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) >= target:
                    return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} more requests answered within {timeout}s")

    def mark(self, event: str) -> None:
        self.events.append((time.monotonic(), event))

    def failures(self) -> list[tuple[float, int, str]]:
        with self.lock:
            return [r for r in self.results if r[1] != 200]

    def timeline(self) -> str:
        """Failures and marked events in time order, for an assertion message."""
        rows = sorted([(at, f"FAILED {status} {what}") for at, status, what in self.failures()] +
                      [(at, f"-- {event}") for at, event in self.events])
        start = rows[0][0] if rows else 0
        return "\n".join(f"{at - start:8.3f}s {what}" for at, what in rows)
