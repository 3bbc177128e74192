"""Issue 13: ``ab-report --since 7d`` read every A/B row of the window from the table and sorted them all
before aggregating (3.2 s extrapolated at 20M rows). Its plan on a daily-partitioned table with rows must
now read the window's partitions only, through migration 0007's index alone, in group order (no sort of
the window's rows). EXPLAIN, not timing: the timings are in benchmarks/audit_scale.py."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from modelplatform.ab_report import ARM_STATS, REPORT_WORK_MEM, arm_stats_params, report_transaction
from modelplatform.audit import partitions

# 20,000 rows over the last 10 days (one every 43 s): ~55 % A/B, ~15 % shadow, the rest of no experiment
SEED = """
    insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status, input,
                            output, latency_ms, request_id, artifact_sha256)
    select gen_random_uuid(), now() - i * interval '43 seconds', m.model, m.version, m.routed_by, m.experiment,
           'customer-' || (i % 500), case when i % 25 = 0 then 'error' else 'ok' end,
           '{"vehicle": "van", "driver_age": 40, "annual_km": 12000}',
           jsonb_build_object('premium', 300 + i % 97), 1 + (i * 7919 % 1000) / 100.0, 'req-' || i, repeat('ab', 32)
    from generate_series(1, 20000) as i,
         lateral (select case when i % 20 < 11 then 'auto_pricing' when i % 20 < 17 then 'home_pricing'
                              else 'auto_pricing' end as model,
                         case when i % 20 < 11 then (case when i % 2 = 0 then '2.1.0' else '2.1.1' end)
                              when i % 20 < 17 then '1.4.0' else '2.2.0' end as version,
                         case when i % 20 < 11 then 'ab_test' when i % 20 < 17 then 'default'
                              else 'shadow' end as routed_by,
                         case when i % 20 < 11 or i % 20 >= 17 then 'rollout' end as experiment) m
"""


@pytest.fixture
def partitioned_with_rows(scratch_databases) -> Iterator[sa.Engine]:
    """A database at head with a daily partition for each of the last 10 days, rows in them, vacuumed (so
    the planner knows their pages are all-visible, as autovacuum makes a closed day's) and analyzed."""
    engine = sa.create_engine(scratch_databases("head"), poolclass=sa.pool.NullPool)
    partitions.maintain(engine, now=datetime.now(UTC) - timedelta(days=11), days_ahead=14)
    with engine.begin() as conn:
        conn.execute(sa.text(SEED))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("vacuum analyze inferences"))
    yield engine
    engine.dispose()


def nodes(plan: dict, parent: str | None = None) -> Iterator[tuple[dict, str | None]]:
    """Every node of a JSON plan with its parent's node type."""
    yield plan, parent
    for child in plan.get("Plans", []):
        yield from nodes(child, plan["Node Type"])


def test_the_7_day_report_reads_only_the_index_of_the_windows_partitions(partitioned_with_rows) -> None:
    engine = partitioned_with_rows
    now = datetime.now(UTC)
    since = now - timedelta(days=7)
    window = {partitions.partition_name(partitions.day_start(since + timedelta(days=d))) for d in range(8)}
    with engine.connect() as conn:
        ours = set(conn.execute(sa.text("""
            select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
            where i.inhparent = 'inferences_ab_arm_stats'::regclass""")).scalars())
        all_partitions = set(conn.execute(sa.text("""
            select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
            where i.inhparent = 'inferences'::regclass""")).scalars())
    assert len(all_partitions) > len(window) + 3  # days before the window and after today exist

    with report_transaction(engine) as conn:
        assert conn.execute(sa.text("show work_mem")).scalar() == REPORT_WORK_MEM
        (plan,) = conn.execute(sa.text("explain (format json) " + ARM_STATS.text),
                               arm_stats_params("rollout", since)).scalar()
    tree = list(nodes(plan["Plan"]))
    scans = [node for node, _ in tree if "Relation Name" in node]
    read = {node["Relation Name"] for node in scans}
    # pruned while planning (the bound is a literal): no partition wholly before the window. The window is
    # open-ended, so the (empty) days after today and the default partition, which holds any later day
    # without a partition, stay in the plan
    later = {p for p in all_partitions if max(window) < p < "inferences_q"} | {"inferences_default"}
    assert read and read <= window | later, read - window
    assert not read & {p for p in all_partitions if p.startswith("inferences_p") and p < min(window)}
    # through the index alone, and in group order: nothing sorts the window's rows before the aggregate
    assert {node["Node Type"] for node in scans} == {"Index Only Scan"}, scans
    assert {node["Index Name"] for node in scans} <= ours
    aggregate = next(node for node, _ in tree if node["Node Type"] == "Aggregate")
    below = [node for node, _ in nodes(aggregate)]
    assert not [node for node in below if node["Node Type"] == "Sort"], below

    # and it answers what the same SQL answers without the index (the planner's other path)
    with report_transaction(engine) as conn:
        via_index = conn.execute(ARM_STATS, arm_stats_params("rollout", since)).all()
        conn.execute(sa.text("set local enable_indexonlyscan = off"))
        conn.execute(sa.text("set local enable_indexscan = off"))
        conn.execute(sa.text("set local enable_bitmapscan = off"))
        via_table = conn.execute(ARM_STATS, arm_stats_params("rollout", since)).all()
    assert via_index == via_table
    assert [(r.version, r.routed_by) for r in via_index] == [("2.1.0", "ab_test"), ("2.1.1", "ab_test"),
                                                             ("2.2.0", "shadow")]
