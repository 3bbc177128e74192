"""What a replay finds: exactly the inputs whose outcome the candidate changes, and nothing else."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from conftest import MODEL, Recorded, results
from replay_support import RaisesOnAge, RejectsVans, YoungDriverSurcharge
from support.models import Pricer


def test_replaying_the_live_version_itself_changes_nothing(recorded: Recorded, replay) -> None:
    """The child classifies exactly like the data plane: ok, rejected and invalid_input all reproduce."""
    recorded.add_candidate("1.0.1", Pricer("300.00", "v1"))

    run = replay(MODEL, "--candidate", "1.0.1")

    assert run.code == 0, run.err
    report = run.report
    n = len(recorded.inputs)
    assert report["rows"] == {"read": n, "not_replayable": 0, "replayed": n, "changed": 0, "unchanged": n,
                              "both_ok": n - 2}
    assert {(t["from"], t["to"]): t["count"] for t in report["transitions"]} == {
        ("ok", "ok"): n - 2, ("rejected", "rejected"): 1, ("invalid_input", "invalid_input"): 1}
    premium = next(leaf for leaf in report["leaves"] if leaf["pointer"] == "/premium")
    assert premium["changed"] == 0 and premium["abs"] == {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0}
    assert report["largest"] == []


def test_a_candidate_that_changes_young_drivers_is_found_on_exactly_those(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.1.0", YoungDriverSurcharge("300.00", "v1"))

    run = replay(MODEL, "--candidate", "1.1.0", "--top", "100")

    assert run.code == 0, run.err
    report = run.report
    young = {f"q-{i}" for i, q in enumerate(recorded.inputs)
             if q["driver_age"] < 25 and q["vehicle"] != "tractor" and q["driver_age"] >= 17}
    assert len(young) == 3 * 7
    assert report["rows"]["changed"] == len(young)
    stored = results(recorded.platform.engine, report["run_id"])
    assert {r["request_id"] for r in stored if r["changed"]} == young
    assert {r["request_id"] for r in report["largest"]} == young
    for example in report["largest"]:
        assert set(example["diffs"]) == {"/premium"}
        before, after = Decimal(str(example["baseline"]["output"]["premium"])), \
            Decimal(str(example["candidate"]["output"]["premium"]))
        assert after == (before * Decimal("1.10")).quantize(Decimal("0.01"))
        assert example["input"]["driver_age"] < 25
    leaves = {leaf["pointer"]: leaf for leaf in report["leaves"]}
    assert {p for p, leaf in leaves.items() if leaf["changed"]} == {"/premium"}
    assert leaves["/currency"]["kind"] == "other" and leaves["/currency"]["changed"] == 0
    premium = leaves["/premium"]
    assert premium["changed"] == len(young) and premium["numeric"] == report["rows"]["both_ok"]
    # every changed premium moved by 10% (to the cent): the relative maximum is about 10%
    assert abs(premium["rel"]["max"] - 0.10) < 0.001
    assert premium["beyond"] == len(young)


def test_a_candidate_that_rejects_some_inputs_shows_the_transitions(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.2.0", RejectsVans("300.00", "v1"))

    run = replay(MODEL, "--candidate", "1.2.0")

    assert run.code == 0, run.err
    transitions = {(t["from"], t["to"]): t for t in run.report["transitions"]}
    vans = sum(1 for q in recorded.inputs if q["vehicle"] == "van")
    assert transitions[("ok", "rejected")]["count"] == vans
    examples = transitions[("ok", "rejected")]["examples"]
    assert len(examples) == 3
    for example in examples:
        assert example["input"]["vehicle"] == "van"
        assert example["candidate"]["error"] == {"code": "no_vans", "message": "vans are no longer priced"}
    assert run.report["rows"]["changed"] == vans


def test_a_candidate_that_raises_on_one_input_is_a_result_and_the_run_completes(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.3.0", RaisesOnAge(33))

    run = replay(MODEL, "--candidate", "1.3.0")

    assert run.code == 0, run.err
    report = run.report
    assert report["rows"]["replayed"] == len(recorded.inputs)
    (errors,) = [t for t in report["transitions"] if t["to"] == "error"]
    assert (errors["from"], errors["count"]) == ("ok", 3)
    assert {e["input"]["driver_age"] for e in errors["examples"]} == {33}
    assert errors["examples"][0]["candidate"]["error"] == {
        "type": "ZeroDivisionError", "message": "the candidate divides by zero on this input"}
    with recorded.platform.engine.connect() as conn:
        state = conn.execute(sa.text("select state, exit_status, rows_replayed from replay_runs where id = :r"),
                             {"r": report["run_id"]}).one()
    assert tuple(state) == ("done", 0, len(recorded.inputs))
