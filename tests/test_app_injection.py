"""``create_app`` builds an app from parts given in code: settings without an environment, an audit log and a
registry that are already built; nothing is then fetched, loaded or connected."""
from __future__ import annotations

from pathlib import Path

import pytest

from modelplatform.app import create_app
from modelplatform.authoring import dumps_by_value
from modelplatform.config import parse_config
from modelplatform.errors import StartupError
from modelplatform.registry import Registry, load_registry
from modelplatform.settings import Settings
from support import model_entry
from support.memory import MemoryAuditLog, MemoryFiles
from support.models import Echo


def echo_registry() -> Registry:
    files = MemoryFiles()
    config = parse_config({"echo": model_entry({"1.0.0": files.put("echo", "1.0.0", dumps_by_value(Echo()))})})
    return load_registry(config, files)


def test_an_app_from_in_memory_parts_serves_and_records(tmp_path: Path) -> None:
    audit = MemoryAuditLog()
    settings = Settings(config_path=tmp_path / "absent.json", artifact_cache_dir=tmp_path / "cache",
                        audit_spool_dir=None)
    client = create_app(settings, audit=audit, registry=echo_registry()).test_client()

    response = client.post("/models/echo/predict", json={"x": 1})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["output"] == {"echo": {"x": 1}}
    (record,) = audit.records
    assert (record.model, record.version, record.status, record.id) == (
        "echo", "1.0.0", "ok", response.get_json()["inference_id"])
    assert not (tmp_path / "cache").exists()  # the registry was given: nothing was fetched or cached


def test_api_keys_can_be_given_in_code(tmp_path: Path) -> None:
    from modelplatform.auth import ApiKeys

    settings = Settings(api_keys=ApiKeys.parse([("test", "ci:0123456789abcdef")]))
    client = create_app(settings, audit=MemoryAuditLog(), registry=echo_registry()).test_client()
    assert client.get("/models").status_code == 401
    assert client.get("/models", headers={"Authorization": "Bearer 0123456789abcdef"}).status_code == 200


def test_without_a_database_url_an_audit_log_must_be_given() -> None:
    with pytest.raises(StartupError) as caught:
        create_app(Settings(), registry=echo_registry())
    assert "DATABASE_URL" in str(caught.value)


def test_api_key_problems_are_listed_with_the_other_settings() -> None:
    with pytest.raises(StartupError) as caught:
        Settings.from_env({"MODEL_STORE_URL": "s3://b", "API_KEYS": "short"})
    assert any("DATABASE_URL" in p for p in caught.value.problems)
    assert any("8-512" in p for p in caught.value.problems)


def test_an_app_reads_nothing_from_the_environment_that_its_settings_do_not_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the variables the server would read; an app given its settings must ignore them all
    monkeypatch.setenv("API_KEYS", "env:0123456789abcdef")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "no-such-metrics-dir"))
    client = create_app(Settings(), audit=MemoryAuditLog(), registry=echo_registry()).test_client()
    assert client.get("/models").status_code == 200  # open: API_KEYS in the environment is not a setting here
    metrics = client.get("/metrics")  # the app's own registry, not a directory named by the environment
    assert metrics.status_code == 200 and b'modelplatform_model_versions_loaded{model="echo"} 1.0' in metrics.data


def test_the_metrics_directory_is_read_with_the_other_settings(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db", "MODEL_STORE_URL": "s3://b"}
    assert Settings.from_env(env).metrics_dir is None
    assert Settings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).metrics_dir == tmp_path
