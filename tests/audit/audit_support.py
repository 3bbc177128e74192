"""Audit test helpers: records built like the data plane builds them, a database URL nobody listens on,
and a burst of concurrent calls."""
from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from modelplatform.audit import InferenceRecord
from modelplatform.audit import rows as audit_rows
from modelplatform.audit.spool import Spool
from support.records import make_record  # noqa: F401  (re-exported: the audit tests import it from here)

# port 1 on loopback: connection refused at once, the same error a stopped Postgres gives
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/postgres"

def replay_spool_twice(records: list[InferenceRecord], spool_dir: Path, database_url: str,
                       audit_logs: Callable[..., Any]) -> tuple[int, int]:
    """Spool ``records`` during an outage, replay the spool, put the same file back (as if the process died
    after the COMMIT but before removing it) and replay again; return both replay counts."""
    outage = audit_logs(UNREACHABLE_URL, spool_dir=spool_dir)
    for record in records:
        outage.record(record)
    outage.close()
    (spool_file,) = spool_dir.glob("audit-*.jsonl")
    copy = spool_dir.parent / "copy.jsonl"
    shutil.copy(spool_file, copy)
    conn = audit_rows.connect(database_url)
    try:
        first = Spool(spool_dir).replay(conn)
        shutil.copy(copy, spool_file)
        return first, Spool(spool_dir).replay(conn)
    finally:
        conn.close()


def row_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [str(i) for i in conn.execute(sa.text("select id from inferences")).scalars()]


class Burst:
    """Call ``send()`` in a loop from ``threads`` threads until the ``with`` block ends; each call's return
    value is appended to ``results`` (a call returning None records nothing)."""

    def __init__(self, send: Callable[[], Any], threads: int = 8) -> None:
        self.send = send
        self.results: list[Any] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop) for _ in range(threads)]

    def _loop(self) -> None:
        while not self._stop.is_set():
            result = self.send()
            if result is not None:
                with self._lock:
                    self.results.append(result)

    def __enter__(self) -> Burst:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
