"""A running ``modelplatform demo`` (or ``make demo``) for tests: its terminal output, its processes, and a
stop that leaves nothing running, Postgres (its own session) included. Every wait is bounded."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

BANNER_END = "Ctrl-C stops the server, S3 and Postgres."
START_TIMEOUT_S = 150
STOP_TIMEOUT_S = 60


class DemoProcess:
    """``argv`` run in ``cwd`` in its own session, like a terminal's foreground job (killpg then mimics
    Ctrl-C); its merged output is collected by a reader thread."""

    def __init__(self, argv: Sequence[str], cwd: Path, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.process = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
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

    def stop(self, how: str = "ctrl-c") -> int:
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
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            self.process.kill()
            self.process.wait(10)
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(psutil.Error, ValueError, IndexError):
                postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
                if postmaster.name() == "postgres":  # a stale file may name a reused pid
                    postmaster.send_signal(signal.SIGINT)  # Postgres' fast shutdown
                    postmaster.wait(STOP_TIMEOUT_S)


def gone(procs: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    """The processes still alive after ``timeout`` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive
