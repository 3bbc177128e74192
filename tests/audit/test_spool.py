"""The outage spool: replay after a crash, idempotent replay, live files left alone, torn tails."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import sqlalchemy as sa

from audit_support import make_record, replay_spool_twice, row_ids
from modelplatform.audit import rows as audit_rows
from modelplatform.audit.spool import Spool
from modelplatform.metrics import Metrics

CRASHING_WRITER = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [sys.argv[2], os.path.dirname(sys.argv[2])]  # audit_support, and the support package
    from audit_support import make_record, UNREACHABLE_URL
    from modelplatform.audit.group_commit import GroupCommitAuditLog

    audit = GroupCommitAuditLog(UNREACHABLE_URL, spool_dir=sys.argv[1])
    for _ in range(5):
        record = make_record()
        audit.record(record)          # returns: spooled and fsynced
        print(record.id, flush=True)  # the "200" a client would have received
    os._exit(137)                     # die without closing anything, like a SIGKILLed worker
""")


def test_spool_of_a_crashed_process_is_replayed_at_startup(tmp_path: Path, clean_db: sa.Engine,
                                                           database_url: str, audit_logs) -> None:
    spool_dir = tmp_path / "spool"
    crashed = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(spool_dir), str(Path(__file__).parent)],
                             capture_output=True, text=True, timeout=60)
    acknowledged = crashed.stdout.split()
    assert crashed.returncode == 137, crashed.stderr
    assert len(acknowledged) == 5
    assert len(list(spool_dir.glob("audit-*.jsonl"))) == 1

    audit = audit_logs(database_url, spool_dir=spool_dir)
    audit.start()  # the writer replays leftovers before taking records
    audit.record(make_record())  # queued behind the replay, so the replay is done when this returns

    assert set(acknowledged) <= set(row_ids(clean_db))
    assert len(row_ids(clean_db)) == 6
    assert list(spool_dir.glob("audit-*.jsonl")) == []


def test_replaying_the_same_spool_twice_inserts_nothing_twice(tmp_path: Path, clean_db: sa.Engine,
                                                              database_url: str, audit_logs) -> None:
    records = [make_record() for _ in range(7)]
    spool_dir = tmp_path / "spool"
    assert replay_spool_twice(records, spool_dir, database_url, audit_logs) == (7, 7)  # read and sent twice ...
    ids = row_ids(clean_db)
    assert sorted(ids) == sorted(r.id for r in records)  # ... and stored once
    assert list(spool_dir.glob("audit-*.jsonl")) == []


def test_a_live_processs_spool_is_left_to_its_owner(tmp_path: Path, clean_db: sa.Engine, database_url: str) -> None:
    live = Spool(tmp_path)
    live.append([make_record().as_params()])
    conn = audit_rows.connect(database_url)
    try:
        assert Spool(tmp_path).replay(conn) == 0  # the owner's flock says "alive"
        assert row_ids(clean_db) == []
        assert live.replay(conn) == 1  # the owner replays and truncates its own file
    finally:
        conn.close()
    assert live.depth == 0
    assert live.path is not None and live.path.stat().st_size == 0
    assert len(row_ids(clean_db)) == 1


def test_torn_tail_and_rejected_rows_go_to_the_rejected_file_not_in_a_loop(tmp_path: Path, clean_db: sa.Engine,
                                                                          database_url: str) -> None:
    good, bad = make_record(), make_record(status="bogus")
    orphan = tmp_path / "audit-host-1-deadbeef.jsonl"
    orphan.write_bytes(orjson.dumps(good.as_params()) + b"\n" + orjson.dumps(bad.as_params()) + b"\n"
                       + b'{"id": "torn-by-a-cra')
    conn = audit_rows.connect(database_url)
    try:
        metrics = Metrics()
        spool = Spool(tmp_path, metrics)
        assert spool.replay(conn) == 1
        assert spool.replay(conn) == 0  # nothing left to retry
    finally:
        conn.close()
    assert row_ids(clean_db) == [good.id]
    assert not orphan.exists()
    rejected = [orjson.loads(line) for line in (tmp_path / f"rejected-{orphan.name}").read_bytes().splitlines()]
    assert len(rejected) == 2
    assert metrics.registry.get_sample_value("modelplatform_audit_spool_rejected_total") == 2
    by_reason = {("inferences_status" in r["reason"], "not a complete record" in r["reason"]): r for r in rejected}
    assert bad.id in by_reason[(True, False)]["record"]
    assert by_reason[(False, True)]["record"] == '{"id": "torn-by-a-cra'


def test_spool_files_are_locked_by_their_owner(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([make_record().as_params()])
    fd = os.open(spool.path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = False
        except BlockingIOError:
            locked = True
    finally:
        os.close(fd)
    assert locked
    assert list(tmp_path.glob(".*.new")) == []  # created under a staging name, renamed once locked


def test_replay_in_slices_and_takeover_keep_every_record_of_a_large_spool(tmp_path: Path, clean_db: sa.Engine,
                                                                          database_url: str) -> None:
    own, orphaned = Spool(tmp_path / "own"), Spool(tmp_path / "orphaned")
    own_records = [make_record() for _ in range(1203)]
    orphan_records = [make_record() for _ in range(1101)]
    own.append([r.as_params() for r in own_records])
    orphaned.append([r.as_params() for r in orphan_records])
    orphaned.close()  # its owner is gone: the lock is free
    conn = audit_rows.connect(database_url)
    try:
        depths = []
        while own.depth:
            own.replay_some(conn, limit=500)
            depths.append(own.depth)
        assert Spool(tmp_path / "orphaned").replay(conn) == 1101
    finally:
        conn.close()
    assert depths == [703, 203, 0]
    assert own.path is not None and own.path.stat().st_size == 0
    assert sorted(row_ids(clean_db)) == sorted(r.id for r in own_records + orphan_records)


def test_spool_rows_missing_a_column_are_stored_or_set_aside_and_the_writer_keeps_going(
        tmp_path: Path, clean_db: sa.Engine, database_url: str, audit_logs) -> None:
    # a spool written before a column existed, or damaged: nullable column missing, NOT NULL column missing
    old_style = {k: v for k, v in make_record().as_params().items() if k != "routing_key"}
    broken = {k: v for k, v in make_record().as_params().items() if k != "model"}
    (tmp_path / "audit-host-2-cafebabe.jsonl").write_bytes(
        orjson.dumps(old_style) + b"\n" + orjson.dumps(broken) + b"\n")

    audit = audit_logs(database_url, spool_dir=tmp_path)
    audit.start()
    live = make_record()
    audit.record(live)

    assert sorted(row_ids(clean_db)) == sorted([old_style["id"], live.id])
    (rejected,) = (tmp_path / "rejected-audit-host-2-cafebabe.jsonl").read_bytes().splitlines()
    assert broken["id"] in orjson.loads(rejected)["record"]
