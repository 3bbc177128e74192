"""Output to a closed pipe never changes the exit status of a command that did its work.

``modelplatform publish … | head -1`` in CI: once ``head`` has its line and exits, the rest of the output
goes to a pipe nobody reads. The upload happened, so the status must still be 0 (a failed job would be
retried, and the retry refused as "already exists"), with no traceback.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelplatform.authoring import dumps_by_value
from modelplatform.store import S3ModelStore
from support.models import Echo

MODELPLATFORM = str(Path(sys.executable).with_name("modelplatform"))


def _run_with_closed_stdout(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stdout a real pipe whose reader has already gone away: every write gets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=120, check=False)
    finally:
        os.close(write_end)
    return done.returncode, done.stderr.decode("utf-8", "replace")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "echo.dill"
    path.write_bytes(dumps_by_value(Echo()))
    return path


def test_publish_to_a_closed_pipe_exits_0_after_uploading(store: S3ModelStore, model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MODEL_STORE_URL": str(store.location)}
    status, err = _run_with_closed_stdout(
        [MODELPLATFORM, "publish", str(model), "--model", "echo", "--version", "1.0.0",
         "--config", str(tmp_path / "absent.json")], env)

    assert status == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    uploaded = store.client.get_object(Bucket=store.location.bucket, Key="registry/echo/1.0.0.dill")
    assert uploaded["Body"].read() == model.read_bytes()


def test_publish_piped_into_head_exits_0_and_head_gets_the_first_line(store: S3ModelStore, model: Path,
                                                                      tmp_path: Path) -> None:
    env = {**os.environ, "MODEL_STORE_URL": str(store.location)}
    # the real pipeline; whether a write meets the closed pipe depends on when head exits, so the
    # deterministic case is the closed-reader test above. PYTHONUNBUFFERED makes each line its own write
    script = (f'"{MODELPLATFORM}" publish "{model}" --model echo --version 2.0.0 --config "{tmp_path}/absent.json" '
              '| head -1; echo "status=${PIPESTATUS[0]}"')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          env={**env, "PYTHONUNBUFFERED": "1"})

    first, status = done.stdout.strip().splitlines()
    assert first.startswith(f"published {store.location}/echo/2.0.0.dill")
    assert status == "status=0", done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_a_failing_command_keeps_its_own_status_on_a_closed_pipe(store: S3ModelStore, model: Path,
                                                                 tmp_path: Path) -> None:
    env = {**os.environ, "MODEL_STORE_URL": str(store.location)}
    argv = [MODELPLATFORM, "publish", str(model), "--model", "echo", "--version", "3.0.0",
            "--config", str(tmp_path / "absent.json")]
    assert _run_with_closed_stdout(argv, env)[0] == 0
    status, err = _run_with_closed_stdout(argv, env)  # the version exists now: refused
    assert status == 1
    assert "already exists" in err and "Traceback" not in err


@pytest.mark.slow
def test_check_config_json_to_a_closed_pipe_keeps_its_status(tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text("{}")
    status, err = _run_with_closed_stdout([MODELPLATFORM, "check-config", str(config), "--no-store", "--json"],
                                          dict(os.environ))
    assert status == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
