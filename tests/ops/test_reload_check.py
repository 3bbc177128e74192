"""The master's side of a reload, without gunicorn: check a config in a child process, keep the last good one."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplatform import forkenv, reload
from support import Platform, publish
from support.models import Pricer


@pytest.fixture
def master_env(platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Platform]:
    """The environment a gunicorn master has: store, database, config source; a private snapshot dir."""
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")})
    for name, value in platform.env().items():
        monkeypatch.setenv(name, value)
    # set through monkeypatch so that on_starting's own writes are undone after the test
    monkeypatch.setenv(forkenv.CONFIG_SOURCE, platform.env()["MODELS_CONFIG"])
    monkeypatch.setenv(forkenv.SNAPSHOTS, str(tmp_path / "snapshots"))
    monkeypatch.setenv(forkenv.METRICS_DIR, str(tmp_path / "metrics"))
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "metrics").mkdir()
    yield platform
    reload.on_exit()  # what gunicorn calls when the master stops: forget this "master's" preloaded models


def test_a_good_config_has_no_problems(master_env: Platform) -> None:
    assert reload.check(master_env.write_config()) == []


def test_check_lists_every_problem(master_env: Platform, tmp_path: Path) -> None:
    config = master_env.config
    config["auto_pricing"]["sha256"]["1.0.0"] = "f" * 64
    publish(master_env.store, "other", "1.0.0", Pricer())
    config["other"] = {"active_model_versions": ["1.0.0", "2.0.0"], "default": "1.0.0",
                       "sha256": {"1.0.0": "a" * 64, "2.0.0": "b" * 64}, "schemas": {"1.X.X": {"type": "object"},
                                                                                   "2.X.X": {"type": "object"}}}
    problems = reload.check(master_env.write_config(config))
    text = "\n".join(problems)
    assert "auto_pricing" in text and "f" * 64 in text  # tampered: expected digest named
    assert "other" in text and "2.0.0" in text           # missing artifact
    assert len(problems) >= 3


@pytest.mark.parametrize("content", [b"{not json", b'{"m": {"default": "1.0.0"}}'])
def test_check_refuses_unparseable_or_invalid_configs(master_env: Platform, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    assert reload.check(path)


def test_reload_switches_only_to_a_checked_config(master_env: Platform, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelplatform.reload")
    source = master_env.write_config()
    reload.on_starting()
    first = Path(os.environ["MODELS_CONFIG"])
    assert os.environ[forkenv.CONFIG_SOURCE] == str(source)
    assert first != source and first.read_bytes() == source.read_bytes()

    # operator writes a broken config: refused, workers keep the snapshot
    broken = json.loads(source.read_text())
    broken["auto_pricing"]["default"] = "9.9.9"
    source.write_text(json.dumps(broken))
    assert reload.on_reload() is False
    assert os.environ["MODELS_CONFIG"] == str(first) and first.exists()
    refused = [r for r in caplog.records if r.getMessage().startswith("reload refused")]
    assert refused and any("9.9.9" in p for p in refused[0].problems)

    # then a good one: accepted, new workers get a snapshot of exactly what was checked
    sha = publish(master_env.store, "auto_pricing", "1.1.0", Pricer("310.00", "v2"))
    good = json.loads(json.dumps(master_env.config))
    good["auto_pricing"].update(active_model_versions=["1.0.0", "1.1.0"], default="1.1.0")
    good["auto_pricing"]["sha256"]["1.1.0"] = sha
    good["auto_pricing"]["schemas"]["1.1.0"] = {"type": "object"}
    source.write_text(json.dumps(good))
    assert reload.on_reload() is True
    second = Path(os.environ["MODELS_CONFIG"])
    assert second != first and json.loads(second.read_text()) == good


def test_unreadable_source_is_refused(master_env: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master_env.write_config()
    reload.on_starting()
    before = os.environ["MODELS_CONFIG"]
    monkeypatch.setenv(forkenv.CONFIG_SOURCE, str(tmp_path / "gone.json"))
    assert reload.on_reload() is False
    assert os.environ["MODELS_CONFIG"] == before
