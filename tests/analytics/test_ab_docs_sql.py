"""The SQL in docs/ab-testing.md and the README runs, and answers what it claims, on a small known table;
the queries that take a window (psql variables ``:'since'`` and ``:'until'``) read only its partitions."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
PSQL_VARIABLE = re.compile(r":'(\w+)'")
TEST = "pricing-2.1.1-rollout"
# the window the docs' queries are given, as an analyst would set it in psql; every seeded row is in it,
# and a copy of each lies 20 days earlier, in a partition of its own that no windowed query may read
NOW = datetime.now(UTC)
WINDOW = {"since": (NOW - timedelta(days=1)).isoformat(), "until": (NOW + timedelta(days=1)).isoformat()}
BEFORE = (NOW - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
BEFORE_PARTITION = f"inferences_p{BEFORE:%Y%m%d}"

# arm 2.1.0: customers c1..c4 (c1 quoted twice); arm 2.1.1: c5..c8; shadow 2.2.0 answers +5 on every call;
# sold: c1 (request r1), c5, c6
_ROWS = [("2.1.0", f"c{i}", f"r{i}", 100) for i in range(1, 5)] + [("2.1.0", "c1", "r1b", 100)] + \
        [("2.1.1", f"c{i}", f"r{i}", 110) for i in range(5, 9)]


def sql_statements(path: Path) -> list[str]:
    """The statements of the file's ``sql`` blocks, with ``:'since'`` and ``:'until'`` replaced by the
    window as quoted literals, which is what psql does with its variables."""
    return [bind(stmt) for block in SQL_BLOCK.findall(path.read_text()) for stmt in block.split(";\n")
            if stmt.strip()]


def bind(sql: str) -> str:
    return PSQL_VARIABLE.sub(lambda m: "'" + WINDOW[m.group(1)].replace("'", "''") + "'", sql)


@pytest.fixture
def analyst_db(clean_db: sa.Engine):
    """A connection inside a transaction holding the seeded rows and ``policy_sales``; rolled back after."""
    with clean_db.connect() as conn:
        tx = conn.begin()
        insert = sa.text("""
            insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status,
                                    input, output, latency_ms, request_id, artifact_sha256)
            values (gen_random_uuid(), now() - interval '1 hour' + :offset * interval '1 second', 'auto_pricing',
                    :version, :routed_by, :test, :key, 'ok', '{}', jsonb_build_object('premium', :premium),
                    :latency, :request_id, repeat('0', 64))
        """)
        for n, (version, key, request_id, premium) in enumerate(_ROWS):
            conn.execute(insert, {"offset": 2 * n, "version": version, "routed_by": "ab_test", "test": TEST,
                                  "key": key, "premium": premium, "latency": 10, "request_id": request_id})
            conn.execute(insert, {"offset": 2 * n + 1, "version": "2.2.0", "routed_by": "shadow", "test": TEST,
                                  "key": key, "premium": premium + 5, "latency": 30, "request_id": request_id})
        conn.execute(sa.text("create table policy_sales (request_id text, customer_id text, "
                             "sold_at timestamptz, premium numeric)"))
        conn.execute(sa.text("insert into policy_sales values ('r1', 'c1', now(), 100), ('r5', 'c5', now(), 110), "
                             "('r6', 'c6', now(), 110)"))
        # the same calls 20 days earlier: a query that ignores its window counts everything twice
        conn.execute(sa.text(f"create table {BEFORE_PARTITION} partition of inferences for values "
                             f"from ('{BEFORE.isoformat()}') to ('{(BEFORE + timedelta(days=1)).isoformat()}')"))
        conn.execute(sa.text("""
            insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status,
                                    input, output, latency_ms, request_id, artifact_sha256)
            select gen_random_uuid(), :day + (created_at - date_trunc('day', created_at)), model, version,
                   routed_by, experiment, routing_key, status, input, output, latency_ms, request_id,
                   artifact_sha256
            from inferences
        """), {"day": BEFORE})
        yield conn
        tx.rollback()


def run(conn: sa.Connection, sql: str, key: str = "arm") -> dict[str, dict]:
    """Rows of ``sql`` by their ``key`` column, ab_test rows only when it has ``routed_by``."""
    rows = [dict(r._mapping) for r in conn.execute(sa.text(sql.replace(":", r"\:")))]
    return {str(r[key]): r for r in rows if r.get("routed_by", "ab_test") == "ab_test"}


def test_every_analysis_query_in_the_docs_runs_and_answers(analyst_db: sa.Connection) -> None:
    view, window, split, per_call, per_unit, z_test, shadow, status_diff = \
        sql_statements(ROOT / "docs" / "ab-testing.md")

    assert run(analyst_db, view, "version")["2.1.0"]["calls"] == 10  # all time: the calls and their earlier copies
    assert run(analyst_db, window, "version")["2.1.0"]["calls"] == 5
    assert run(analyst_db, split, "version")["2.1.1"]["calls"] == 4

    calls = run(analyst_db, per_call)
    assert (calls["2.1.0"]["quotes"], calls["2.1.0"]["sold"]) == (5, 1)
    assert (calls["2.1.1"]["quotes"], calls["2.1.1"]["sold"]) == (4, 2)
    assert float(calls["2.1.1"]["mean_quoted_premium"]) == 110

    units = run(analyst_db, per_unit)
    assert (units["2.1.0"]["customers"], float(units["2.1.0"]["conversion"])) == (4, 0.25)
    assert (units["2.1.1"]["customers"], float(units["2.1.1"]["conversion"])) == (4, 0.5)

    (z,) = run(analyst_db, z_test, "arm_a").values()
    assert (z["rate_a"], z["rate_b"]) == (0.25, 0.5)
    assert z["z"] == pytest.approx(-0.25 / (0.375 * 0.625 * 0.5) ** 0.5)

    (shadowed,) = run(analyst_db, shadow, "shadow").values()
    assert (shadowed["shadow"], shadowed["calls"], float(shadowed["mean_abs_premium_diff"])) == ("2.2.0", 9, 5)
    assert float(shadowed["ok_rate"]) == 1.0

    assert list(analyst_db.execute(sa.text(status_diff))) == []  # every shadow answered as its live call did
    fail_one_shadow(analyst_db, "r5")
    (diff,) = [dict(r._mapping) for r in analyst_db.execute(sa.text(status_diff))]
    assert diff == {"live_version": "2.1.1", "live_status": "ok", "shadow_version": "2.2.0",
                    "shadow_status": "error", "calls": 1}


def test_the_windowed_queries_read_only_the_windows_partitions(analyst_db: sa.Connection) -> None:
    """Issue 13: the A/B queries were written over all time, so they read every partition of history."""
    docs = [(path.name, stmt) for path in (ROOT / "docs" / "ab-testing.md", ROOT / "README.md")
            for stmt in SQL_BLOCK.findall(path.read_text())]
    windowed = [(name, bind(stmt)) for name, block in docs for stmt in block.split(";\n")
                if PSQL_VARIABLE.search(stmt)]
    # ab-testing.md: all but the all-time view's example; README: all but "what failed" (the newest 20 rows)
    assert len(windowed) == 10
    assert not [stmt for _, stmt in windowed if "now()" in stmt]
    for name, sql in windowed:
        escaped = sql.replace(":", r"\:")
        (plan,) = analyst_db.execute(sa.text("explain (format json) " + escaped)).scalar()
        planned = [node for node, inner_loop in plan_nodes(plan["Plan"]) if not inner_loop
                   and node.get("Relation Name") == BEFORE_PARTITION]
        assert planned == [], f"{name}: the planner did not prune the partition before the window:\n{sql}"
        (run,) = analyst_db.execute(sa.text("explain (analyze, format json) " + escaped)).scalar()
        read = [node for node, _ in plan_nodes(run["Plan"])
                if node.get("Relation Name") == BEFORE_PARTITION and node.get("Actual Loops", 0) > 0]
        assert read == [], f"{name}: read the partition before the window:\n{sql}"


def plan_nodes(node: dict, inner_loop: bool = False) -> Iterator[tuple[dict, bool]]:
    """Every node of a JSON plan, and whether it runs once per outer row (the inner side of a nested loop,
    e.g. the lateral live side of ``shadow_comparisons``), where partitions are pruned as the query runs."""
    yield node, inner_loop
    for child in node.get("Plans", []):
        inner = inner_loop or (node["Node Type"] == "Nested Loop" and child.get("Parent Relationship") == "Inner")
        yield from plan_nodes(child, inner)


def fail_one_shadow(conn: sa.Connection, request_id: str) -> None:
    conn.execute(sa.text("update inferences set status = 'error', output = null, error = '{\"type\": \"Boom\"}' "
                         "where routed_by = 'shadow' and request_id = :r"), {"r": request_id})


def test_every_readme_query_runs_and_counts_no_shadow_call_as_traffic(analyst_db: sa.Connection) -> None:
    """Issue 12: "premiums by version" showed the shadow version with as many rows as live traffic."""
    premiums, failures, shadow_diff, conversion = sql_statements(ROOT / "README.md")
    fail_one_shadow(analyst_db, "r2")
    analyst_db.execute(sa.text("""
        insert into inferences (id, model, version, routed_by, status, input, error, latency_ms, request_id,
                                artifact_sha256)
        values (gen_random_uuid(), 'auto_pricing', '2.1.1', 'pinned', 'rejected', '{}',
                '{"code": "unknown_vehicle"}', 1, 'r-rejected', repeat('0', 64))
    """))

    by_version = run(analyst_db, premiums, "version")
    assert {v: (r["count"], float(r["avg_premium"])) for v, r in by_version.items()} == \
        {"2.1.0": (5, 100.0), "2.1.1": (4, 110.0)}  # no 2.2.0: its answers reached no customer

    (failed,) = [dict(r._mapping) for r in analyst_db.execute(sa.text(failures))]
    assert (failed["version"], failed["status"], failed["error"]) == ("2.1.1", "rejected", {"code": "unknown_vehicle"})

    (differs,) = run(analyst_db, shadow_diff, "shadow_version").values()
    # the failed shadow has no premium, which differs too
    assert (differs["shadow_version"], differs["calls"], float(differs["differs"])) == ("2.2.0", 9, 1.0)

    arms = run(analyst_db, conversion)
    assert (arms["2.1.1"]["quotes"], float(arms["2.1.1"]["conversion"])) == (4, 0.5)
