"""The platform through a real PgBouncer in transaction mode (the pool mode docs/operations.md recommends):
SQL PREPARE breaks there, the unprepared INSERT (DATABASE_POOL_MODE=transaction) does not, under load."""
from __future__ import annotations

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
def test_a_prepared_insert_breaks_under_transaction_pooling(clean_db, database_url: str) -> None:
    """Why DATABASE_POOL_MODE exists: the prepared statement belongs to a server connection that the
    next client gets too (or that the same client does not get back)."""
    with pgbouncer(database_url, pool_mode="transaction", pool_size=1) as url:
        first = audit_rows.connect(url, prepare=True)
        try:
            with pytest.raises(psycopg2.errors.DuplicatePreparedStatement):
                audit_rows.connect(url, prepare=True)  # same server connection: already prepared there
        finally:
            first.close()
        plain = [audit_rows.connect(url, prepare=False) for _ in range(3)]
        try:
            records = [make_record() for _ in range(6)]
            for index, record in enumerate(records):
                assert audit_rows.store(plain[index % 3], [record.as_params()]) == []
            assert audit_rows.store(plain[0], [r.as_params() for r in records]) == []  # replay: no duplicate
        finally:
            for conn in plain:
                conn.close()
    with clean_db.connect() as conn:
        assert sorted(str(i) for i in conn.exec_driver_sql("select id from inferences").scalars()) == \
               sorted(r.id for r in records)


@pytest.mark.slow
def test_the_platform_serves_and_records_every_answer_through_pgbouncer(platform: Platform, database_url: str,
                                                                        tmp_path: Path) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    with pgbouncer(database_url, pool_mode="transaction", pool_size=2) as url:
        env = {**platform.env(), "DATABASE_URL": url, "DATABASE_POOL_MODE": "transaction",
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
