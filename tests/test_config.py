"""config/models.json: structure and semantics, every problem reported in one go."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from modelplatform import versions
from modelplatform.config import ConfigError, config_json_schema, inspect_config, load_config, parse_config

SHA = "ab" * 32

VALID: dict[str, Any] = {
    "$schema": "../platform/modelplatform/schemas/models-config.schema.json",
    "auto_pricing": {
        "description": "Auto insurance pricing",
        "active_model_versions": ["2.0.3", "2.1.0", "2.1.1"],
        "default": "2.1.1",
        "sha256": {"2.0.3": SHA, "2.1.0": SHA, "2.1.1": SHA},
        "schemas": {"2.0.X": {"type": "object"}, "2.1.X": {"type": "object", "required": ["km"]},
                    "2.1.1": {"type": "object", "required": ["km", "id"]}},
        "examples": {"2.1.X": [{"input": {"km": 1}, "output": 3}], "2.0.3": [{"input": {}}]},
        "ab_test": {"name": "pricing-2.1.1-rollout", "weights": {"2.1.0": 50, "2.1.1": 50},
                    "sticky_key": "/customer_id"},
        "shadow": ["2.0.3"],
    },
}


def problems_of(document: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    return [str(p) for p in caught.value.config_problems]


def test_valid_config_parses_into_typed_objects() -> None:
    config = parse_config(copy.deepcopy(VALID))
    spec = config.models["auto_pricing"]
    assert spec.active_versions == ("2.0.3", "2.1.0", "2.1.1")
    assert spec.ab_test is not None and spec.ab_test.weights == {"2.1.0": 50, "2.1.1": 50}
    assert spec.ab_test.sticky_key == "/customer_id"
    assert spec.shadow == ("2.0.3",)
    # the most specific key wins: an exact version beats 2.1.X
    assert spec.schema_key("2.1.1") == "2.1.1"
    assert spec.schema_key("2.1.0") == "2.1.X"
    assert spec.schema_key("2.0.3") == "2.0.X"
    assert [e.output for e in spec.examples_for("2.1.0")] == [3]
    assert spec.examples_for("2.0.3")[0].has_output is False
    with pytest.raises(TypeError):
        spec.sha256["2.0.3"] = "x"  # parsed config is read-only


def test_every_semantic_problem_is_listed_at_once() -> None:
    doc = copy.deepcopy(VALID)
    model = doc["auto_pricing"]
    model["default"] = "9.9.9"
    del model["sha256"]["2.1.0"]
    model["schemas"] = {"2.0.X": {"type": "object"}, "2.X.1": {"type": "object"},
                        "2.1.X": {"type": "nonsense"}}
    model["examples"] = {"3.X.X": [{"input": {}}]}
    model["ab_test"] = {"name": "t", "weights": {"2.1.0": 50, "7.0.0": 30}, "sticky_key": "customer_id"}
    model["shadow"] = ["5.0.0"]
    found = problems_of(doc)
    expected_fragments = [
        "default 9.9.9 is not one of active_model_versions",
        "auto_pricing 2.1.0: no sha256 for this active version",
        "schemas['2.1.X'] is not a valid JSON Schema 2020-12",
        "auto_pricing 2.1.1: schema keys ['2.1.X', '2.X.1'] are equally specific",
        "auto_pricing 7.0.0: ab_test 't' weights a version that is not active",
        "weights sum to 80, they must sum to 100",
        "sticky_key 'customer_id' is not a JSON Pointer",
        "auto_pricing 5.0.0: shadow version is not active",
    ]
    for fragment in expected_fragments:
        assert any(fragment in p for p in found), (fragment, found)
    assert len(found) == len(expected_fragments)


def test_uncovered_version_names_a_fix() -> None:
    doc = copy.deepcopy(VALID)
    doc["auto_pricing"]["schemas"] = {"2.1.X": {"type": "object"}}
    (problem,) = problems_of(doc)
    assert problem == ("auto_pricing 2.0.3: no schema covers this version; add a schemas key such as "
                       "'2.0.3' or '2.0.X'")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["auto_pricing"].pop("default"), "'default' is a required property"),
    (lambda d: d["auto_pricing"].update(active_model_versions=[]), "should be non-empty"),
    (lambda d: d["auto_pricing"]["sha256"].update({"2.0.3": "XYZ"}), "does not match"),
    (lambda d: d["auto_pricing"].update(active_model_versions=["v2"]), "does not match"),
    (lambda d: d["auto_pricing"]["ab_test"]["weights"].update({"2.1.0": 50.5}), "is not of type 'integer'"),
    (lambda d: d["auto_pricing"].update(typo_key=1), "Additional properties are not allowed"),
    (lambda d: d.update(Auto={}), "'Auto' is not a valid model name"),
    (lambda d: d["auto_pricing"]["schemas"].update({"2.1.x": {}}), "does not match"),
])
def test_structural_problems(mutate, fragment: str) -> None:
    doc = copy.deepcopy(VALID)
    mutate(doc)
    found = problems_of(doc)
    assert any(fragment in p for p in found), found


def test_structural_and_semantic_problems_of_different_models_come_together() -> None:
    doc = copy.deepcopy(VALID)
    doc["other"] = {"active_model_versions": "1.0.0"}
    doc["auto_pricing"]["default"] = "1.0.0"
    found = problems_of(doc)
    assert any(p.startswith("other: /other/active_model_versions") for p in found)
    assert any(p.startswith("other: /other: 'default' is a required property") for p in found)
    assert any("default 1.0.0 is not one of" in p for p in found)


def test_document_that_is_not_an_object() -> None:
    assert problems_of([1, 2]) == ["/: [1, 2] is not of type 'object'"]


def test_load_config_reads_files_and_pins_a_revision(tmp_path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(VALID))
    first = load_config(path)
    assert len(first.revision) == 12
    path.write_text(json.dumps(VALID, indent=2))
    assert load_config(path).revision != first.revision


def test_the_shipped_schema_is_itself_valid_2020_12() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(config_json_schema())


@pytest.mark.parametrize("pattern, version, expected", [
    ("2.1.X", "2.1.7", True), ("2.X.X", "2.1.7", True), ("2.1.X", "2.2.0", False),
    ("2.1", "2.1.0", False), ("X", "3", True), ("2.1.0", "2.1.0", True),
])
def test_pattern_matching(pattern: str, version: str, expected: bool) -> None:
    assert versions.matches(pattern, version) is expected


def test_most_specific_resolution() -> None:
    keys = ["2.X.X", "2.1.X", "X.X.X"]
    assert versions.resolve("2.1.3", keys) == ["2.1.X"]
    assert versions.resolve("2.4.0", keys) == ["2.X.X"]
    assert versions.resolve("3.0.0", keys) == ["X.X.X"]
    assert versions.resolve("3.0", keys) == []


def test_repeated_keys_are_problems_named_by_model_listed_with_the_others(tmp_path) -> None:
    text = json.dumps(VALID)
    sha_block = f'"sha256": {{"2.0.3": "{SHA}", "2.1.0": "{SHA}", "2.1.1": "{SHA}"}}'
    # a second sha256 block pasted into the model, and a default that is not active
    text = text.replace(sha_block, sha_block + ", " + sha_block.replace(SHA, "cd" * 32, 1), 1)
    text = text.replace('"default": "2.1.1"', '"default": "9.9.9"', 1)
    path = tmp_path / "models.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [str(p) for p in caught.value.config_problems]
    assert problems[0] == ("auto_pricing: key 'sha256' appears more than once in the same object; "
                           "only the last would count, so keep one")
    assert any("default 9.9.9 is not one of active_model_versions" in p for p in problems[1:])


def test_a_model_defined_twice_is_a_problem(tmp_path) -> None:
    body = json.dumps(VALID["auto_pricing"])
    path = tmp_path / "models.json"
    path.write_text(f'{{"auto_pricing": {body}, "auto_pricing": {body}}}')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.config_problems] == [
        "auto_pricing: key 'auto_pricing' appears more than once in the same object; only the last would "
        "count, so keep one"]


def test_whole_number_weights_written_as_floats_are_stored_as_int() -> None:
    doc = copy.deepcopy(VALID)
    doc["auto_pricing"]["ab_test"]["weights"] = {"2.1.0": 50.0, "2.1.1": 50.0}
    weights = parse_config(doc).models["auto_pricing"].ab_test.weights
    assert weights == {"2.1.0": 50, "2.1.1": 50}
    assert all(type(w) is int for w in weights.values())
    doc["auto_pricing"]["ab_test"]["weights"] = {"2.1.0": 49.5, "2.1.1": 50.5}
    assert any("is not of type 'integer'" in p for p in problems_of(doc))


def test_keys_covering_no_active_version_are_warnings_not_problems(tmp_path) -> None:
    """A version being prepared has its schema and examples before it is active (issue 12)."""
    doc = copy.deepcopy(VALID)
    doc["auto_pricing"]["schemas"]["2.2.X"] = {"type": "object"}
    doc["auto_pricing"]["examples"]["2.2.X"] = [{"input": {}}]
    path = tmp_path / "models.json"
    path.write_text(json.dumps(doc))

    assert load_config(path).models["auto_pricing"].examples_for("2.2.0")[0].input == {}
    inspection = inspect_config(path)
    assert inspection.problems == ()
    assert [str(w) for w in inspection.warnings] == [
        f"auto_pricing: {field} key '2.2.X' covers no active version: fine while that version is being "
        "prepared; otherwise a typo or a leftover, remove it" for field in ("schemas", "examples")]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda m: m.pop("default"), "'default' is a required property"),
    (lambda m: m["ab_test"]["weights"].update({"2.1.0": 50.5}), "is not of type 'integer'"),
    (lambda m: m.update(shadow="2.0.3"), "is not of type 'array'"),
    (lambda m: m.update(typo_key=1), "Additional properties are not allowed"),
    (lambda m: m["examples"]["2.1.X"].append({"inptu": {}}), "'input' is a required property"),
])
def test_a_structural_slip_outside_versions_digests_and_schemas_still_yields_a_checkable_model(
        tmp_path, mutate, fragment) -> None:
    """check-config then still checks the model's versions and its other rules (issue 12)."""
    doc = copy.deepcopy(VALID)
    mutate(doc["auto_pricing"])
    doc["auto_pricing"]["sha256"].pop("2.0.3")  # a rule broken beside the structural slip
    path = tmp_path / "models.json"
    path.write_text(json.dumps(doc))

    inspection = inspect_config(path)
    messages = [str(p) for p in inspection.problems]
    assert any(fragment in m for m in messages), messages
    assert "auto_pricing 2.0.3: no sha256 for this active version; add the digest printed by " \
           "`modelplatform publish`" in messages
    assert inspection.specs["auto_pricing"].active_versions == ("2.0.3", "2.1.0", "2.1.1")


def test_broken_versions_digests_or_schemas_leave_nothing_to_check(tmp_path) -> None:
    doc = copy.deepcopy(VALID)
    doc["auto_pricing"]["sha256"]["2.0.3"] = "XYZ"
    path = tmp_path / "models.json"
    path.write_text(json.dumps(doc))
    inspection = inspect_config(path)
    assert inspection.specs == {} and len(inspection.problems) == 1
