"""The platform through a real PgBouncer in transaction mode (the pool mode docs/operations.md recommends):
SQL PREPARE breaks there, the unprepared INSERT (DATABASE_POOL_MODE=transaction) does not, under load, and a
writer left with the default setting falls back to it."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
import requests

from modelplatform.audit import partitions
from modelplatform.audit import rows as audit_rows
from support import Platform
from support.models import Echo
from support.pgbouncer import pgbouncer
from support.processes import ROOT, gunicorn_web
from support.records import make_record


@pytest.mark.slow
def test_sql_prepare_breaks_under_transaction_pooling_and_the_writer_falls_back(
        clean_db, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Why DATABASE_POOL_MODE exists: a prepared statement belongs to one server connection, which the next
    client may get too (already prepared) or this client may not get back (gone). Should the setting be
    missed, the writer falls back to the unprepared INSERT with a warning instead of failing every write."""
    records = [make_record() for _ in range(6)]
    with pgbouncer(database_url, pool_mode="transaction", pool_size=2) as url:
        raw = [psycopg2.connect(url) for _ in range(2)]
        try:
            for conn in raw:
                conn.autocommit = True
            raw[0].cursor().execute("prepare probe as select 1")
            with pytest.raises(psycopg2.errors.DuplicatePreparedStatement):
                raw[1].cursor().execute("prepare probe as select 1")  # the same (only idle) server connection
        finally:
            for conn in raw:
                conn.close()

        with caplog.at_level(logging.WARNING, logger="modelplatform.audit.rows"):
            first = audit_rows.connect(url, prepare=True)  # prepared on a fresh server connection
            second = audit_rows.connect(url, prepare=True)  # handed the same one: already there
            holder = psycopg2.connect(url)
            try:
                assert first.insert_sql == audit_rows.EXECUTE_SQL
                assert second.insert_sql == audit_rows.INSERT_SQL
                holder.cursor().execute("select 1")  # an open transaction pins that server connection ...
                assert audit_rows.store(first, [records[0].as_params()]) == []  # ... so this runs on another
                assert first.insert_sql == audit_rows.INSERT_SQL
                holder.rollback()
                assert audit_rows.store(second, [r.as_params() for r in records[1:]]) == []
                plain = audit_rows.connect(url, prepare=False)
                assert audit_rows.store(plain, [r.as_params() for r in records]) == []  # a replay: nothing twice
                plain.close()
            finally:
                for conn in (first, second, holder):
                    conn.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("already prepared" in w and "DATABASE_POOL_MODE=transaction" in w for w in warnings)
    assert any("vanished" in w for w in warnings)
    with clean_db.connect() as conn:
        assert sorted(str(i) for i in conn.exec_driver_sql("select id from inferences").scalars()) == \
               sorted(r.id for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("pool_mode", ["transaction", "session"])  # session: the setting missed, the fallback
def test_the_platform_serves_and_records_every_answer_through_pgbouncer(platform: Platform, database_url: str,
                                                                        tmp_path: Path, pool_mode: str) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    with pgbouncer(database_url, pool_mode="transaction", pool_size=2) as url:
        env = {**platform.env(), "DATABASE_URL": url, "DATABASE_POOL_MODE": pool_mode,
               "AUDIT_SPOOL_DIR": str(tmp_path / "spool")}
        with gunicorn_web(env, workers=2, cwd=tmp_path) as base:
            assert requests.get(f"{base}/readyz", timeout=10).json()["checks"]["database"] == "ok"

            def call(n: int) -> tuple[int, str | None]:
                response = requests.post(f"{base}/models/echo/predict", json={"n": n},
                                         headers={"Connection": "close"}, timeout=30)
                return response.status_code, response.json().get("inference_id")

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(call, range(240)))
        # the maintenance command goes through it too (transaction-level advisory lock, no session state)
        maintain = subprocess.run([sys.executable, "-m", "modelplatform.cli", "db", "maintain", "--ahead", "2"],
                                  cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                                  text=True, timeout=120)
        assert maintain.returncode == 0, maintain.stderr
    assert [status for status, _ in answers] == [200] * 240
    ids = {i for _, i in answers}
    assert {str(r["id"]) for r in platform.rows()} == ids and len(platform.rows()) == 240
    assert not list((tmp_path / "spool").glob("audit-*.jsonl")) or \
        all(p.stat().st_size == 0 for p in (tmp_path / "spool").glob("audit-*.jsonl"))
    assert partitions.DEFAULT_PARTITION in maintain.stdout
