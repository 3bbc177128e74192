"""Migration 0005's views: ``live_inferences`` and ``shadow_comparisons``, on rows whose pairing is known."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from modelplatform import db
from modelplatform.settings import normalize_database_url

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
INSERT = sa.text("""
    insert into inferences (id, created_at, model, version, routed_by, status, input, output, latency_ms,
                            request_id, artifact_sha256)
    values (:id, :at, :model, :version, :routed_by, :status, '{"x": 1}', jsonb_build_object('v', :version),
            :latency, :request_id, repeat('0', 64))
""")


@pytest.fixture
def rows(clean_db: sa.Engine):
    """A connection in a transaction (rolled back after); ``add`` inserts one row and returns its id."""
    with clean_db.connect() as conn:
        tx = conn.begin()

        def add(request_id: str, routed_by: str, version: str, seconds: float, *, model: str = "pricing",
                status: str = "ok") -> str:
            row_id = str(uuid.uuid4())
            conn.execute(INSERT, {"id": row_id, "at": T0 + timedelta(seconds=seconds), "model": model,
                                  "version": version, "routed_by": routed_by, "status": status, "latency": 2,
                                  "request_id": request_id})
            return row_id
        add.conn = conn  # type: ignore[attr-defined]
        yield add
        tx.rollback()


def test_live_inferences_is_every_column_of_every_row_but_the_shadow_calls(rows) -> None:
    live = {rows("a", "default", "1.0", 0), rows("b", "ab_test", "1.1", 1), rows("c", "pinned", "1.0", 2)}
    rows("a", "shadow", "2.0", 0.5)
    conn = rows.conn
    assert {str(r.id) for r in conn.execute(sa.text("select id from live_inferences"))} == live
    columns = lambda name: [c["name"] for c in sa.inspect(conn).get_columns(name)]  # noqa: E731
    assert columns("live_inferences") == columns("inferences")


def test_each_shadow_call_is_paired_with_the_live_call_of_its_request(rows) -> None:
    old_reuse = rows("r1", "default", "1.0", -3600)        # the caller reused r1 an hour earlier
    live = rows("r1", "default", "1.1", 0)
    shadow = rows("r1", "shadow", "2.0", 0.2, status="error")
    other_model = rows("r1", "default", "1.0", 0.1, model="other")  # same request id, another model
    late = rows("r2", "shadow", "2.0", 900)                # its live call is 15 minutes older: not paired
    rows("r2", "default", "1.1", 0)
    orphan = rows("r3", "shadow", "2.0", 5)                # no live call at all

    found = {str(r.shadow_id): r for r in rows.conn.execute(sa.text("select * from shadow_comparisons"))}
    assert set(found) == {shadow, late, orphan}  # one row per shadow call, never more
    pair = found[shadow]
    assert (pair.request_id, pair.model, str(pair.live_id), pair.live_version, pair.live_routed_by, pair.live_status,
            pair.live_output) == ("r1", "pricing", live, "1.1", "default", "ok", {"v": "1.1"})
    assert (pair.shadow_version, pair.shadow_status, pair.shadow_input) == ("2.0", "error", {"x": 1})
    assert pair.live_created_at < pair.shadow_created_at
    assert old_reuse != str(pair.live_id) != other_model
    assert found[late].live_id is None and found[orphan].live_id is None


def test_0005_upgrades_and_downgrades_on_its_own_database(engine: sa.Engine) -> None:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"create database {name}"))
    url = normalize_database_url(make_url(engine.url.render_as_string(hide_password=False))
                                 .set(database=name).render_as_string(hide_password=False))

    def views() -> set[str]:
        other = sa.create_engine(url)
        try:
            return set(sa.inspect(other).get_view_names())
        finally:
            other.dispose()
    try:
        db.upgrade(url, "0005")
        assert {"live_inferences", "shadow_comparisons"} <= views()
        db.downgrade(url, "0003")
        assert not {"live_inferences", "shadow_comparisons"} & views()
        db.upgrade(url)
        assert {"live_inferences", "shadow_comparisons"} <= views()
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"drop database if exists {name} with (force)"))
