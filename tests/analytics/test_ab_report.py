"""``modelplatform ab-report``: the table, the sample-ratio-mismatch verdict, ``--since`` and ``--json``."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scipy import stats

from ab_seed_support import OLD
from modelplatform.ab_report import parse_since, srm_check
from modelplatform.cli import main


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch, database_url: str, config_path: Path, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("MODELS_CONFIG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["ab-report", *args, "--config", str(config_path)])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_clean_split_prints_the_table_and_no_mismatch(seed, report) -> None:
    seed("clean", "1.0.0", 1000)
    seed("clean", "2.0.0", 1010)
    seed("clean", "3.0.0", 300, routed_by="shadow")  # shadows are shown, never counted in the split

    code, out, _ = report("clean")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("A/B test clean on rollout, all time")
    arm = next(line.split() for line in lines if line.startswith("rollout  1.0.0"))
    assert arm[:8] == ["rollout", "1.0.0", "ab_test", "1000", "850", "50", "50", "50"]
    assert arm[8:10] == ["500.50", "950.05"]
    assert any(line.split()[:4] == ["rollout", "3.0.0", "shadow", "300"] for line in lines)
    assert "observed  1.0.0=1000, 2.0.0=1010" in out
    assert "verdict: no sample ratio mismatch detected" in out


def test_skewed_split_is_a_sample_ratio_mismatch(seed, report) -> None:
    seed("skewed", "1.0.0", 1000, model="other")
    seed("skewed", "2.0.0", 1200, model="other")

    code, out, _ = report("skewed")
    assert code == 0
    expected_p = stats.chisquare([1000, 1200], [1100, 1100]).pvalue  # ≈ 2e-5
    assert expected_p < 0.001
    assert "chi2 = 18.182" in out
    assert "verdict: sample ratio mismatch" in out and "do not trust this test" in out


def test_json_output_shape(seed, report) -> None:
    seed("skewed", "1.0.0", 1000, model="other")
    seed("skewed", "2.0.0", 1200, model="other")

    code, out, _ = report("skewed", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"experiment", "model", "since", "arms", "srm"}
    assert (doc["experiment"], doc["model"], doc["since"]) == ("skewed", "other", None)
    assert [(a["version"], a["routed_by"], a["calls"]) for a in doc["arms"]] == \
           [("1.0.0", "ab_test", 1000), ("2.0.0", "ab_test", 1200)]
    assert set(doc["arms"][0]) == {"model", "version", "routed_by", "calls", "ok", "invalid_input", "rejected",
                                   "error", "latency_p50_ms", "latency_p95_ms", "first_seen", "last_seen"}
    datetime.fromisoformat(doc["arms"][0]["first_seen"])
    srm = doc["srm"]
    assert (srm["checked"], srm["mismatch"]) == (True, True)
    assert srm["weights"] == {"1.0.0": 50, "2.0.0": 50}
    assert srm["observed"] == {"1.0.0": 1000, "2.0.0": 1200}
    assert srm["expected"] == {"1.0.0": 1100.0, "2.0.0": 1100.0}
    assert srm["chi2"] == pytest.approx(2 * 100 ** 2 / 1100)  # Σ (observed − expected)² / expected
    assert srm["p_value"] == pytest.approx(stats.chisquare([1000, 1200]).pvalue)
    assert "sample ratio mismatch" in srm["verdict"]


def test_since_excludes_older_calls(seed, report) -> None:
    # ten days ago an extra 500 calls went to 1.0.0; the last week is clean
    seed("clean", "1.0.0", 500, t0=OLD)
    seed("clean", "1.0.0", 1000)
    seed("clean", "2.0.0", 1000)

    _, all_time, _ = report("clean", "--json")
    assert json.loads(all_time)["srm"]["mismatch"] is True

    for since in ("7d", "168h", (datetime.now(UTC) - timedelta(days=7)).isoformat()):
        code, out, _ = report("clean", "--json", "--since", since)
        doc = json.loads(out)
        assert code == 0
        assert doc["srm"]["observed"] == {"1.0.0": 1000, "2.0.0": 1000}, since
        assert doc["srm"]["mismatch"] is False


def test_calls_on_a_version_without_weight_are_a_mismatch(seed, report) -> None:
    seed("zeroed", "1.0.0", 100, model="third")
    seed("zeroed", "2.0.0", 3, model="third")
    _, out, _ = report("zeroed", "--json")
    srm = json.loads(out)["srm"]
    assert (srm["checked"], srm["mismatch"], srm["p_value"]) == (True, True, 0.0)
    assert "2.0.0" in srm["verdict"] and "no weight" in srm["verdict"]


def test_experiment_missing_from_config_is_reported_without_a_check(seed, report) -> None:
    seed("retired", "1.0.0", 20)
    code, out, _ = report("retired")
    assert code == 0
    assert "rollout  1.0.0    ab_test" in out
    assert "not checked: the experiment is not in the config" in out


def test_a_misspelled_test_name_lists_the_known_tests_and_exits_1(seed, report) -> None:
    """Issue 12: a typo used to exit 0 with "no calls recorded", as if the test had no traffic yet."""
    seed("retired", "1.0.0", 20)  # calls of a test no longer in the config do not make a typo known
    code, out, err = report("claen")
    assert (code, out) == (1, "")
    config = err.split(" in ")[1].split(",")[0]
    assert err == (f"modelplatform ab-report: no A/B test 'claen' in {config}, and no call recorded under that "
                   "name; the config's tests: clean, skewed, zeroed\n")

    code, _, err = report("claen", "--since", "7d", "--json")
    assert code == 1 and "the config's tests: clean, skewed, zeroed" in err


def test_experiment_without_calls(clean_db, report) -> None:
    code, out, _ = report("clean")
    assert code == 0
    assert "no calls recorded for this experiment" in out
    assert "not checked: no calls recorded" in out


def test_bad_since_missing_database_url_and_broken_config_exit_2(report, monkeypatch, tmp_path: Path,
                                                                  capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        report("clean", "--since", "yesterday")
    assert exc.value.code == 2
    assert "neither an ISO timestamp" in capsys.readouterr().err

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["ab-report", "clean", "--config", str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err

    monkeypatch.delenv("DATABASE_URL")
    code, _, err = report("clean")
    assert code == 2 and "DATABASE_URL is not set" in err


def test_unmigrated_database_exits_2_with_a_hint(report, monkeypatch, database_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url.rsplit("/", 1)[0] + "/template1")
    code, _, err = report("clean")
    assert code == 2
    assert "db upgrade" in err


def test_srm_check_needs_enough_calls_and_two_arms() -> None:
    assert "too few calls" in srm_check({"a": 3, "b": 2}, {"a": 50, "b": 50}).verdict
    assert not srm_check({"a": 3, "b": 2}, {"a": 50, "b": 50}).checked
    assert "only one arm" in srm_check({"a": 300}, {"a": 100, "b": 0}).verdict
    uneven = srm_check({"a": 900, "b": 2100}, {"a": 30, "b": 70})
    assert uneven.checked and not uneven.mismatch and uneven.expected == {"a": 900.0, "b": 2100.0}


def test_parse_since() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-20T08:00:00Z") == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert parse_since("2026-11-20") == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since("2026-11-20T08:00:00+02:00") == datetime(2026, 11, 20, 6, tzinfo=UTC)
    for bad in ("", "7x", "-1d", "last week"):
        with pytest.raises(ValueError, match="is neither an ISO timestamp"):
            parse_since(bad, now)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 19, 20, 49, 100])
def test_chi2_survival_function_matches_scipy(df: int) -> None:
    from modelplatform.ab_report import chi2_sf

    for x in (0.0, 1e-9, 0.01, 0.5, 1.0, df / 2, df - 1.0, float(df), df + 3.5, 2.0 * df, 18.18, 50.0, 150.0,
              700.0, 1400.0):
        expected = stats.chi2.sf(x, df)
        assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-10, abs=1e-300), (x, df)


def test_chisquare_matches_scipy() -> None:
    from modelplatform.ab_report import chisquare

    for observed, expected in (([1000, 1200], [1100, 1100]), ([5, 9, 31], [15.0, 15.0, 15.0]),
                               ([900, 2100], [900.0, 2100.0]), ([10, 12, 8, 30], [15.0, 15.0, 15.0, 15.0])):
        statistic, p_value = chisquare(observed, expected)
        reference = stats.chisquare(observed, expected)
        assert statistic == pytest.approx(reference.statistic, rel=1e-12)
        assert p_value == pytest.approx(reference.pvalue, rel=1e-10)


@pytest.mark.slow
def test_ab_report_imports_no_statistics_library() -> None:
    """The command used to spend most of its time importing scipy for one p-value (issue 12)."""
    code = ("import sys, modelplatform.ab_report, modelplatform.cli.ab_report_command; "
            "print(sorted(m for m in ('scipy', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
