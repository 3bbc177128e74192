"""Migration 0002: the ``ab_arm_stats`` view and ``ab_arm_stats_since`` function on a seeded table."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from ab_seed_support import OLD, RECENT
from modelplatform import db


def stats(engine: sa.Engine, sql: str, **params) -> dict[tuple[str, str], dict]:
    with engine.connect() as conn:
        return {(r.version, r.routed_by): dict(r._mapping) for r in conn.execute(sa.text(sql), params)}


def test_view_has_calls_statuses_latency_and_first_last_seen_per_experiment_and_version(
        seed, clean_db: sa.Engine) -> None:
    seed("clean", "1.0.0", 1000)
    seed("clean", "2.0.0", 40)
    seed("clean", "3.0.0", 20, routed_by="shadow")
    seed("skewed", "1.0.0", 7, model="other")
    seed(None, "1.0.0", 5, routed_by="default")  # not in any experiment: not in the view

    rows = stats(clean_db, "select * from ab_arm_stats where experiment = 'clean'")
    assert set(rows) == {("1.0.0", "ab_test"), ("2.0.0", "ab_test"), ("3.0.0", "shadow")}
    arm = rows[("1.0.0", "ab_test")]
    assert arm["model"] == "rollout"
    assert (arm["calls"], arm["ok"], arm["invalid_input"], arm["rejected"], arm["error"]) == (1000, 850, 50, 50, 50)
    # percentile_cont interpolates: over 1..1000 the median is 500.5 and p95 is 1 + 0.95 × 999
    assert arm["latency_p50_ms"] == pytest.approx(500.5)
    assert arm["latency_p95_ms"] == pytest.approx(950.05)
    assert arm["first_seen"] == RECENT + timedelta(seconds=1)
    assert arm["last_seen"] == RECENT + timedelta(seconds=1000)
    assert rows[("3.0.0", "shadow")]["calls"] == 20

    with clean_db.connect() as conn:
        experiments = conn.execute(sa.text("select distinct experiment from ab_arm_stats order by 1")).scalars().all()
    assert experiments == ["clean", "skewed"]


def test_function_restricts_to_a_window(seed, clean_db: sa.Engine) -> None:
    seed("clean", "1.0.0", 30, t0=OLD)
    seed("clean", "1.0.0", 10)
    sql = "select * from ab_arm_stats_since(:since) where experiment = 'clean'"
    assert stats(clean_db, sql, since=RECENT)[("1.0.0", "ab_test")]["calls"] == 10
    assert stats(clean_db, sql, since=OLD)[("1.0.0", "ab_test")]["calls"] == 40
    assert stats(clean_db, "select * from ab_arm_stats")[("1.0.0", "ab_test")]["calls"] == 40


def test_downgrade_removes_the_view_and_function_and_upgrade_restores_them(
        database_url: str, clean_db: sa.Engine) -> None:
    def exists() -> tuple[bool, bool]:
        with clean_db.connect() as conn:
            view = conn.execute(sa.text("select to_regclass('ab_arm_stats') is not null")).scalar_one()
            func = conn.execute(sa.text(
                "select to_regprocedure('ab_arm_stats_since(timestamptz)') is not null")).scalar_one()
        return view, func

    assert exists() == (True, True)
    try:
        db.downgrade(database_url, "0001")
        assert exists() == (False, False)
    finally:
        db.upgrade(database_url)
    assert exists() == (True, True)
