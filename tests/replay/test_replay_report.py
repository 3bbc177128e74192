"""The report's figures: exact quantiles over every row, leaf change rates, --fail-on gating the exit
status, --out files, and exit 2 for every way a replay cannot run."""
from __future__ import annotations

import csv
import json

import numpy
import pytest

from conftest import MODEL, Recorded, results
from replay_support import QUOTE_SCHEMA, AgeSlope, RejectsVans, RenamesCurrency, YoungDriverSurcharge
from support.models import Pricer


def test_medians_and_p95s_are_exact_over_every_compared_row(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.1.0", AgeSlope("300.00", "v1"))

    run = replay(MODEL, "--candidate", "1.1.0", "--tolerance", "1")

    assert run.code == 0, run.err
    premium = next(leaf for leaf in run.report["leaves"] if leaf["pointer"] == "/premium")
    stored = [r for r in results(recorded.platform.engine, run.report["run_id"]) if r["candidate_status"] == "ok"
              and r["baseline_status"] == "ok"]
    ages = {f"q-{i}": q["driver_age"] for i, q in enumerate(recorded.inputs)}
    abs_diffs = numpy.array([(ages[r["request_id"]] % 7) * 0.37 for r in stored])
    baseline = {r["request_id"]: float(r["candidate_output"]["premium"]) - d
                for r, d in zip(stored, abs_diffs, strict=True)}
    rel_diffs = numpy.array([d / baseline[r["request_id"]] for r, d in zip(stored, abs_diffs, strict=True)])
    assert premium["numeric"] == len(stored) == run.report["rows"]["both_ok"]
    for name, q in (("median", 50), ("p95", 95)):
        assert premium["abs"][name] == pytest.approx(numpy.percentile(abs_diffs, q), abs=1e-9)
        assert premium["rel"][name] == pytest.approx(numpy.percentile(rel_diffs, q), rel=1e-6)
    assert premium["abs"]["mean"] == pytest.approx(abs_diffs.mean(), abs=1e-9)
    assert premium["abs"]["max"] == pytest.approx(abs_diffs.max(), abs=1e-9)
    assert premium["beyond"] == int((abs_diffs > 1).sum())
    assert premium["changed"] == int((abs_diffs > 0).sum())


def test_other_leaves_report_their_change_rate_and_added_leaves(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.1.0", RenamesCurrency("300.00", "v1"))

    run = replay(MODEL, "--candidate", "1.1.0")

    leaves = {leaf["pointer"]: leaf for leaf in run.report["leaves"]}
    suvs = sum(1 for q in recorded.inputs if q["vehicle"] == "suv" and q["driver_age"] >= 17)
    both_ok = run.report["rows"]["both_ok"]
    assert leaves["/currency"]["changed"] == suvs
    assert leaves["/currency"]["change_rate"] == pytest.approx(suvs / both_ok)
    assert leaves["/discount"]["added"] == both_ok
    assert run.report["rows"]["changed"] == both_ok  # every ok row gained a leaf


@pytest.mark.parametrize(("fail_on", "code"), [
    ("changed>50%", 0), ("changed>1%", 1), ("changed>=21", 1), ("changed>21", 0),
    ("error>0", 0), ("ok->ok>1000", 0), ("/premium:p95>100", 0), ("/premium:p95>5", 1),
    ("/premium:rel_max>=10%", 1), ("/premium:rel_max>11%", 0), ("/currency:changed>0", 0),
    ("/not/there:max>0", 0), ("error>0,/premium:max>60", 1),
])
def test_fail_on_gates_the_exit_status(recorded: Recorded, replay, fail_on: str, code: int) -> None:
    recorded.add_candidate("1.1.0", YoungDriverSurcharge("300.00", "v1"))  # 21 rows +10%, max +60.75

    run = replay(MODEL, "--candidate", "1.1.0", "--fail-on", fail_on)

    assert run.code == code, (run.err, run.report["gates"])
    assert run.report["exit_status"] == code and run.report["gates"]["failed"] is bool(code)


def test_fail_on_counts_new_statuses_and_transitions(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.2.0", RejectsVans("300.00", "v1"))
    assert replay(MODEL, "--candidate", "1.2.0", "--fail-on", "rejected>=24").code == 1  # new rejections only
    assert replay(MODEL, "--candidate", "1.2.0", "--fail-on", "rejected>24").code == 0
    assert replay(MODEL, "--candidate", "1.2.0", "--fail-on", "ok->rejected>0").code == 1
    assert replay(MODEL, "--candidate", "1.2.0", "--fail-on", "ok->invalid_input>0").code == 0
    text = replay(MODEL, "--candidate", "1.2.0", "--fail-on", "status_changed>10%", json_output=False)
    assert text.code == 1
    assert "FAILED  status_changed>10%  (observed 32.43%)" in text.out


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_out_writes_every_replayed_row(recorded: Recorded, replay, tmp_path, suffix: str) -> None:
    recorded.add_candidate("1.1.0", YoungDriverSurcharge("300.00", "v1"))
    out = tmp_path / f"replay{suffix}"

    run = replay(MODEL, "--candidate", "1.1.0", "--out", str(out))

    assert run.code == 0, run.err
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    else:
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    assert len(rows) == len(recorded.ids)
    assert {r["request_id"] for r in rows} == set(recorded.ids)
    changed = [r for r in rows if r["changed"] in (True, "True")]
    assert len(changed) == run.report["rows"]["changed"] == 21
    assert all(json.loads(r["input"])["driver_age"] < 25 for r in changed)
    assert not list(tmp_path.glob("*.partial"))


def test_a_candidate_outside_the_config_runs_with_sha256_and_schema(recorded: Recorded, replay, tmp_path) -> None:
    sha = recorded.add_candidate("2.0.0", Pricer("300.00", "v1"), pin=False)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(QUOTE_SCHEMA))

    unpinned = replay(MODEL, "--candidate", "2.0.0")
    no_schema = replay(MODEL, "--candidate", "2.0.0", "--sha256", sha)
    run = replay(MODEL, "--candidate", "2.0.0", "--sha256", sha, "--schema", str(schema))

    assert unpinned.code == 2 and "pass --sha256" in unpinned.err
    assert no_schema.code == 2 and "no schema covers auto_pricing 2.0.0" in no_schema.err
    assert run.code == 0, run.err
    assert run.report["rows"]["changed"] == 0
    assert run.report["candidate"]["schema"] == str(schema)


@pytest.mark.parametrize(("argv", "message"), [
    (("--candidate", "9.9.9", "--sha256", "0" * 64, "--schema", "/nonexistent.json"), "--schema /nonexistent.json"),
    (("--candidate", "1.0.0", "--sha256", "1" * 64), "differs from the config's"),
    (("--candidate", "x.y"), "is not a version"),
    (("--candidate", "1.0.0", "--out", "result.xlsx"), "must end in .parquet or .csv"),
    (("--candidate", "1.0.0", "--since", "1d", "--until", "2d"), "--until must be later than --since"),
    (("--candidate", "1.0.0", "--out", "/nonexistent/dir/r.csv"), "the directory /nonexistent/dir does not exist"),
])
def test_arguments_that_cannot_run_exit_2(recorded: Recorded, replay, argv, message: str) -> None:
    run = replay(MODEL, *argv)
    assert run.code == 2
    assert message in run.err


@pytest.mark.parametrize("argv", [
    ("--candidate", "1.0.0", "--sample", "1.5"), ("--candidate", "1.0.0", "--fail-on", "premium>5"),
    ("--candidate", "1.0.0", "--fail-on", "/premium:p95>5%"), ("--candidate", "1.0.0", "--tolerance", "abc"),
    ("--candidate", "1.0.0", "--limit", "0"), ("--candidate", "1.0.0", "--sha256", "xyz"),
])
def test_malformed_options_are_usage_errors(recorded: Recorded, replay, argv) -> None:
    assert replay(MODEL, *argv).code == 2


def test_a_missing_candidate_file_exits_2_naming_it(recorded: Recorded, replay) -> None:
    recorded.platform.config[MODEL]["sha256"]["1.9.0"] = "a" * 64
    recorded.platform.write_config()
    run = replay(MODEL, "--candidate", "1.9.0")
    assert run.code == 2 and "no model file at" in run.err and "1.9.0.dill" in run.err


def test_no_database_exits_2(recorded: Recorded, replay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    run = replay(MODEL, "--candidate", "1.0.0")
    assert run.code == 2 and "cannot use the database" in run.err
    monkeypatch.delenv("DATABASE_URL")
    run = replay(MODEL, "--candidate", "1.0.0")
    assert run.code == 2 and "DATABASE_URL is not set" in run.err


def test_differences_beyond_the_float_range_are_reported_not_fatal(recorded: Recorded, replay) -> None:
    """1.7e308 → -1.7e308 differs by more than a float holds: the run completes and stores its report."""
    import sqlalchemy as sa

    from support.models import Returns

    with recorded.platform.engine.begin() as conn:
        conn.execute(sa.text("update inferences set output = jsonb_set(output, '{premium}', '1.7e308') "
                             "where request_id = 'q-0'"))
    recorded.add_candidate("1.1.0", Returns({"premium": -1.7e308, "currency": "EUR", "tag": "v1"}))

    run = replay(MODEL, "--candidate", "1.1.0")

    assert run.code == 0, run.err
    premium = next(leaf for leaf in run.report["leaves"] if leaf["pointer"] == "/premium")
    assert premium["changed"] == run.report["rows"]["both_ok"]
    assert premium["abs"]["max"] is None  # infinite: no JSON number for it
    with recorded.platform.engine.connect() as conn:
        stored = conn.execute(sa.text("select state, summary->'rows'->>'changed' from replay_runs where id = :r"),
                              {"r": run.report["run_id"]}).one()
    assert tuple(stored) == ("done", str(run.report["rows"]["changed"]))


@pytest.mark.slow
def test_the_console_script_shows_a_progress_bar_on_a_terminal_and_the_table_on_stdout(recorded: Recorded) -> None:
    """The installed command in its own process: stderr on a pseudo-terminal gets tqdm's bar, stdout
    (a pipe) gets the table."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    from pathlib import Path

    recorded.add_candidate("1.1.0", YoungDriverSurcharge("300.00", "v1"))
    leader, follower = pty.openpty()
    # a new pseudo-terminal is 0 columns wide, where tqdm draws nothing; a real one has a size
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run([str(Path(sys.executable).with_name("modelplatform")), "replay", MODEL,
                                 "--candidate", "1.1.0"], stdout=subprocess.PIPE, stderr=follower,
                                env=os.environ.copy(), timeout=120)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert result.returncode == 0, terminal
    assert f"replaying {MODEL} 1.1.0" in terminal and f"{len(recorded.ids)}/{len(recorded.ids)}" in terminal
    table = result.stdout.decode()
    assert "status transitions (recorded → candidate):" in table and "/premium" in table
    assert "replaying" not in table


def test_an_empty_window_is_a_report_of_nothing(recorded: Recorded, replay) -> None:
    recorded.add_candidate("1.1.0", YoungDriverSurcharge("300.00", "v1"))

    text = replay(MODEL, "--candidate", "1.1.0", "--since", "60d", "--until", "30d", "--fail-on", "changed>0",
                  json_output=False)

    assert text.code == 0, text.err
    assert "rows read 0, replayed 0" in text.out and "none: no rows in the window" in text.out
