"""``modelplatform export``: Parquet in S3, Hive-partitioned by model and date, read back with DuckDB as an analyst
would and compared with Postgres; a re-run replaces exactly its day; a progress bar on a terminal."""
from __future__ import annotations

import fcntl
import os
import pty
import random
import re
import struct
import subprocess
import sys
import termios
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import duckdb
import pytest
import sqlalchemy as sa

from modelplatform import export
from modelplatform.audit import rows as audit_rows
from modelplatform.settings import StoreLocation
from support.processes import ROOT
from support.records import make_record

DAYS = [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]
MODELS = {"auto_pricing": ["2.1.0", "2.1.1"], "home_pricing": ["1.0.0"]}

# the same figures from Postgres and from the Parquet files (DuckDB reads `date` and `model` from the path)
PG_FIGURES = """
    select model, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as day, status, count(*),
           round(sum(latency_ms)::numeric, 6), sum((output->>'premium')::numeric), count(api_key_id)
    from inferences where created_at >= :start and created_at < :end group by 1, 2, 3 order by 1, 2, 3
"""
DUCK_FIGURES = """
    select model, cast("date" as varchar), status, count(*),
           round(cast(sum(latency_ms) as decimal(18, 6)), 6), sum(cast(output->>'premium' as decimal(18, 2))),
           count(api_key_id)
    from read_parquet(?, hive_partitioning = true) group by 1, 2, 3 order by 1, 2, 3
"""


def seed(database_url: str, per_day: int = 120, day: date | None = None) -> list:
    rng = random.Random(per_day)
    records = []
    for d in ([day] if day else DAYS):
        for _ in range(per_day):
            model = rng.choice(list(MODELS))
            status = rng.choice(["ok", "ok", "ok", "invalid_input", "error"])
            records.append(make_record(
                created_at=datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(seconds=rng.randrange(86400)),
                model=model, version=rng.choice(MODELS[model]), status=status,
                output_json=f'{{"premium": {rng.randrange(20000, 90000) / 100:.2f}, "currency": "EUR"}}'
                if status == "ok" else None,
                error_json='{"type": "ValueError"}' if status == "error" else None,
                latency_ms=rng.random() * 20, api_key_id=rng.choice([None, "key-1"]),
                input_json=f'{{"vehicle": "van", "note": "{rng.choice(["é", "ü", "x"])}"}}'))
    conn = audit_rows.connect(database_url)
    try:
        assert audit_rows.store(conn, [r.as_params() for r in records]) == []
    finally:
        conn.close()
    return records


def download(bucket: str, prefix: str, into: Path) -> dict[str, str]:
    """Every exported object (key -> ETag), copied under ``into`` with the same layout."""
    s3 = boto3.client("s3")
    etags = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = into / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            etags[obj["Key"]] = obj["ETag"]
    return etags


def figures_match(engine: sa.Engine, into: Path, prefix: str, first: date, last: date) -> list[tuple]:
    with engine.connect() as conn:
        expected = [tuple(r) for r in conn.execute(sa.text(PG_FIGURES), {
            "start": datetime(first.year, first.month, first.day, tzinfo=UTC),
            "end": datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)})]
    got = duckdb.connect().execute(DUCK_FIGURES, [str(into / prefix / "**" / "*.parquet")]).fetchall()
    assert [tuple(r) for r in got] == expected
    return expected


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"warehouse-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def run_export(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelplatform.cli", "export", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_an_export_read_with_duckdb_has_the_same_counts_and_sums_as_postgres(
        clean_db: sa.Engine, database_url: str, bucket: str, tmp_path: Path) -> None:
    records = seed(database_url)
    result = run_export("--since", "2026-10-01", "--until", "2026-10-03T23:00:00Z", "--to", f"s3://{bucket}/exports",
                        env={**os.environ, "DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("2026-10-01: 120 row(s) (auto_pricing ")

    etags = download(bucket, "exports/", tmp_path)
    assert {k.split("/")[1] for k in etags} == {"model=auto_pricing", "model=home_pricing"}
    assert {k.split("/")[2] for k in etags} == {f"date={d}" for d in DAYS}
    expected = figures_match(clean_db, tmp_path, "exports", DAYS[0], DAYS[-1])
    assert sum(r[3] for r in expected) == len(records) == 360

    # the schema an analyst sees: UTC timestamps, JSON text, the exact row of a given id
    sample = records[7]
    row = duckdb.connect().execute(
        "select id, epoch_us(created_at), input, routed_by, typeof(created_at) "
        "from read_parquet(?, hive_partitioning = true) where id = ?",
        [str(tmp_path / "exports" / "**" / "*.parquet"), sample.id]).fetchone()
    micros = (sample.created_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert row[0] == sample.id and row[1] == micros and row[4] == "TIMESTAMP WITH TIME ZONE"
    assert row[2] == '{"note": "' + sample.input_json.split('"note": "')[1].split('"')[0] + '", "vehicle": "van"}'

    # the README's DuckDB query, as written, over this export: the same figures as Postgres
    (readme_query,) = re.findall(r"```sql duckdb\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    readme_query = readme_query.replace("warehouse/inferences/", f"{tmp_path / 'exports'}/")
    got = {(str(d), v): (n, round(avg, 6)) for d, v, n, avg in duckdb.connect().execute(readme_query).fetchall()}
    with clean_db.connect() as conn:
        want = {(d, v): (n, round(float(avg), 6)) for d, v, n, avg in conn.execute(sa.text(
            "select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD'), version, count(*), "
            "avg((output->>'premium')::numeric) from inferences where model = 'auto_pricing' and status = 'ok' "
            "group by 1, 2"))}
    assert got == want and len(got) == 6


def test_a_rerun_replaces_exactly_its_day(clean_db: sa.Engine, database_url: str, bucket: str, tmp_path: Path) -> None:
    seed(database_url)
    env = {**os.environ, "DATABASE_URL": database_url}
    exported = run_export("--since", "2026-10-01", "--until", "2026-10-03", "--to", f"s3://{bucket}/x", env=env)
    assert exported.returncode == 0
    first = download(bucket, "x/", tmp_path / "first")

    seed(database_url, per_day=45, day=DAYS[1])  # late rows of the middle day (a replayed spool, say)
    with clean_db.begin() as conn:  # and every home_pricing row of that day gone: its old files must go too
        conn.execute(sa.text("delete from inferences where model = 'home_pricing' "
                             "and created_at >= '2026-10-02' and created_at < '2026-10-03'"))
    result = run_export("--since", "2026-10-02", "--until", "2026-10-02", "--to", f"s3://{bucket}/x", env=env)
    assert result.returncode == 0, result.stderr
    assert "replaced" in result.stdout and "replaced 0 " not in result.stdout
    second = download(bucket, "x/", tmp_path / "second")

    unchanged = {k: v for k, v in first.items() if "date=2026-10-02" not in k}
    assert {k: v for k, v in second.items() if "date=2026-10-02" not in k} == unchanged
    middle = [k for k in second if "date=2026-10-02" in k]
    assert middle and not set(middle) & set(first)  # new files only, the old ones of that day deleted
    assert all("model=auto_pricing" in k for k in middle)
    figures_match(clean_db, tmp_path / "second", "x", DAYS[0], DAYS[-1])


def test_many_row_groups_and_files_per_day_stay_exact(clean_db: sa.Engine, database_url: str, bucket: str,
                                                      tmp_path: Path) -> None:
    seed(database_url, per_day=300, day=DAYS[0])
    conn = export.connect(database_url)
    try:
        done = export.export_day(conn, boto3.client("s3"), StoreLocation(bucket, "small"), DAYS[0],
                                 batch_rows=7, row_group_rows=11, file_rows=50)
    finally:
        conn.close()
    assert done.rows == 300 and len(done.keys) >= 6
    download(bucket, "small/", tmp_path)
    figures_match(clean_db, tmp_path, "small", DAYS[0], DAYS[0])


def test_bad_arguments_and_missing_parts_fail_in_one_line(database_url: str, bucket: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = run_export("--since", "2026-10-03", "--until", "2026-10-01", "--to", f"s3://{bucket}/x", env=env)
    assert result.returncode == 2 and "--until (2026-10-01) is before --since (2026-10-03)" in result.stderr
    result = run_export("--since", "2026-10-01", "--to", "/tmp/not-s3", env=env)
    assert result.returncode == 2 and "--to must look like s3://bucket/prefix" in result.stderr
    result = run_export("--since", "yesterday", "--to", f"s3://{bucket}/x", env=env)
    assert result.returncode == 2 and "neither an ISO timestamp" in result.stderr
    result = run_export("--since", "1d", "--to", f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/x", env=env)
    assert result.returncode == 2 and "cannot write to s3://no-such-bucket" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_export("--since", "1d", "--to", f"s3://{bucket}/x",
                        env={**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres"})
    assert result.returncode == 2 and "cannot connect to the database" in result.stderr


def test_a_terminal_gets_a_progress_bar(clean_db: sa.Engine, database_url: str, bucket: str) -> None:
    seed(database_url, per_day=50, day=DAYS[0])
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    try:
        result = subprocess.run([sys.executable, "-m", "modelplatform.cli", "export", "--since", "2026-10-01",
                                 "--until", "2026-10-01", "--to", f"s3://{bucket}/tty"], cwd=ROOT,
                                env={**os.environ, "DATABASE_URL": database_url}, stdout=subprocess.PIPE,
                                stderr=follower, text=True, timeout=120)
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 0
    assert b"2026-10-01: 100%" in screen and b"50.0/50.0 [" in screen and b"row/s" in screen
