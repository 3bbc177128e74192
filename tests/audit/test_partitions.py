"""Partition upkeep (``db maintain``): partitions ahead, rows rescued from the default partition, retention by
whole partitions at the exact boundary, concurrent runners, and exactly-once replay on the partitioned table."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit_support import make_record, replay_spool_twice, row_ids
from modelplatform.audit import partitions
from modelplatform.audit import rows as audit_rows

T0 = datetime(2031, 3, 10, 15, 30, tzinfo=UTC)  # a future day no partition covers yet


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'inferences'::regclass")).scalars())


def placement(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {str(i): t for i, t in conn.execute(sa.text("select id, tableoid::regclass::text from inferences"))}


def dropped_2031(report: partitions.MaintenanceReport) -> list[str]:
    """Dropped partitions of the test's days (the real days' partitions made by the migration go too)."""
    return [d.partition.name for d in report.dropped if d.partition.name.startswith("inferences_p2031")]


def store(url: str, records: list) -> None:
    conn = audit_rows.connect(url)
    try:
        assert audit_rows.store(conn, [r.as_params() for r in records]) == []
    finally:
        conn.close()


def test_partitions_are_created_ahead_and_inserts_land_in_their_day(scratch_databases) -> None:
    url = scratch_databases()
    engine = _engine(url)
    try:
        report = partitions.maintain(engine, now=T0, days_ahead=3)
        assert [p.name for p in report.created] == [f"inferences_p2031031{d}" for d in range(4)]
        assert report.covered_until == datetime(2031, 3, 14, tzinfo=UTC)
        assert partitions.maintain(engine, now=T0, days_ahead=3).created == []  # idempotent

        late = make_record(created_at=datetime(2031, 3, 13, 23, 59, 59, 999999, tzinfo=UTC))
        beyond = make_record(created_at=datetime(2031, 3, 14, tzinfo=UTC))
        store(url, [late, beyond])
        assert placement(engine) == {late.id: "inferences_p20310313", beyond.id: "inferences_default"}
    finally:
        engine.dispose()


def test_rows_in_the_default_partition_are_moved_into_the_partition_created_for_them(scratch_databases) -> None:
    """Postgres refuses a partition whose range holds rows of the default partition; maintain moves them."""
    url = scratch_databases()
    engine = _engine(url)
    try:
        stray = [make_record(created_at=T0 + timedelta(minutes=i)) for i in range(5)]
        far = make_record(created_at=datetime(2032, 1, 1, 1, tzinfo=UTC))
        store(url, stray + [far])
        assert set(placement(engine).values()) == {"inferences_default"}
        with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError, match="default partition"):
            conn.execute(sa.text("create table inferences_p20310310 partition of inferences "
                                 "for values from ('2031-03-10') to ('2031-03-11')"))

        report = partitions.maintain(engine, now=T0, days_ahead=0)
        assert report.moved_rows == {"inferences_p20310310": 5, "inferences_p20320101": 1}
        assert placement(engine) == {**{r.id: "inferences_p20310310" for r in stray}, far.id: "inferences_p20320101"}
        assert report.default_rows == 0
        store(url, stray)  # a replay of the same records after the move: still one row each
        assert sorted(row_ids(engine)) == sorted(r.id for r in stray + [far])
    finally:
        engine.dispose()


def test_retention_drops_whole_partitions_entirely_past_the_cutoff_and_never_the_default(scratch_databases) -> None:
    url = scratch_databases()
    engine = _engine(url)
    try:
        partitions.maintain(engine, now=T0, days_ahead=3)  # 2031-03-10 … 2031-03-13
        old = make_record(created_at=datetime(2031, 3, 10, 23, 59, tzinfo=UTC))
        kept = make_record(created_at=datetime(2031, 3, 11, 0, 0, 1, tzinfo=UTC))
        store(url, [old, kept])

        keep = timedelta(days=400)
        # the cutoff is exactly the end of 2031-03-10: that partition is entirely older, 2031-03-11 is not
        report = partitions.maintain(engine, now=datetime(2031, 3, 11, tzinfo=UTC) + keep,
                                     keep=keep, days_ahead=0)
        assert dropped_2031(report) == ["inferences_p20310310"]
        assert all(d.total_bytes > 0 for d in report.dropped)
        assert row_ids(engine) == [kept.id]
        left = names(engine)
        assert "inferences_p20310310" not in left and "inferences_p20310311" in left

        # one microsecond short of the next boundary keeps 2031-03-11; far in the future drops it, not the default
        report = partitions.maintain(engine, now=datetime(2031, 3, 12, tzinfo=UTC) + keep
                                     - timedelta(microseconds=1), keep=keep, days_ahead=0)
        assert report.dropped == []
        report = partitions.maintain(engine, now=datetime(2040, 1, 1, tzinfo=UTC), keep=keep, days_ahead=0)
        assert dropped_2031(report) == ["inferences_p20310311", "inferences_p20310312", "inferences_p20310313"]
        assert "inferences_default" in names(engine)
        store(url, [make_record(created_at=datetime(2030, 1, 1, tzinfo=UTC))])  # still insertable
    finally:
        engine.dispose()


def test_concurrent_runners_on_every_host_create_each_partition_once(scratch_databases) -> None:
    url = scratch_databases()
    stray = [make_record(created_at=T0 + timedelta(hours=i)) for i in range(6)]
    store(url, stray)
    engines = [_engine(url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    reports: list[partitions.MaintenanceReport] = []
    errors: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        barrier.wait(timeout=30)
        try:
            reports.append(partitions.maintain(engine, now=T0, days_ahead=5, lock_timeout="30s"))
        except BaseException as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == [] and len(reports) == 4
        created = [p.name for r in reports for p in r.created]
        assert sorted(created) == [f"inferences_p203103{d}" for d in range(10, 16)]  # each exactly once
        assert sum(sum(r.moved_rows.values()) for r in reports) == 6
        assert sorted(row_ids(engines[0])) == sorted(r.id for r in stray)
    finally:
        for engine in engines:
            engine.dispose()


def test_a_spool_replayed_twice_stores_each_row_once_in_its_partition_or_the_default(
        tmp_path: Path, clean_db: sa.Engine, database_url: str, audit_logs) -> None:
    """ON CONFLICT needs the partition key in the unique constraint: (id, created_at). A replayed record
    carries its original created_at, so the conflict is still found, in a daily partition or the default."""
    records = [make_record() for _ in range(4)] + [
        make_record(created_at=datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=UTC))]  # no partition
    assert replay_spool_twice(records, tmp_path / "spool", database_url, audit_logs) == (5, 5)
    assert sorted(row_ids(clean_db)) == sorted(r.id for r in records)
    where = placement(clean_db)
    assert where[records[-1].id] == "inferences_default"
    assert where[records[0].id].startswith("inferences_p")
    with clean_db.connect() as c:
        stored = c.execute(sa.text("select created_at from inferences where id = :id"), {"id": records[-1].id}).scalar()
    assert stored == records[-1].created_at  # microseconds and zone survive the JSON spool
