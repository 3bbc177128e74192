"""``modelplatform.testing``: a data scientist tests one version against its config entry."""
from __future__ import annotations

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
