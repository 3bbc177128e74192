"""Revision 0007 puts the A/B readout's index on every partition of a table that holds rows, present and
future, adopts one an operator built beforehand, and goes down and up again without touching a row."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from modelplatform import db
from modelplatform.ab_report import ARM_STATS, arm_stats_params
from modelplatform.audit import partitions

INDEX = "inferences_ab_arm_stats"
COLUMNS = "(experiment, model, version, routed_by, created_at) include (status, latency_ms) " \
          "where experiment is not null"
# 3000 rows over the last 6 days (one every 3 minutes): two arms, a shadow, traffic of no experiment
SEED = """
    insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status, input,
                            output, latency_ms, request_id, artifact_sha256)
    select gen_random_uuid(), now() - i * interval '3 minutes', 'auto_pricing',
           case when i % 4 = 3 then '2.0.3' when i % 5 = 0 then '2.2.0' when i % 2 = 0 then '2.1.0' else '2.1.1' end,
           case when i % 4 = 3 then 'pinned' when i % 5 = 0 then 'shadow' else 'ab_test' end,
           case when i % 4 <> 3 then 'rollout' end, 'customer-' || (i % 50),
           case when i % 17 = 0 then 'error' else 'ok' end, '{}', jsonb_build_object('premium', 300 + i),
           (i % 23) + i / 1000.0, 'req-' || i, repeat('ab', 32)
    from generate_series(1, 3000) as i
"""
SNAPSHOT = "select id::text, md5(row_to_json(r)::text) from (select * from inferences) r"


def query(engine: sa.Engine, sql: str, params: dict | None = None) -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql) if isinstance(sql, str) else sql, params or {}).all())


def indexed_partitions(engine: sa.Engine) -> dict[str, list[str]]:
    """Each partition of ``inferences`` and the indexes it has with 0007's definition (any name)."""
    rows = query(engine, """
        select c.relname, coalesce(array_agg(x.indexname order by x.indexname)
                                   filter (where x.indexname is not null), '{}')
        from pg_inherits i join pg_class c on c.oid = i.inhrelid
        left join pg_indexes x on x.tablename = c.relname
             and x.indexdef like '%(experiment, model, version, routed_by, created_at) INCLUDE (status, latency_ms)%'
        where i.inhparent = 'inferences'::regclass group by c.relname""")
    return {name: list(indexes) for name, indexes in rows}


def arm_stats(engine: sa.Engine) -> list[tuple]:
    return query(engine, ARM_STATS, arm_stats_params("rollout", datetime.now(UTC) - timedelta(days=7)))


def test_0007_indexes_every_partition_of_a_table_with_rows_and_goes_down_and_up(scratch_databases) -> None:
    url = scratch_databases("0006")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        partitions.maintain(engine, now=datetime.now(UTC) - timedelta(days=8), days_ahead=10)
        with engine.begin() as conn:
            conn.execute(sa.text(SEED))
            # an operator built one partition's index beforehand, concurrently, under a name of their own
            today = partitions.partition_name(partitions.day_start(datetime.now(UTC)))
            conn.execute(sa.text(f"create index prebuilt_ab on {today} {COLUMNS}"))
        before, stats_before = sorted(query(engine, SNAPSHOT)), arm_stats(engine)
        assert len(before) == 3000 and [r[2] for r in stats_before] == ["ab_test", "ab_test", "shadow"]

        db.upgrade(url, "0007")
        indexed = indexed_partitions(engine)
        assert len(indexed) >= 12 and "inferences_default" in indexed
        assert all(len(indexes) == 1 for indexes in indexed.values()), indexed
        assert indexed[today] == ["prebuilt_ab"]  # adopted, not built a second time
        children = {r[0] for r in query(engine, "select c.relname from pg_inherits i join pg_class c "
                                                "on c.oid = i.inhrelid where i.inhparent = cast(:parent as regclass)",
                                        {"parent": INDEX})}
        assert children == {i for indexes in indexed.values() for i in indexes}
        assert sorted(query(engine, SNAPSHOT)) == before
        assert arm_stats(engine) == stats_before

        # a partition made later (db maintain: a plain table attached) gets the index too
        partitions.maintain(engine, now=datetime.now(UTC) + timedelta(days=20), days_ahead=0)
        later = partitions.partition_name(partitions.day_start(datetime.now(UTC) + timedelta(days=20)))
        assert len(indexed_partitions(engine)[later]) == 1

        db.downgrade(url, "0006")
        assert query(engine, "select to_regclass(:name)", {"name": INDEX}) == [(None,)]
        assert all(indexes == [] for indexes in indexed_partitions(engine).values())
        assert sorted(query(engine, SNAPSHOT)) == before and arm_stats(engine) == stats_before

        db.upgrade(url, "head")
        assert all(len(indexes) == 1 for indexes in indexed_partitions(engine).values())
        assert sorted(query(engine, SNAPSHOT)) == before and arm_stats(engine) == stats_before
    finally:
        engine.dispose()
