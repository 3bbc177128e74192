"""Revision 0004 turns a table that holds rows into a partitioned one and back, losing and duplicating nothing;
the A/B function and view of 0002 keep answering the same."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from modelplatform import db
from modelplatform.audit import rows as audit_rows
from support.records import make_record

SEED = """
    insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status, input,
                            output, error, latency_ms, request_id, artifact_sha256, api_key_id)
    select gen_random_uuid(), now() - (i * interval '37 minutes'),
           'auto_pricing', case when i % 2 = 0 then '2.1.0' else '2.1.1' end,
           case when i % 5 = 0 then 'shadow' else 'ab_test' end, 'rollout', 'customer-' || (i % 50),
           case when i % 17 = 0 then 'error' else 'ok' end,
           jsonb_build_object('vehicle', 'van', 'age', 20 + i % 50),
           case when i % 17 = 0 then null else jsonb_build_object('premium', 300 + i) end,
           case when i % 17 = 0 then '{"type": "ValueError"}'::jsonb end,
           (i % 23) + 0.5, 'req-' || i, repeat('ab', 32), case when i % 3 = 0 then 'key-1' end
    from generate_series(1, 2000) as i
"""
# every column of every row, as one comparable value per row (jsonb compared as text: key order is canonical)
SNAPSHOT = "select id::text, md5(row_to_json(r)::text) from (select * from inferences) r"
AB = "select * from ab_arm_stats_since(now() - interval '7 days') order by version, routed_by"


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def snapshot(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text(SNAPSHOT)).all())


def query(engine: sa.Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql)).all())


def is_partitioned(engine: sa.Engine) -> bool:
    sql = "select count(*) from pg_partitioned_table where partrelid = 'inferences'::regclass"
    return query(engine, sql)[0][0] == 1


def test_0004_converts_a_table_with_rows_and_back_without_losing_or_duplicating_any(scratch_databases) -> None:
    url = scratch_databases("0003")
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(SEED))
        before, ab_before = snapshot(engine), query(engine, AB)
        assert len(before) == 2000 and len(ab_before) == 4

        db.upgrade(url, "0004")
        assert is_partitioned(engine)
        assert snapshot(engine) == before  # same rows, same values, none twice
        assert query(engine, AB) == ab_before
        assert query(engine, "select count(*) from ab_arm_stats")[0][0] == 4
        where = dict(query(engine, "select tableoid::regclass::text, count(*) from inferences group by 1"))
        assert where == {"inferences_legacy": 2000}  # attached in place, not copied
        legacy_indexes = {r[0] for r in query(engine, "select indexdef from pg_indexes "
                                                      "where tablename = 'inferences_legacy'")}
        assert len(legacy_indexes) == 4, legacy_indexes  # the 3 analyst indexes reused + (id, created_at)
        names = {r[0] for r in query(engine, "select c.relname from pg_inherits i join pg_class c "
                                             "on c.oid = i.inhrelid where i.inhparent = 'inferences'::regclass")}
        assert "inferences_default" in names
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        assert f"inferences_p{tomorrow:%Y%m%d}" in names

        # the writer's statement works on the new table, and a replayed row is still stored once
        record = make_record(created_at=datetime.now(UTC) + timedelta(days=1))
        conn = audit_rows.connect(url)
        try:
            assert audit_rows.store(conn, [record.as_params()]) == []
            assert audit_rows.store(conn, [record.as_params()]) == []
        finally:
            conn.close()
        after_insert = snapshot(engine)
        assert len(after_insert) == 2001

        db.downgrade(url, "0003")
        assert not is_partitioned(engine)
        assert snapshot(engine) == after_insert
        assert query(engine, AB) == ab_before
        pk = query(engine, "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
                           "and a.attnum = any(i.indkey) where i.indrelid = 'inferences'::regclass and i.indisprimary")
        assert pk == [("id",)]

        db.upgrade(url, "head")  # and up again, from the downgraded table
        assert is_partitioned(engine) and snapshot(engine) == after_insert
    finally:
        engine.dispose()


def test_0004_on_an_empty_table_leaves_only_daily_and_default_partitions(scratch_databases) -> None:
    url = scratch_databases("0004")
    engine = _engine(url)
    try:
        names = {r[0] for r in query(engine, "select c.relname from pg_inherits i join pg_class c "
                                             "on c.oid = i.inhrelid where i.inhparent = 'inferences'::regclass")}
        today = datetime.now(UTC)
        assert "inferences_legacy" not in names and "inferences_default" in names
        assert {f"inferences_p{today + timedelta(days=d):%Y%m%d}" for d in range(4)} <= names
        record = make_record(id=str(uuid.uuid4()))
        conn = audit_rows.connect(url)
        try:
            assert audit_rows.store(conn, [record.as_params()]) == []
        finally:
            conn.close()
        assert query(engine, "select tableoid::regclass::text from inferences") == [(f"inferences_p{today:%Y%m%d}",)]
    finally:
        engine.dispose()
