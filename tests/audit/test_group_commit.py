"""The group-commit writer: batching, the column list, rejected rows, and failures that must answer 503."""
from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from audit_support import UNREACHABLE_URL, make_record, row_ids
from modelplatform.audit import rows as audit_rows
from modelplatform.audit.tables import inferences
from modelplatform.errors import AuditUnavailable
from modelplatform.metrics import Metrics


def reported(metrics: Metrics, name: str) -> float:
    """What the writer reported to ``/metrics`` (0 when nothing was)."""
    return metrics.registry.get_sample_value(name) or 0.0


def test_insert_columns_come_from_the_table_and_match_the_record() -> None:
    assert audit_rows.COLUMNS == tuple(c.name for c in inferences.columns)
    assert set(make_record().as_params()) == set(audit_rows.COLUMNS)


def test_concurrent_records_are_all_committed_in_fewer_batches(clean_db: sa.Engine, database_url: str,
                                                               audit_logs) -> None:
    metrics = Metrics()
    audit = audit_logs(database_url, meter=metrics)
    records = [make_record() for _ in range(200)]
    start = threading.Barrier(16)

    def send(chunk: list) -> None:
        start.wait(timeout=10)
        for record in chunk:
            audit.record(record)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, [records[i::16] for i in range(16)], timeout=60))

    assert sorted(row_ids(clean_db)) == sorted(r.id for r in records)
    assert reported(metrics, "modelplatform_audit_rows_committed_total") == 200
    assert reported(metrics, "modelplatform_audit_batches_total") < 200  # concurrent callers shared commits
    with clean_db.connect() as conn:
        row = conn.execute(sa.text("select * from inferences where id = :id"), {"id": records[0].id}).one()
    assert row.input == {"vehicle": "van"} and row.output == {"premium": 405.0}


def test_a_row_the_database_rejects_fails_alone_and_the_writer_goes_on(clean_db: sa.Engine, database_url: str,
                                                                      audit_logs) -> None:
    metrics = Metrics()
    audit = audit_logs(database_url, meter=metrics)
    good = [make_record() for _ in range(20)]
    bad = make_record(routed_by="bogus")  # violates the table's check constraint: a data error
    outcomes: dict[str, object] = {}

    def send(record) -> None:
        try:
            audit.record(record)
            outcomes[record.id] = "stored"
        except AuditUnavailable as exc:
            outcomes[record.id] = exc

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, [*good[:10], bad, *good[10:]], timeout=60))

    assert isinstance(outcomes[bad.id], AuditUnavailable)
    assert "rejected" in outcomes[bad.id].detail
    assert all(outcomes[r.id] == "stored" for r in good)
    assert sorted(row_ids(clean_db)) == sorted(r.id for r in good)
    assert reported(metrics, "modelplatform_audit_rows_rejected_total") == 1
    later = make_record()
    audit.record(later)  # not stuck retrying the bad row
    assert later.id in row_ids(clean_db)


def test_unreachable_database_without_spool_answers_unavailable(audit_logs) -> None:
    audit = audit_logs(UNREACHABLE_URL, spool_dir=None)
    with pytest.raises(AuditUnavailable):
        audit.record(make_record())
    assert audit.health().can_record is False


def test_a_database_that_accepts_but_never_answers_gives_503_after_wait_timeout(audit_logs) -> None:
    # a real socket that completes the TCP handshake and then stays silent, like a hung server
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        metrics = Metrics()
        audit = audit_logs(f"postgresql://nobody@127.0.0.1:{port}/db", spool_dir=None, wait_timeout=0.5, meter=metrics)
        with pytest.raises(AuditUnavailable):
            audit.record(make_record())
        # the request gave up on its own deadline: the writer, still waiting on the connection, had written nothing
        assert reported(metrics, "modelplatform_audit_batches_total") == 0


def test_unreachable_database_spools_and_fsyncs_before_returning(tmp_path: Path, audit_logs) -> None:
    audit = audit_logs(UNREACHABLE_URL, spool_dir=tmp_path / "spool")
    records = [make_record() for _ in range(3)]
    for record in records:
        audit.record(record)
    assert audit.spool_depth() == 3
    (spool_file,) = (tmp_path / "spool").glob("audit-*.jsonl")
    # one complete JSON record per line, in the order they were confirmed
    assert [orjson.loads(line)["id"] for line in spool_file.read_bytes().splitlines()] == [r.id for r in records]
    health = audit.health()
    assert (health.database, health.can_record, health.degraded, health.spool_depth) == (False, True, True, 3)


def test_unwritable_spool_during_an_outage_answers_unavailable(tmp_path: Path, audit_logs) -> None:
    not_a_directory = tmp_path / "spool"
    not_a_directory.write_text("a file where the spool directory should be")
    audit = audit_logs(UNREACHABLE_URL, spool_dir=not_a_directory)
    with pytest.raises(AuditUnavailable):
        audit.record(make_record())
    assert audit.spool_depth() == 0
    assert audit.health().can_record is False


def test_full_disk_during_an_outage_answers_unavailable_and_keeps_the_spool_intact(tmp_path: Path,
                                                                                   audit_logs) -> None:
    spool_dir = tmp_path / "spool"
    audit = audit_logs(UNREACHABLE_URL, spool_dir=spool_dir)
    first = make_record()
    audit.record(first)
    spool_file = audit.spool.path
    size = spool_file.stat().st_size
    # a real ENOSPC from the kernel without filling a disk: point the spool's descriptor at /dev/full
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, audit.spool._fd)
    os.close(full)
    with pytest.raises(AuditUnavailable):
        audit.record(make_record(input_json='{"big": "' + "x" * 100_000 + '"}'))
    assert spool_file.stat().st_size == size  # nothing half-written after the confirmed record
    assert audit.spool_depth() == 1
