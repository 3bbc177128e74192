"""Real gunicorn masters on a free loopback port, always terminated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support import Platform
from support.processes import free_port

BOOT_SECONDS = 90


class Gunicorn:
    """One gunicorn master running ``modelplatform.app:create_app()`` with the production settings."""

    def __init__(self, platform: Platform, workdir: Path, workers: int = 2, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{self.port}.log"
        self.env = {**os.environ, **platform.env(), "HOST": "127.0.0.1", "PORT": str(self.port),
                    "WEB_CONCURRENCY": str(workers), "WEB_THREADS": "4", "WEB_TIMEOUT": "60", **env}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Gunicorn":
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:modelplatform.gunicorn_conf",
             "modelplatform.app:create_app()"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer within {BOOT_SECONDS}s:\n{self.log()[-4000:]}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log()[-4000:]
        self.proc.send_signal(sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_lines(self) -> list[dict]:
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def wait_for_log(self, predicate, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.json_lines():
                if predicate(line):
                    return line
            time.sleep(0.2)
        raise AssertionError(f"log line not seen within {timeout}s:\n{self.log()[-4000:]}")

    def wait_for_count(self, predicate, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.json_lines() if predicate(line)]
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} matching log lines within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        finally:
            self._log.close()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator:
    """``gunicorn(platform, **env)`` starts a master; every one started is stopped at teardown."""
    started: list[Gunicorn] = []

    def start(platform: Platform, workers: int = 2, **env: str) -> Gunicorn:
        server = Gunicorn(platform, tmp_path, workers, **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
