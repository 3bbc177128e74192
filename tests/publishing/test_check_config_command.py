"""``modelplatform check-config``: every problem in one run, each naming model, version and what to do."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelplatform.artifacts import sha256_hex
from modelplatform.store import S3ModelStore
from support import model_entry, publish
from support.models import Echo, Pricer, Raises, Returns


@pytest.fixture
def clean_config(store: S3ModelStore, store_url: str, schema) -> dict[str, Any]:
    """Two pricing versions with examples whose outputs are exact Decimals, as the API encodes them."""
    shas = {"1.0.0": publish(store, "auto_pricing", "1.0.0", Pricer("300.00", "v1")),
            "1.1.0": publish(store, "auto_pricing", "1.1.0", Pricer("310.00", "v2"))}
    return {
        "$schema": "../platform/modelplatform/schemas/models-config.schema.json",
        "auto_pricing": model_entry(
            shas, default="1.1.0",
            schemas={"1.X.X": schema("schema_quote_v1.json")},
            examples={
                "1.0.X": [{"input": {"vehicle": "suv", "driver_age": 40},
                           "output": {"premium": 405.00, "currency": "EUR", "tag": "v1"}}],
                "1.X.X": [{"input": {"vehicle": "hatchback", "driver_age": 19}, "description": "no output"}],
            },
            ab_test={"name": "pricing-rollout", "weights": {"1.0.0": 50, "1.1.0": 50}, "sticky_key": "/customer_id"},
        ),
    }


def test_clean_config_passes(cli, write_config, clean_config) -> None:
    run = cli("check-config", str(write_config(clean_config)))

    assert run.code == 0, run.out
    assert "OK" in run.out and "models and examples" in run.out


def test_clean_config_json_output(cli, write_config, clean_config, store_url) -> None:
    path = write_config(clean_config)
    run = cli("check-config", str(path), "--json")

    assert run.code == 0
    assert json.loads(run.out) == {"config": str(path), "store": store_url, "ok": True, "problems": [],
                                   "warnings": [], "store_error": None}


def test_config_path_defaults_to_models_config_env(cli, write_config, clean_config, monkeypatch) -> None:
    monkeypatch.setenv("MODELS_CONFIG", str(write_config(clean_config)))
    assert cli("check-config").code == 0


@pytest.fixture
def broken_config(store: S3ModelStore, store_url: str, clean_config, schema) -> dict[str, Any]:
    """One problem of every kind, in different models, so one run must list them all."""
    config = dict(clean_config)
    # config: default not active, weights not summing to 100, sticky key not a pointer
    config["semantics"] = model_entry({"1.0.0": publish(store, "semantics", "1.0.0", Echo())}, default="9.9.9",
                                      ab_test={"name": "t", "weights": {"1.0.0": 90}, "sticky_key": "customer_id"})
    # config: structure (the config's own JSON Schema)
    config["structure"] = {"active_model_versions": "1.0.0", "default": "1.0.0", "sha256": {}, "schemas": {}}
    # store: never published
    config["missing"] = model_entry({"1.0.0": "0" * 64})
    # store: the config pins a digest the stored bytes do not have
    publish(store, "tampered", "1.0.0", Echo())
    config["tampered"] = model_entry({"1.0.0": "ab" * 32})
    # model: bytes that are not a model, published with their true digest
    config["garbage"] = model_entry({"2.0": publish(store, "garbage", "2.0", b"\x80\x04garbage")})
    # examples: schema violation, raises, mismatched output, rejected, unencodable
    config["examples"] = model_entry(
        {"1.0.0": publish(store, "examples", "1.0.0", Pricer("300.00", "v1")),
         "1.1.0": publish(store, "examples", "1.1.0", Raises("boom")),
         "1.2.0": publish(store, "examples", "1.2.0", Returns(float("nan")))},
        schemas={"1.X.X": schema("schema_quote_v1.json")},
        examples={
            "1.0.0": [{"input": {"vehicle": 7, "driver_age": 12}},
                      {"input": {"vehicle": "suv", "driver_age": 40}, "output": {"premium": 1.0}},
                      {"input": {"vehicle": "tractor", "driver_age": 40}}],
            "1.1.0": [{"input": {"vehicle": "suv", "driver_age": 40}}],
            "1.2.0": [{"input": {"vehicle": "suv", "driver_age": 40}}],
        },
    )
    return config


def test_every_kind_of_problem_is_listed_in_one_run(cli, write_config, broken_config, store) -> None:
    path = write_config(broken_config)
    run = cli("check-config", str(path), "--json")

    assert run.code == 1
    doc = json.loads(run.out)
    assert doc["ok"] is False
    problems = doc["problems"]
    assert all(set(p) == {"check", "model", "version", "message"} for p in problems)

    def find(check: str, model: str, version: str | None, *fragments: str) -> dict[str, Any]:
        hits = [p for p in problems if (p["check"], p["model"], p["version"]) == (check, model, version)
                and all(f in p["message"] for f in fragments)]
        assert len(hits) == 1, (check, model, version, fragments, problems)
        return hits[0]

    find("config", "semantics", None, "default 9.9.9 is not one of active_model_versions")
    find("config", "semantics", None, "weights sum to 90")
    find("config", "semantics", None, "sticky_key 'customer_id' is not a JSON Pointer")
    find("config", "structure", None, "/structure/active_model_versions: '1.0.0' is not of type 'array'")
    find("config", "structure", None, "/structure/schemas: {} should be non-empty")
    find("store", "missing", "1.0.0", "no model file at", "modelplatform publish FILE --model missing --version 1.0.0")
    found = sha256_hex(store.fetch("tampered", "1.0.0"))
    find("store", "tampered", "1.0.0", "sha256 mismatch", f"config expects {'ab' * 32}", f"the store holds {found}")
    find("model", "garbage", "2.0", "cannot be loaded with dill", "new version")
    find("example", "examples", "1.0.0", "examples['1.0.0'][0] input does not match", "/vehicle", "/driver_age")
    find("example", "examples", "1.0.0", "examples['1.0.0'][1]: output differs", '"premium": 1.0',
         '"premium": 405.0')
    find("example", "examples", "1.0.0", "examples['1.0.0'][2]: predict rejected", "unknown_vehicle")
    find("example", "examples", "1.1.0", "examples['1.1.0'][0]: predict raised RuntimeError: boom")
    find("example", "examples", "1.2.0", "cannot be encoded as JSON", "non-finite")
    # the healthy model is not blamed for its neighbours
    assert not [p for p in problems if p["model"] == "auto_pricing"]
    assert len(problems) == 13


def test_human_output_names_model_version_and_check(cli, write_config, broken_config) -> None:
    run = cli("check-config", str(write_config(broken_config)))

    assert run.code == 1
    assert "13 problem(s)" in run.out
    assert "  - [store] missing 1.0.0: no model file at" in run.out
    assert "  - [example] examples 1.1.0: examples['1.1.0'][0]: predict raised RuntimeError: boom" in run.out


def test_no_store_checks_config_and_example_schemas_only(cli, write_config, broken_config, monkeypatch) -> None:
    monkeypatch.delenv("MODEL_STORE_URL")
    run = cli("check-config", str(write_config(broken_config)), "--no-store", "--json")

    assert run.code == 1
    doc = json.loads(run.out)
    assert doc["store"] is None
    assert {p["check"] for p in doc["problems"]} == {"config", "example"}
    assert [p["message"][:30] for p in doc["problems"] if p["check"] == "example"] == \
        ["examples['1.0.0'][0] input doe"]


def test_no_store_on_a_clean_config_passes_without_credentials(cli, write_config, clean_config,
                                                               monkeypatch) -> None:
    monkeypatch.delenv("MODEL_STORE_URL")
    run = cli("check-config", str(write_config(clean_config)), "--no-store")
    assert run.code == 0
    assert "--no-store" in run.out


def test_without_a_store_it_asks_for_one(cli, write_config, clean_config, monkeypatch) -> None:
    monkeypatch.delenv("MODEL_STORE_URL")
    run = cli("check-config", str(write_config(clean_config)))
    assert run.code == 2
    assert "MODEL_STORE_URL" in run.err and "--no-store" in run.err

    run = cli("check-config", str(write_config(clean_config)), "--store", "http://x/y")
    assert run.code == 2
    assert run.err == ("modelplatform check-config: MODEL_STORE_URL must look like s3://bucket/prefix, "
                       "got 'http://x/y'\n")


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read config file"),
    ("{not json", "not valid JSON"),
    ("[]", "is not of type 'object'"),
])
def test_unreadable_configs_are_problems_not_crashes(cli, tmp_path: Path, content, expected, store_url) -> None:
    path = tmp_path / "models.json"
    if content is not None:
        path.write_text(content)
    run = cli("check-config", str(path), "--json")
    assert run.code == 1
    (problem,) = json.loads(run.out)["problems"]
    assert problem["check"] == "config" and expected in problem["message"]


def test_a_hanging_model_is_killed_at_the_timeout(cli, write_config, store, store_url) -> None:
    from support.models import Sleeps

    config = {"sleepy": model_entry({"1.0": publish(store, "sleepy", "1.0", Sleeps(60))},
                                    examples={"1.0": [{"input": {}}]})}
    run = cli("check-config", str(write_config(config)), "--timeout", "5", "--json")

    assert run.code == 1
    (problem,) = json.loads(run.out)["problems"]
    assert problem["check"] == "model" and "within 5s" in problem["message"]


def test_a_default_that_is_not_active_hides_neither_a_digest_mismatch_nor_a_wrong_example(
        cli, write_config, store, store_url, schema) -> None:
    """Issue 12: one model with three mistakes gets three problems, not one."""
    good = publish(store, "pricing", "1.0.0", Pricer("300.00", "v1"))
    publish(store, "pricing", "1.1.0", Pricer("300.00", "v1"))
    entry = model_entry({"1.0.0": good, "1.1.0": "cd" * 32}, default="9.9.9",
                        schemas={"1.X.X": schema("schema_quote_v1.json")},
                        examples={"1.0.X": [{"input": {"vehicle": "suv", "driver_age": 40},
                                             "output": {"premium": 1.0}}]})
    run = cli("check-config", str(write_config({"pricing": entry})), "--json")

    assert run.code == 1
    found = {(p["check"], p["version"], p["message"].split(":")[0]) for p in json.loads(run.out)["problems"]}
    assert found == {
        ("config", None, "default 9.9.9 is not one of active_model_versions ['1.0.0', '1.1.0']; add it there or "
                         "pick an active version"),
        ("store", "1.1.0", "sha256 mismatch"),
        ("example", "1.0.0", "examples['1.0.X'][0]"),
    }, found


@pytest.mark.parametrize("weights, fragment", [
    ({"1.0.0": 50.5, "1.1.0": 49.5}, "is not of type 'integer'"),  # structure
    ({"1.0.0": 90}, "weights sum to 90"),                           # rules
])
def test_bad_weights_hide_nothing_else(cli, write_config, store, store_url, weights, fragment) -> None:
    entry = model_entry({"1.0.0": publish(store, "pricing", "1.0.0", Raises("boom")), "1.1.0": "0" * 64},
                        examples={"1.0.0": [{"input": {}}]},
                        ab_test={"name": "t", "weights": weights}, shadow=["7.0"])
    run = cli("check-config", str(write_config({"pricing": entry})), "--json")

    assert run.code == 1
    problems = json.loads(run.out)["problems"]
    messages = [p["message"] for p in problems]
    assert any(fragment in m for m in messages), messages
    assert any(p["check"] == "store" and p["version"] == "1.1.0" and "no model file" in p["message"]
               for p in problems), messages
    assert any(p["check"] == "example" and "predict raised RuntimeError: boom" in p["message"]
               for p in problems), messages
    assert any("shadow version is not active" in m for m in messages), messages


def test_a_stale_store_endpoint_is_could_not_run_with_advice_about_the_endpoint(
        cli, write_config, clean_config, monkeypatch) -> None:
    """Issue 12: a dead endpoint was exit 1 with 'publish it or remove the version' for every version."""
    from support.processes import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    clean_config["auto_pricing"]["default"] = "9.9.9"  # found without the store: still listed
    run = cli("check-config", str(write_config(clean_config)))

    assert run.code == 2
    assert "default 9.9.9 is not one of active_model_versions" in run.out
    assert "publish it" not in run.out + run.err
    assert run.err.startswith("modelplatform check-config: could not check the store, the models or their "
                              "examples: cannot reach the model store s3://")
    assert "check AWS_ENDPOINT_URL" in run.err and "credentials" in run.err


def test_a_bucket_that_does_not_exist_there_is_could_not_run(cli, write_config, clean_config, s3_endpoint) -> None:
    run = cli("check-config", str(write_config(clean_config)), "--store", "s3://no-such-bucket-here/models", "--json")

    assert run.code == 2
    doc = json.loads(run.out)
    assert doc["ok"] is False and doc["problems"] == []
    assert "bucket 'no-such-bucket-here' does not exist there" in doc["store_error"]
