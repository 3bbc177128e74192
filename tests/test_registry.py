"""The registry: lookups by name and version, and loading versions from verified bytes (every problem listed at
once, unchanged versions reused on a reload). Bytes come from memory here; the S3 store and the host's artifact
cache that provide them in production are tested in test_store_trust.py, test_artifact_cache.py and
test_host_artifacts.py."""
from __future__ import annotations

import dill
import pytest

from modelplatform.artifacts import sha256_hex
from modelplatform.authoring import dumps_by_value
from modelplatform.config import parse_config
from modelplatform.errors import MAX_ECHO_CHARS, StartupError, UnknownModel, UnknownVersion
from modelplatform.registry import Registry, load_registry
from support import model_entry
from support.memory import MemoryFiles, MemoryPlatform
from support.models import Echo, NotAModel, Pricer


@pytest.fixture
def registry(memory: MemoryPlatform) -> Registry:
    memory.add("auto_pricing", {"1.0.0": Pricer(), "1.1.0": Pricer()}, default="1.1.0")
    memory.add("echo", {"3.1.4": Echo()})
    return memory.registry()


def test_a_model_is_found_by_name_and_a_version_by_its_number(registry: Registry) -> None:
    assert [m.name for m in registry] == ["auto_pricing", "echo"] and len(registry) == 2
    assert registry.count_versions() == 3
    assert registry.get("auto_pricing").version == "1.1.0"  # unpinned: the default
    assert registry.get("auto_pricing", "1.0.0").version == "1.0.0"
    assert registry.model("echo").default is registry.get("echo", "3.1.4")


def test_an_unknown_model_or_version_is_a_404_naming_what_exists(registry: Registry) -> None:
    with pytest.raises(UnknownModel) as model:
        registry.model("nope")
    assert (model.value.status, model.value.detail) == (404, "no model named 'nope'")
    with pytest.raises(UnknownVersion) as version:
        registry.get("auto_pricing", "9.9.9")
    assert version.value.status == 404
    assert version.value.detail == "model 'auto_pricing' has no active version '9.9.9'; active versions: 1.0.0, 1.1.0"


def test_a_name_taken_from_the_url_is_echoed_clipped(registry: Registry) -> None:
    with pytest.raises(UnknownModel) as model:
        registry.model("m" * 4000)
    assert model.value.extra["model"] == "m" * (MAX_ECHO_CHARS - 1) + "…"
    assert "m" * MAX_ECHO_CHARS not in model.value.detail
    with pytest.raises(UnknownVersion) as version:
        registry.get("echo", "9" * 4000)
    assert version.value.extra["version"] == "9" * (MAX_ECHO_CHARS - 1) + "…"


def test_every_version_that_cannot_be_served_is_listed_at_once() -> None:
    files = MemoryFiles()
    good = files.put("fine", "1.0.0", dumps_by_value(Echo()))
    garbage = files.put("garbage", "1.0.0", b"\x80\x04not a pickle")
    no_predict = files.put("nopredict", "2.0.0", dill.dumps(NotAModel()))  # by reference: importable here
    files.put("tampered", "1.0.0", b"other bytes")
    config = parse_config({
        "fine": model_entry({"1.0.0": good, "1.0.1": "b" * 64}), "garbage": model_entry({"1.0.0": garbage}),
        "nopredict": model_entry({"2.0.0": no_predict}), "tampered": model_entry({"1.0.0": "a" * 64}),
    })
    with pytest.raises(StartupError) as caught:
        load_registry(config, files)
    problems = sorted(caught.value.problems)
    assert len(problems) == 4, problems
    assert problems[0] == "fine 1.0.1: no model file"
    assert problems[1].startswith("garbage 1.0.0: cannot be loaded with dill")
    assert problems[2] == "nopredict 2.0.0: loaded a NotAModel, which has no predict(input) method"
    assert problems[3].startswith("tampered 1.0.0: sha256 mismatch")
    assert f"expects {'a' * 64}" in problems[3] and f"holds {sha256_hex(b'other bytes')}" in problems[3]


def test_a_reload_reuses_the_predictors_of_unchanged_versions_and_reads_only_new_ones() -> None:
    files = MemoryFiles(origin="store")
    entry = model_entry({"1.0.0": files.put("echo", "1.0.0", dumps_by_value(Echo()))})
    first = load_registry(parse_config({"echo": entry}), files, location="s3://models/registry")
    entry["active_model_versions"].append("1.1.0")
    entry["sha256"]["1.1.0"] = files.put("echo", "1.1.0", dumps_by_value(Pricer()))
    entry["schemas"] = {"1.0.0": {"type": "object", "required": ["a"]}, "1.1.0": {"type": "object"}}
    files.reads.clear()
    files.origin = "cache"  # this time the host had the new file already

    second = load_registry(parse_config({"echo": entry}), files, location="s3://models/registry", reuse=first)

    assert files.reads == [("echo", "1.1.0")]
    reused, added = second.get("echo", "1.0.0"), second.get("echo", "1.1.0")
    assert reused.predictor is first.get("echo", "1.0.0").predictor
    assert (reused.origin, added.origin) == ("store", "cache")  # each says where this host got its file
    assert (reused.source, added.source) == ("s3://models/registry/echo/1.0.0.dill", "s3://models/registry/echo/1.1.0.dill")
    # its schema changed: the reused version validates against the new one
    assert [v.path for v in reused.validator.violations({})] == [""]
    assert first.get("echo", "1.0.0").validator.violations({}) == []
