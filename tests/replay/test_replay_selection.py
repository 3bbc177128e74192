"""Which recorded rows a replay reads: live traffic without shadow calls, one version, a window, a
deterministic sample, the newest N; stand-ins for oversized inputs counted, never replayed."""
from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from conftest import MODEL, Recorded, results
from modelplatform.audit import bounds
from support.models import Pricer

_COPY_ROW = sa.text("""
    insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status, input,
                            output, error, latency_ms, request_id, artifact_sha256)
    select cast(:new_id as uuid), created_at, model, :version, :routed_by, experiment, routing_key, status,
           coalesce(cast(:input as jsonb), input), output, coalesce(cast(:error as jsonb), error), latency_ms,
           :request_id, artifact_sha256
    from inferences where request_id = :source
""")


def _copy(engine: sa.Engine, source: str, request_id: str, *, version: str = "1.0.0", routed_by: str = "default",
          input_json: str | None = None, error_json: str | None = None, status: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(_COPY_ROW, {"new_id": str(uuid.uuid4()), "version": version, "routed_by": routed_by,
                                 "input": input_json, "error": error_json, "request_id": request_id,
                                 "source": source})
        if status is not None:
            conn.execute(sa.text("update inferences set status = :s, output = null where request_id = :r"),
                         {"s": status, "r": request_id})


def _replayed_ids(recorded: Recorded, run) -> set[str]:
    return {r["request_id"] for r in results(recorded.platform.engine, run.report["run_id"])}


def test_live_traffic_excludes_shadow_calls_and_a_version_baseline_includes_them(recorded: Recorded, replay) -> None:
    engine = recorded.platform.engine
    _copy(engine, "q-0", "shadow-1", version="1.1.0", routed_by="shadow")
    _copy(engine, "q-1", "shadow-2", version="1.1.0", routed_by="shadow")
    _copy(engine, "q-2", "pinned-1", version="1.1.0", routed_by="pinned")
    recorded.add_candidate("1.0.1", Pricer("300.00", "v1"))

    live = replay(MODEL, "--candidate", "1.0.1")
    version = replay(MODEL, "--candidate", "1.0.1", "--baseline", "1.1.0")

    assert live.code == version.code == 0, (live.err, version.err)
    assert _replayed_ids(recorded, live) == set(recorded.ids) | {"pinned-1"}
    assert _replayed_ids(recorded, version) == {"shadow-1", "shadow-2", "pinned-1"}
    assert live.report["baseline"] == "live" and version.report["baseline"] == "1.1.0"


def test_a_stand_in_for_an_oversized_input_is_counted_as_not_replayable(recorded: Recorded, replay) -> None:
    # what the data plane records for an oversized invalid body (audit/bounds.py), and a caller's own
    # input that merely holds the marker key, which is a real input and is replayed
    body = json.dumps({"vehicle": "suv", "padding": "x" * 5000})
    stand_in, clipped = bounds.invalid_input_json(body, limit=1024)
    error = bounds.invalid_input_error([{"path": "", "message": "too big"}], input_clipped=clipped)
    _copy(recorded.platform.engine, "q-0", "huge-1", input_json=stand_in, error_json=json.dumps(error),
          status="invalid_input")
    _copy(recorded.platform.engine, "q-1", "forged-1",
          input_json=json.dumps({bounds.CLIPPED_INPUT_KEY: {}, "vehicle": "suv", "driver_age": 30}))
    recorded.add_candidate("1.0.1", Pricer("300.00", "v1"))

    run = replay(MODEL, "--candidate", "1.0.1")

    assert run.code == 0, run.err
    rows = run.report["rows"]
    assert (rows["read"], rows["not_replayable"], rows["replayed"]) == (len(recorded.ids) + 2, 1, len(recorded.ids) + 1)
    assert "huge-1" not in _replayed_ids(recorded, run) and "forged-1" in _replayed_ids(recorded, run)
    # a gate can refuse a replay that could not see enough of the traffic
    assert replay(MODEL, "--candidate", "1.0.1", "--fail-on", "not_replayable>0").code == 1


def test_the_sample_is_decided_in_the_database_and_is_the_same_every_time(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.0.1", Pricer("300.00", "v1"))

    first = replay(MODEL, "--candidate", "1.0.1", "--sample", "0.3")
    second = replay(MODEL, "--candidate", "1.0.1", "--sample", "30%")
    smaller = replay(MODEL, "--candidate", "1.0.1", "--sample", "0.1")

    assert first.code == second.code == smaller.code == 0
    sampled = _replayed_ids(recorded, first)
    assert sampled == _replayed_ids(recorded, second)
    assert 0 < len(sampled) < len(recorded.ids)
    assert first.report["rows"]["read"] == len(sampled)  # the other rows never left the database
    assert _replayed_ids(recorded, smaller) <= sampled  # a smaller sample is nested in a larger one
    assert first.report["sample"] == 0.3


def test_limit_takes_the_newest_rows_and_the_window_bounds_them(recorded: Recorded, replay) -> None:
    engine = recorded.platform.engine
    with engine.begin() as conn:  # two rows from last month
        conn.execute(sa.text("update inferences set created_at = now() - interval '30 days' "
                             "where request_id in ('q-0', 'q-1')"))
    recorded.add_candidate("1.0.1", Pricer("300.00", "v1"))

    newest = replay(MODEL, "--candidate", "1.0.1", "--limit", "5")
    week = replay(MODEL, "--candidate", "1.0.1")
    all_time = replay(MODEL, "--candidate", "1.0.1", "--since", "60d")
    old_only = replay(MODEL, "--candidate", "1.0.1", "--since", "60d", "--until", "7d")

    n = len(recorded.ids)
    assert _replayed_ids(recorded, newest) == {f"q-{i}" for i in range(n - 5, n)}
    assert len(_replayed_ids(recorded, week)) == n - 2
    assert len(_replayed_ids(recorded, all_time)) == n
    assert _replayed_ids(recorded, old_only) == {"q-0", "q-1"}


def test_stored_results_join_back_to_inferences_and_to_outcome_tables(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.0.1", Pricer("300.00", "v1"))
    run = replay(MODEL, "--candidate", "1.0.1")
    assert run.code == 0, run.err

    with recorded.platform.engine.begin() as conn:
        conn.execute(sa.text("create temp table policy_sales (request_id text)"))
        conn.execute(sa.text("insert into policy_sales values ('q-3'), ('q-4')"))
        joined = conn.execute(sa.text("""
            select count(*) filter (where i.id is not null),
                   count(*) filter (where i.status = r.baseline_status and i.output = r.candidate_output),
                   count(*) filter (where s.request_id is not null)
            from replay_results r
            left join inferences i on i.id = r.inference_id and i.created_at = r.inference_created_at
            left join policy_sales s on s.request_id = r.request_id
            where r.run_id = :run
        """), {"run": run.report["run_id"]}).one()
        stored = conn.execute(sa.text("select model, candidate_version, baseline, state, exit_status, "
                                      "summary->'rows'->>'replayed' from replay_runs where id = :run"),
                              {"run": run.report["run_id"]}).one()
    n = len(recorded.ids)
    assert tuple(joined) == (n, n - 2, 2)  # the two non-ok rows have no output to match
    assert tuple(stored) == (MODEL, "1.0.1", "live", "done", 0, str(n))
    assert {str(r["inference_id"]) for r in results(recorded.platform.engine, run.report["run_id"])} == \
        set(recorded.ids.values())
