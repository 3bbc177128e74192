"""``modelplatform demo`` as a user runs it: a subprocess whose printed calls are pasted and checked.

The demo starts real parts (pgserver, moto, gunicorn), so these tests are ``slow``; every wait is
bounded.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplatform.artifacts import sha256_hex
from modelplatform.settings import StoreLocation
from modelplatform.store import S3ModelStore
from support.demo_process import DemoProcess, gone

ROOT = Path(__file__).resolve().parents[2]
CALL_TIMEOUT_S = 20
STOP_TIMEOUT_S = 60
CONFIG = json.loads((ROOT / "config" / "models.json").read_text())
CALL_RE = re.compile(r"^# (\d{3}) · (.+)\n(curl .+)$", re.MULTILINE)


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A data dir outside pytest's ``tmp_path``: as root, pgserver runs Postgres as a ``pgserver`` user
    and opens the dir's parents to it, and every pytest session starting meanwhile on this machine
    resets ``/tmp/pytest-of-root`` to 0700, which made Postgres fail to start ("Permission denied")."""
    path = Path(tempfile.mkdtemp(prefix="modelplatform-demo-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def Demo(port: int, data_dir: Path) -> DemoProcess:  # noqa: N802 - reads like the class it was
    return DemoProcess([sys.executable, "-m", "modelplatform.cli", "demo", "--port", str(port),
                        "--data-dir", str(data_dir)], ROOT, data_dir)


def run_call(command: str) -> tuple[int, dict]:
    """Run a printed curl command as pasted; return the HTTP status and the JSON body."""
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=CALL_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split()[1])
    return status, json.loads(body)


def demo_store(state: dict) -> S3ModelStore:
    """The running demo's store, reached with the settings its state file gives every command."""
    import boto3

    client = boto3.client("s3", endpoint_url=state["aws_endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="demo", aws_secret_access_key="demo")
    return S3ModelStore(StoreLocation.parse(state["model_store_url"]), client=client)


def rows_command(output: str) -> str:
    lines = output.splitlines()
    return lines[lines.index("# the latest rows of the inferences audit table (no psql needed)") + 1]


@pytest.mark.slow
def test_demo_serves_its_printed_calls_and_stops_everything_on_ctrl_c_and_sigterm(demo_dir: Path) -> None:
    port, data_dir = free_port(), demo_dir
    demo = Demo(port, data_dir)
    try:
        output = demo.wait_ready()
        calls = CALL_RE.findall(output)
        assert len(calls) == 6, output
        kinds = set()
        for expected, description, command in calls:
            status, doc = run_call(command)
            assert status == int(expected), (description, command, doc)
            if status == 422:
                kinds.add(doc["type"].rsplit(":", 1)[-1])
                if doc["type"].endswith("invalid-input"):
                    assert {e["path"] for e in doc["errors"]} == {"", "/driver_age"}
                else:
                    assert doc["code"] == "unknown_vehicle"
            elif "predict" in command:
                assert doc["output"]["currency"] == "EUR" and doc["version"] in {"2.0.3", "2.1.0", "2.1.1"}
            elif command.endswith("/models"):
                assert [m["name"] for m in doc["models"]] == ["auto_pricing"]
            else:
                assert doc["sha256"] == CONFIG["auto_pricing"]["sha256"][doc["version"]]
        assert kinds == {"invalid-input", "rejected"}

        rows = subprocess.run(shlex.split(rows_command(output)), cwd=ROOT, capture_output=True, text=True,
                              timeout=CALL_TIMEOUT_S)
        assert rows.returncode == 0, rows.stderr
        assert "4 latest inference(s)" in rows.stdout  # the four predicts, whatever their outcome
        for status in ("ok", "invalid_input", "rejected"):
            assert f" {status} " in rows.stdout

        # issue 12: the request lines go to the server log, never over the printed calls; no library noise
        assert '"modelplatform.request"' in (data_dir / "server.log").read_text()
        assert "modelplatform.request" not in demo.output and '"logger"' not in demo.output
        assert "setup plugin" not in demo.output and "XDG_RUNTIME_DIR" not in demo.output

        reload = subprocess.run([sys.executable, "-m", "modelplatform.cli", "demo", "reload", "--data-dir",
                                 str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert reload.returncode == 0, reload.stdout + reload.stderr
        assert "reload accepted: http://127.0.0.1:" in reload.stdout
        assert "[server] INFO reload accepted" in demo.output  # the demo's terminal says so too

        # a version published into the demo, as `modelplatform publish` does, survives the restart below
        state = json.loads((data_dir / "demo.json").read_text())
        published_store = demo_store(state)
        published_store.publish("auto_pricing", "9.9.9", b"kept across restarts", sha256_hex(b"kept across restarts"))

        started = demo.processes()
        assert len(started) >= 3  # gunicorn master, its workers, the postmaster
        assert demo.stop("ctrl-c") == 0, demo.output
    finally:
        demo.kill()
    assert "demo stopped" in demo.output
    assert not port_open(port)
    assert gone(started) == []
    assert not (data_dir / "demo.json").exists()

    # a second run reuses the data dir: the rows of the first run are still there
    again = Demo(port, data_dir)
    try:
        output = again.wait_ready()
        (_, _, default_predict), = [c for c in CALL_RE.findall(output) if "/predict" in c[2] and "unpinned" in c[1]]
        assert run_call(default_predict)[0] == 200
        rows = subprocess.run(shlex.split(rows_command(output)), cwd=ROOT, capture_output=True, text=True,
                              timeout=CALL_TIMEOUT_S)
        assert "5 latest inference(s)" in rows.stdout, rows.stdout + rows.stderr
        restarted = json.loads((data_dir / "demo.json").read_text())
        assert restarted["aws_endpoint_url"] == state["aws_endpoint_url"]  # the S3 port is kept when free
        assert demo_store(restarted).fetch("auto_pricing", "9.9.9") == b"kept across restarts"
        started = again.processes()
        assert again.stop("sigterm") == 0, again.output
    finally:
        again.kill()
    assert not port_open(port)
    assert gone(started) == []


@pytest.mark.slow
def test_demo_whose_web_server_dies_stops_the_rest_and_says_so(demo_dir: Path) -> None:
    demo = Demo(free_port(), demo_dir)
    try:
        demo.wait_ready()
        started = demo.processes()
        gunicorn = next(p for p in started if p.ppid() == demo.process.pid)
        gunicorn.kill()
        code = demo.process.wait(STOP_TIMEOUT_S)
    finally:
        demo.kill()
    assert code == 2
    assert "modelplatform demo: the web server exited unexpectedly with code -9" in demo.output
    assert gone(started) == []  # its workers, and Postgres, stopped with it


@pytest.mark.slow
def test_demo_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "modelplatform.cli", "demo", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr
    assert not (tmp_path / "d").exists()  # no Postgres was initialised


@pytest.mark.parametrize("action", ["rows", "reload"])
def test_demo_rows_and_reload_without_a_running_demo_say_how_to_start_one(tmp_path: Path, capsys, action) -> None:
    from modelplatform.cli import main

    assert main(["demo", action, "--data-dir", str(tmp_path)]) == 2
    assert f"modelplatform demo {action}: no running demo uses {tmp_path} (start it with `make demo`" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_make_demo_installs_only_the_demo_extra_and_takes_a_port(tmp_path: Path) -> None:
    """Issue 12: `make demo` installed the 709 MB test extra, and could not take a port."""
    done = subprocess.run(["make", "-n", "demo", f"VENV={tmp_path / 'venv'}", "PORT=8123",
                           "DEMO_ARGS=--data-dir /tmp/x"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install --quiet -e '.[demo]'" in done.stdout
    assert "[test]" not in done.stdout
    assert f"{tmp_path / 'venv'}/bin/modelplatform demo --port 8123 --data-dir /tmp/x" in done.stdout


@pytest.mark.parametrize("argv", [["demo", "--port", "70000"], ["demo", "--port", "http"],
                                  ["demo", "rows", "--limit", "0"], ["demo", "restart"]])
def test_demo_arguments_are_validated_by_the_parser(argv: list[str], capsys) -> None:
    from modelplatform.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "modelplatform demo: error: argument" in capsys.readouterr().err


def test_a_second_demo_on_the_same_data_dir_is_refused_before_starting_anything(tmp_path: Path, capsys) -> None:
    from modelplatform.cli import main
    from modelplatform.demostate import DemoState

    data_dir = tmp_path / "d"
    data_dir.mkdir()
    DemoState(data_dir=str(data_dir), pid=os.getpid(), server_pid=os.getpid(), server_log="", base_url="http://x",
              database_url="", aws_endpoint_url="", model_store_url="", models_config="").write()
    assert main(["demo", "--port", str(free_port()), "--data-dir", str(data_dir)]) == 2
    assert f"a demo is already running with {data_dir} (pid {os.getpid()}" in capsys.readouterr().err
    assert not (data_dir / "pgdata").exists()
