"""``modelplatform.testing``: a data scientist tests one version against its config entry."""
from __future__ import annotations

import json

import pytest

from modelplatform.testing import VersionCheckFailed, check_version, version_problems
from support import model_entry, publish
from support.models import Pricer


@pytest.fixture
def config_path(store, write_config, schema):
    entry = model_entry(
        {"1.0.0": publish(store, "auto_pricing", "1.0.0", Pricer("300.00", "v1")),
         "1.1.0": publish(store, "auto_pricing", "1.1.0", Pricer("999.00", "v2"))},
        schemas={"1.X.X": schema("schema_quote_v1.json")},
        examples={"1.X.X": [{"input": {"vehicle": "suv", "driver_age": 40},
                             "output": {"premium": 405.0, "currency": "EUR", "tag": "v1"}}]},
    )
    # another model's mistake must not fail this model's test
    other = model_entry({"1.0": "0" * 64}, default="2.0")
    return write_config({"auto_pricing": entry, "other": other})


def test_a_good_published_version_passes(config_path, store) -> None:
    check_version(config_path, "auto_pricing", "1.0.0", store=store)


def test_a_bad_version_fails_with_every_problem_listed(config_path, store) -> None:
    with pytest.raises(VersionCheckFailed) as failed:
        check_version(config_path, "auto_pricing", "1.1.0", store=store)

    (problem,) = failed.value.problems
    assert problem.check == "example" and "output differs" in problem.message
    assert "auto_pricing 1.1.0: 1 problem(s)" in str(failed.value)
    assert '"premium": 1348.65' in str(failed.value)


def test_a_local_file_can_be_checked_before_publishing(config_path, model_file) -> None:
    good = model_file(Pricer("300.00", "v1"), "candidate.dill")
    # 1.2.0 is not in the config yet: no pinned digest, the 1.X.X schema and examples apply
    assert version_problems(config_path, "auto_pricing", "1.2.0", file=good) == []

    bad = model_file(b"not a model", "broken.dill")
    (problem,) = version_problems(config_path, "auto_pricing", "1.2.0", file=bad)
    assert problem.check == "model" and "cannot be loaded with dill" in problem.message


def test_a_local_file_that_differs_from_the_pinned_digest_fails(config_path, model_file) -> None:
    other = model_file(Pricer("300.00", "v1-retrained"), "retrained.dill")
    (problem,) = version_problems(config_path, "auto_pricing", "1.0.0", file=other)
    assert problem.check == "store" and "sha256 mismatch" in problem.message


def test_unknown_model_and_uncovered_version_are_reported(config_path, store) -> None:
    (unknown,) = version_problems(config_path, "nope", "1.0.0", store=store)
    assert "no model 'nope'" in unknown.message
    (uncovered,) = version_problems(config_path, "auto_pricing", "2.0.0", store=store)
    assert "no single schema covers this version" in uncovered.message
    (missing,) = version_problems(config_path, "auto_pricing", "1.9.0", store=store)
    assert missing.check == "store" and "no model file" in missing.message


@pytest.fixture
def preparing_config(store, write_config, schema):
    """1.0.0 is live; 2.2.0 is being prepared: its schema and examples are in, it is not active yet."""
    entry = model_entry(
        {"1.0.0": publish(store, "auto_pricing", "1.0.0", Pricer("300.00", "v1"))},
        schemas={"1.X.X": schema("schema_quote_v1.json"), "2.2.X": schema("schema_quote_v1.json")},
        examples={"2.2.X": [{"input": {"vehicle": "suv", "driver_age": 40},
                             "output": {"premium": 405.0, "currency": "EUR", "tag": "v2.2"}}]},
    )
    return write_config({"auto_pricing": entry})


def test_a_version_being_prepared_is_tested_against_a_local_file_before_publishing(preparing_config,
                                                                                     model_file) -> None:
    # issue 12: examples keyed 2.2.X used to be a config error ("covers no active version"), so the only
    # way to run them was to activate and pin a version that did not exist yet
    good = model_file(Pricer("300.00", "v2.2"), "candidate.dill")
    check_version(preparing_config, "auto_pricing", "2.2.0", file=good)

    wrong = model_file(Pricer("310.00", "v2.2"), "wrong.dill")
    with pytest.raises(VersionCheckFailed) as failed:
        check_version(preparing_config, "auto_pricing", "2.2.0", file=wrong)
    (problem,) = failed.value.problems
    assert problem.check == "example" and "examples['2.2.X'][0]: output differs" in problem.message


def test_a_version_being_prepared_starts_and_passes_check_config_with_a_warning(preparing_config, cli,
                                                                               store_url) -> None:
    from modelplatform.config import load_config

    assert list(load_config(preparing_config).models) == ["auto_pricing"]  # the server starts on it
    run = cli("check-config", str(preparing_config))
    assert run.code == 0, run.out
    assert "OK" in run.out
    assert ("  warning: [config] auto_pricing: examples key '2.2.X' covers no active version: fine while that "
            "version is being prepared; otherwise a typo or a leftover, remove it") in run.out
    assert "warning: [config] auto_pricing: schemas key '2.2.X' covers no active version" in run.out

    doc = json.loads(cli("check-config", str(preparing_config), "--json").out)
    assert doc["ok"] is True and doc["problems"] == []
    assert [w["message"][:22] for w in doc["warnings"]] == ["schemas key '2.2.X' co", "examples key '2.2.X' c"]


def test_a_missing_local_file_is_a_problem_not_a_crash(preparing_config, tmp_path) -> None:
    (problem,) = version_problems(preparing_config, "auto_pricing", "2.2.0", file=tmp_path / "absent.dill")
    assert problem.check == "model" and "cannot read" in problem.message
