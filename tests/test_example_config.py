"""The committed config/models.json and example artifacts: they load, match, and keep their promises.

These are the bytes the demo publishes and a deploy would serve, so they are checked as committed,
not rebuilt (dill output is not byte-reproducible).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplatform import ModelRejected
from modelplatform.artifacts import load_predictor, sha256_hex, verify
from modelplatform.config import ModelSpec, load_config
from modelplatform.encoding import encode_output
from modelplatform.validation import CompiledSchema

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "models.json"


def artifact(model: str, version: str) -> Path:
    return ROOT / "examples" / "models" / model / f"{version}.dill"


@pytest.fixture(scope="module")
def pricing() -> ModelSpec:
    return load_config(CONFIG).models["auto_pricing"]


def active_versions() -> list[tuple[str, str]]:
    return [(spec.name, v) for spec in load_config(CONFIG) for v in spec.active_versions]


def test_config_points_at_the_shipped_json_schema() -> None:
    ref = json.loads(CONFIG.read_text())["$schema"]
    shipped = ROOT / "platform" / "modelplatform" / "schemas" / "models-config.schema.json"
    assert (CONFIG.parent / ref).resolve() == shipped


def test_auto_pricing_rollout_is_configured_as_specified(pricing: ModelSpec) -> None:
    assert pricing.active_versions == ("2.0.3", "2.1.0", "2.1.1")
    assert pricing.default == "2.1.1"
    assert pricing.ab_test is not None
    assert (pricing.ab_test.name, dict(pricing.ab_test.weights), pricing.ab_test.sticky_key) == (
        "pricing-2.1.1-rollout", {"2.1.0": 50, "2.1.1": 50}, "/customer_id")
    assert {v: pricing.schema_key(v) for v in pricing.active_versions} == {
        "2.0.3": "2.0.X", "2.1.0": "2.1.X", "2.1.1": "2.1.X"}


@pytest.mark.parametrize(("model", "version"), active_versions())
def test_committed_artifact_matches_its_sha256_and_loads(model: str, version: str) -> None:
    spec = load_config(CONFIG).models[model]
    data = artifact(model, version).read_bytes()

    verify(model, version, data, spec.sha256[version])  # raises on a mismatch
    assert sha256_hex(data) == spec.sha256[version]
    # loaded in a process that never imported examples/build_models.py: the classes came by value
    predictor = load_predictor(model, version, data)
    assert type(predictor).__module__ == "__main__"


@pytest.mark.parametrize(("model", "version"), active_versions())
def test_examples_pass_the_schema_and_give_the_recorded_output(model: str, version: str) -> None:
    spec = load_config(CONFIG).models[model]
    predictor = load_predictor(model, version, artifact(model, version).read_bytes())
    schema = CompiledSchema(spec.schema_for(version))
    examples = spec.examples_for(version)

    assert examples, f"{model} {version} has no examples"
    for example in examples:
        assert schema.violations(example.input) == []
        assert example.has_output
        assert json.loads(encode_output(predictor.predict(example.input))) == example.output


def test_the_two_schema_families_differ(pricing: ModelSpec) -> None:
    old_input = pricing.examples_for("2.0.3")[0].input
    new_schema = CompiledSchema(pricing.schema_for("2.1.1"))

    missing = {v.path + ": " + v.message for v in new_schema.violations(old_input)}
    assert any("annual_km" in m for m in missing) and any("customer_id" in m for m in missing)
    assert CompiledSchema(pricing.schema_for("2.0.3")).violations(old_input) == []


@pytest.mark.parametrize("version", ["2.0.3", "2.1.0", "2.1.1"])
def test_every_version_rejects_an_unknown_vehicle(pricing: ModelSpec, version: str) -> None:
    predictor = load_predictor("auto_pricing", version, artifact("auto_pricing", version).read_bytes())
    quote = {**pricing.examples_for(version)[0].input, "vehicle": "tractor"}

    with pytest.raises(ModelRejected) as rejected:
        predictor.predict(quote)
    assert rejected.value.code == "unknown_vehicle"
    assert "tractor" in rejected.value.message


def test_2_1_1_softens_the_young_driver_load_against_2_1_0() -> None:
    young = {"customer_id": "c-9", "vehicle": "hatchback", "driver_age": 21, "annual_km": 12000}
    premiums = {v: load_predictor("auto_pricing", v, artifact("auto_pricing", v).read_bytes()).predict(young).premium
                for v in ("2.1.0", "2.1.1")}
    # 315.00 × 1.00 vehicle × 1.00 mileage × young-driver load (1.50, then 1.40): exact Decimal cents
    assert {v: str(p) for v, p in premiums.items()} == {"2.1.0": "472.50", "2.1.1": "441.00"}


@pytest.mark.slow
def test_build_models_never_removes_what_a_user_added_to_the_config(tmp_path: Path) -> None:
    """Issue 12: the demo's old hint ran build_models.py, which rewrote the entry and dropped a version the
    user had published and activated, and its shadow."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "config").mkdir()
    config = json.loads(CONFIG.read_text())
    entry = config["auto_pricing"]
    true_digest = entry["sha256"]["2.0.3"]
    entry["active_model_versions"].append("2.2.0")
    entry["sha256"].update({"2.2.0": "ab" * 32, "2.0.3": "cd" * 32})  # 2.0.3's digest is stale
    entry["shadow"] = ["2.2.0"]
    entry["examples"]["2.2.X"] = [{"input": {"vehicle": "van"}}]
    (tmp_path / "config" / "models.json").write_text(json.dumps(config, indent=2))

    def build(*args: str) -> str:
        done = subprocess.run([sys.executable, str(tmp_path / "examples" / "build_models.py"), *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = build()
    kept = json.loads((tmp_path / "config" / "models.json").read_text())["auto_pricing"]
    assert kept["sha256"]["2.0.3"] == true_digest  # the example versions' digests are refreshed
    assert {k: v for k, v in kept.items() if k != "sha256"} == {k: v for k, v in entry.items() if k != "sha256"}
    assert kept["sha256"]["2.2.0"] == "ab" * 32
    assert "kept the 'auto_pricing' entry of config/models.json as it is, except the sha256 of 2.0.3" in out

    build("--reset-config")  # asked for by name: the entry is written whole again
    reset = json.loads((tmp_path / "config" / "models.json").read_text())["auto_pricing"]
    assert reset == json.loads(CONFIG.read_text())["auto_pricing"]
