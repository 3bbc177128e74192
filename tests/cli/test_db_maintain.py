"""``modelplatform db maintain``: what it prints, the retention floor, bad arguments, and cron on every host."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from modelplatform.audit import rows as audit_rows
from support.processes import ROOT, procfile_command
from support.records import make_record

pytestmark = pytest.mark.slow  # every test here starts a process


def maintain(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelplatform.cli", "db", "maintain", *args], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": url, **env}, capture_output=True, text=True,
                          timeout=120)


def partition_names(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text(
                "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                "where i.inhparent = 'inferences'::regclass")).scalars())
    finally:
        engine.dispose()


def test_the_release_step_migrates_and_creates_a_week_of_partitions_ahead(scratch_databases) -> None:
    url = scratch_databases(None)
    result = subprocess.run(procfile_command("release"), cwd=ROOT, env={**os.environ, "DATABASE_URL": url},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    today = datetime.now(UTC)
    expected = {f"inferences_p{today + timedelta(days=d):%Y%m%d}" for d in range(8)} | {"inferences_default"}
    assert expected <= partition_names(url)
    assert f"partitions cover through {(today + timedelta(days=8)):%Y-%m-%d}T00:00:00+00:00" in result.stdout


def test_keep_drops_old_partitions_and_prints_them(scratch_databases) -> None:
    url = scratch_databases()
    old_day = datetime.now(UTC) - timedelta(days=500)
    conn = audit_rows.connect(url)
    try:
        audit_rows.store(conn, [make_record(created_at=old_day).as_params()])  # lands in the default partition
    finally:
        conn.close()

    result = maintain(url, "--keep", "400d")
    assert result.returncode == 0, result.stderr
    name = f"inferences_p{old_day:%Y%m%d}"
    assert f"created {name} [" in result.stdout and "moved 1 row(s) into it from inferences_default" in result.stdout
    assert f"dropped {name} [" in result.stdout and "~" in result.stdout
    assert name not in partition_names(url) and "inferences_default" in partition_names(url)

    again = maintain(url, "--keep", "57w")
    assert again.returncode == 0 and "dropped nothing: no partition lies entirely before now - 399d" in again.stdout


def test_a_keep_below_the_floor_is_refused_and_nothing_is_dropped(scratch_databases) -> None:
    url = scratch_databases()
    before = partition_names(url)
    result = maintain(url, "--keep", "30d")
    assert result.returncode == 2
    assert "refusing --keep 30d: shorter than the retention floor 90d (AUDIT_RETENTION_FLOOR)" in result.stderr
    lowered = maintain(url, "--keep", "30d", AUDIT_RETENTION_FLOOR="7d")
    assert lowered.returncode == 0, lowered.stderr
    assert before <= partition_names(url)
    bad_floor = maintain(url, "--keep", "30d", AUDIT_RETENTION_FLOOR="a month")
    assert bad_floor.returncode == 2 and "AUDIT_RETENTION_FLOOR: 'a month' is not a retention" in bad_floor.stderr


def test_bad_arguments_and_an_unreachable_database_fail_in_one_line() -> None:
    result = maintain("postgresql://postgres@127.0.0.1:1/postgres", "--keep", "4 months")
    assert result.returncode == 2 and "is not a retention such as 400d or 60w" in result.stderr
    result = maintain("postgresql://postgres@127.0.0.1:1/postgres")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "modelplatform db maintain: cannot maintain the partitions (OperationalError: ")
    result = maintain("")
    assert result.returncode == 2 and "DATABASE_URL is not set" in result.stderr


def test_cron_on_every_host_at_once(scratch_databases) -> None:
    url = scratch_databases()
    runners = [subprocess.Popen([sys.executable, "-m", "modelplatform.cli", "db", "maintain", "--ahead", "30"],
                                cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [r.communicate(timeout=120) for r in runners]
    assert [r.returncode for r in runners] == [0, 0, 0], outputs
    created = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("created ")]
    assert len(created) == len(set(created)) and len(created) >= 26  # each partition created by one runner only
    today = datetime.now(UTC)
    assert {f"inferences_p{today + timedelta(days=d):%Y%m%d}" for d in range(31)} <= partition_names(url)
