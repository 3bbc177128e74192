"""Finding a running demo: its state file, and the settings a command without any takes from it."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelplatform import demostate
from modelplatform.cli.resolve import EXPLICIT_SETTINGS, resolve


def write_state(data_dir: Path, pid: int, **overrides: str) -> demostate.DemoState:
    data_dir.mkdir(parents=True, exist_ok=True)
    fields = dict(data_dir=str(data_dir), pid=pid, server_pid=pid, server_log=str(data_dir / "server.log"),
                  base_url="http://127.0.0.1:1", database_url="postgresql://demo@/postgres?host=/x",
                  aws_endpoint_url="http://127.0.0.1:2", model_store_url="s3://modelplatform-demo/models",
                  models_config="/checkout/config/models.json")
    state = demostate.DemoState(**{**fields, **overrides})
    state.write()
    return state


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_a_state_file_names_a_running_demo_only_while_its_process_lives(tmp_path: Path) -> None:
    written = write_state(tmp_path / ".demo", os.getpid())
    assert demostate.read(tmp_path / ".demo") == written
    write_state(tmp_path / "stale", dead_pid())
    assert demostate.read(tmp_path / "stale") is None  # a demo killed before it could remove its file
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / demostate.STATE_FILE).write_text("{not json")
    assert demostate.read(tmp_path / "broken") is None
    assert demostate.read(tmp_path / "absent") is None


def test_without_settings_a_command_takes_the_running_demos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = write_state(tmp_path / ".demo", os.getpid())
    monkeypatch.chdir(tmp_path)
    publish = argparse.Namespace(command="publish", store=None, config=None)
    env = {"AWS_PROFILE": "prod", "PATH": "/bin"}

    settings = resolve(publish, env)
    assert settings.demo == state
    assert (settings.database_url, settings.store_url, settings.config_path) == (
        state.database_url, state.model_store_url, Path(state.models_config))
    assert env == {"AWS_PROFILE": "prod", "PATH": "/bin"}  # nothing written back to the environment
    client = settings.s3_client()  # the demo's endpoint and dummy keys, never the profile's
    assert client.meta.endpoint_url == state.aws_endpoint_url
    assert client._request_signer._credentials.access_key == demostate.DUMMY_AWS["AWS_ACCESS_KEY_ID"]

    inside = write_state(tmp_path / ".demo", os.getpid(), models_config=str(tmp_path / "config" / "models.json"))
    settings = resolve(publish, {})
    assert settings.config_path == Path("config/models.json") and inside.models_config.startswith("/")  # shorter

    assert resolve(publish, {"MODELS_CONFIG": "my.json"}).config_path == Path("my.json")  # the user's own config wins
    flagged = argparse.Namespace(command="publish", store=None, config="flag.json")
    assert resolve(flagged, {"MODELS_CONFIG": "my.json"}).config_path == Path("flag.json")  # and a flag wins over it

    for name in EXPLICIT_SETTINGS:  # any setting of the user's: no demo is mixed in
        explicit = {name: "set"}
        assert resolve(publish, explicit).demo is None and explicit == {name: "set"}
    with_store = argparse.Namespace(command="publish", store="s3://mine/models", config=None)
    assert resolve(with_store, {}).demo is None
