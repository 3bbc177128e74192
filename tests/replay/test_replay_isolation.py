"""The candidate runs apart from the CLI: verified before it is unpickled, without the CLI's secrets, and a
process that dies or hangs costs its own input, not the run."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import MODEL, Recorded, results
from modelplatform.authoring import dumps_by_value
from replay_support import ExitsOnAge, HangsOnAge, MarksOnUnpickle, ShowsEnvironment
from support.models import Pricer


def _runs(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from replay_runs")).scalar_one()


def test_a_tampered_candidate_is_refused_before_anything_unpickles_it(recorded: Recorded, replay,
                                                                      tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    forged = dumps_by_value(MarksOnUnpickle(str(marker)))
    # the forged file does leave the marker when something loads it (in a separate interpreter here)
    subprocess.run([sys.executable, "-c", "import sys, dill; dill.loads(sys.stdin.buffer.read())"], input=forged,
                   check=True, timeout=60)
    assert marker.exists()
    marker.unlink()

    pinned = recorded.add_candidate("1.4.0", Pricer("300.00", "v1"))  # the published, reviewed file
    store = recorded.platform.store
    store.client.put_object(Bucket=store.location.bucket, Key=store.location.key(MODEL, "1.4.0"), Body=forged)
    runs_before = _runs(recorded.platform.engine)

    run = replay(MODEL, "--candidate", "1.4.0")

    assert run.code == 2
    assert "refused, nothing was loaded" in run.err and "sha256 mismatch" in run.err and pinned in run.err
    assert not marker.exists()
    assert run.out == ""
    assert _runs(recorded.platform.engine) == runs_before  # no run was started


def test_the_candidate_sees_no_database_url_and_no_cloud_credentials(recorded: Recorded, replay,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-secret")
    recorded.add_candidate("1.5.0", ShowsEnvironment())

    run = replay(MODEL, "--candidate", "1.5.0", "--limit", "3")

    assert run.code == 0, run.err
    (row, *_) = [r for r in results(recorded.platform.engine, run.report["run_id"]) if r["candidate_status"] == "ok"]
    seen = row["candidate_output"]
    assert seen["values"] == {"DATABASE_URL": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_ACCESS_KEY_ID": None,
                              "MODEL_STORE_URL": None}
    assert not [name for name in seen["names"] if name.startswith("AWS_") or "DATABASE" in name]
    assert "PATH" in seen["names"]


@pytest.mark.slow
def test_a_child_that_exits_on_one_input_costs_that_input_and_the_run_completes(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.6.0", ExitsOnAge(30))

    run = replay(MODEL, "--candidate", "1.6.0", "--batch-size", "10")

    assert run.code == 0, run.err
    report = run.report
    assert report["rows"]["replayed"] == len(recorded.inputs)
    died = [r for r in results(recorded.platform.engine, report["run_id"]) if r["candidate_status"] == "error"]
    assert sorted(r["request_id"] for r in died) == sorted(
        f"q-{i}" for i, q in enumerate(recorded.inputs) if q["driver_age"] == 30)
    for row in died:
        assert row["candidate_error"] == {"type": "ProcessDied", "message": "the replay process exited with status 3"}
    others = [r for r in results(recorded.platform.engine, report["run_id"]) if r["candidate_status"] != "error"]
    assert not any(r["changed"] for r in others)  # every other input got its real outcome
    assert report["process"]["restarts"] == 6  # each killer input: once in its batch, once alone


@pytest.mark.slow
def test_a_batch_that_hangs_is_killed_after_the_timeout_and_only_the_hanging_input_fails(recorded: Recorded,
                                                                                          replay) -> None:
    recorded.add_candidate("1.7.0", HangsOnAge(40))

    run = replay(MODEL, "--candidate", "1.7.0", "--timeout", "2", "--batch-size", "200")

    assert run.code == 0, run.err
    report = run.report
    failed = [r for r in results(recorded.platform.engine, report["run_id"]) if r["candidate_status"] == "error"]
    assert sorted(r["request_id"] for r in failed) == sorted(
        f"q-{i}" for i, q in enumerate(recorded.inputs) if q["driver_age"] == 40)
    assert {r["candidate_error"]["type"] for r in failed} == {"ReplayTimeout"}
    assert report["rows"]["changed"] == len(failed) == 3


def test_a_child_that_keeps_dying_stops_the_replay_with_exit_2(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.8.0", ExitsOnAge(30))

    run = replay(MODEL, "--candidate", "1.8.0", "--max-restarts", "1")

    assert run.code == 2
    assert "aborted" in run.err and "died or timed out 2 times" in run.err
    with recorded.platform.engine.connect() as conn:
        states = conn.execute(sa.text("select state from replay_runs where candidate_version = '1.8.0'")).scalars()
        assert list(states) == ["aborted"]


@pytest.mark.slow
def test_a_database_that_goes_away_mid_run_exits_2_and_leaves_no_child(recorded: Recorded, replay) -> None:
    """The replay's connections are cut while it runs: a one-line error and exit 2, no hang, no orphan."""
    import threading

    import psutil

    from replay_support import SlowPricer

    recorded.add_candidate("1.9.1", SlowPricer(0.05))
    engine = recorded.platform.engine
    stop = threading.Event()

    def cut() -> None:  # bounded: at most 30 s of polling
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            with engine.connect() as conn:
                killed = conn.execute(sa.text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where application_name = 'modelplatform-replay' and query ilike '%fetch%'")).scalar_one()
            if killed:
                return
            time.sleep(0.05)

    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        run = replay(MODEL, "--candidate", "1.9.1", "--batch-size", "5")
    finally:
        stop.set()
        cutter.join(timeout=35)
    assert run.code == 2, (run.out, run.err)
    assert "the database failed during the replay" in run.err
    assert run.out == ""
    leftover = {p.pid for p in psutil.Process().children(recursive=True)} - children_before
    assert not [p for p in leftover if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    with engine.connect() as conn:
        state = conn.execute(sa.text("select state from replay_runs where candidate_version = '1.9.1'")).scalar_one()
    assert state == "failed"
