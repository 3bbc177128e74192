"""``modelplatform demo`` as a user runs it: a subprocess whose printed calls are pasted and checked.

The demo starts real parts (pgserver, moto, gunicorn), so these tests are ``slow``; every wait is
bounded.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
BANNER_END = "Ctrl-C stops the server, S3 and Postgres."
START_TIMEOUT_S = 150
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


class Demo:
    """A running ``modelplatform demo`` whose merged output is collected by a reader thread."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        # its own session, like a terminal's foreground job: killpg then mimics Ctrl-C
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelplatform.cli", "demo", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.strip() == BANNER_END:
                self.ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready.wait(0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the demo did not get ready (exit {self.process.returncode}):\n{self.output}")
        return self.output

    def processes(self) -> list[psutil.Process]:
        """Everything the demo started: its process tree (gunicorn) and the Postgres postmaster."""
        procs = psutil.Process(self.process.pid).children(recursive=True)
        postmaster_pid = int((self.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        return [*procs, psutil.Process(postmaster_pid)]

    def stop(self, how: str) -> int:
        if how == "ctrl-c":
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the demo did not stop within {STOP_TIMEOUT_S}s:\n{self.output}")

    def kill(self) -> None:
        """Last resort for a failed test: leave nothing running, Postgres (its own session) included."""
        if self.process.poll() is None:
            for proc in psutil.Process(self.process.pid).children(recursive=True):
                proc.kill()
            self.process.kill()
            self.process.wait(10)
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(psutil.Error, ValueError, IndexError):
                postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
                if postmaster.name() == "postgres":  # a stale file may name a reused pid
                    postmaster.send_signal(signal.SIGINT)  # Postgres' fast shutdown


def run_call(command: str) -> tuple[int, dict]:
    """Run a printed curl command as pasted; return the HTTP status and the JSON body."""
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=CALL_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split()[1])
    return status, json.loads(body)


def rows_command(output: str) -> str:
    lines = output.splitlines()
    return lines[lines.index("# the latest rows of the inferences audit table (no psql needed)") + 1]


def gone(procs: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    """The processes still alive after ``timeout`` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


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


def test_demo_rows_without_a_running_demo_says_how_to_start_one(tmp_path: Path, capsys) -> None:
    from modelplatform.cli import main

    assert main(["demo", "rows", "--data-dir", str(tmp_path)]) == 2
    assert "no running demo uses" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["demo", "--port", "70000"], ["demo", "--port", "http"],
                                  ["demo", "rows", "--limit", "0"], ["demo", "restart"]])
def test_demo_arguments_are_validated_by_the_parser(argv: list[str], capsys) -> None:
    from modelplatform.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "modelplatform demo: error: argument" in capsys.readouterr().err
