"""Finding a running demo: its state file, and the settings a command without any takes from it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelplatform import demostate


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
    env = {"AWS_PROFILE": "prod", "PATH": "/bin"}

    assert demostate.use_running_demo(env) == state
    assert env == {"PATH": "/bin", "DATABASE_URL": state.database_url, "MODEL_STORE_URL": state.model_store_url,
                   "MODELS_CONFIG": state.models_config, "AWS_ENDPOINT_URL": state.aws_endpoint_url,
                   **demostate.DUMMY_AWS}

    inside = write_state(tmp_path / ".demo", os.getpid(), models_config=str(tmp_path / "config" / "models.json"))
    env = {}
    demostate.use_running_demo(env)
    assert env["MODELS_CONFIG"] == "config/models.json" and inside.models_config.startswith("/")  # shorter to read

    mine = {"MODELS_CONFIG": "my.json"}
    demostate.use_running_demo(mine)
    assert mine["MODELS_CONFIG"] == "my.json"  # the user's own config wins

    for name in demostate.EXPLICIT_SETTINGS:  # any setting of the user's: no demo is mixed in
        explicit = {name: "set"}
        assert demostate.use_running_demo(explicit) is None and explicit == {name: "set"}
