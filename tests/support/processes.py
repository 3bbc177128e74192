"""Starting real server processes for end-to-end tests, always bounded in time and always stopped."""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# read by the gunicorn master (modelplatform.gunicorn_conf), with every WEB_* variable
SERVER_SETTINGS = frozenset({"HOST", "PORT", "LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_command(process: str) -> list[str]:
    """The Procfile's command for ``process`` (``web``, ``release``), with executables from this venv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            argv = shlex.split(command.strip())
            if (BIN / argv[0]).exists():
                argv[0] = str(BIN / argv[0])
            return argv
    raise LookupError(f"no {process!r} process in the Procfile")


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming ready")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready within {timeout} s")


class GunicornWeb:
    """The Procfile ``web`` command (gunicorn with the production settings) on a free loopback port.

    The one way tests start a server: its output goes to ``log_path`` (a file, not a pipe: the server logs a
    line per request, and an undrained pipe would block it); :meth:`stop` always ends its process group.
    """

    def __init__(self, env: dict[str, str], *, workers: int = 2, log_path: Path | None = None,
                 cwd: Path | None = None) -> None:
        self.port = free_port()
        self.cwd = cwd or ROOT
        self.url = f"http://127.0.0.1:{self.port}"
        # server settings come from the test, never from the environment the suite runs in (the master makes
        # its own metrics directory unless the test names one); a test of bad settings passes its own PORT
        inherited = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS and not k.startswith("WEB_")}
        self.env = {**inherited, "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": str(workers), **env}
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, *, wait: str | None = "/readyz", timeout: float = 60.0, interval: float = 0.2) -> GunicornWeb:
        """Start; unless ``wait`` is None, wait until ``GET wait`` answers 200, asking every ``interval`` seconds
        (raises with the log if it exits or times out)."""
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(procfile_command("web"), cwd=self.cwd, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if wait is not None:
            try:
                wait_ready(self.url + wait, timeout, self.proc, interval)
            except (RuntimeError, TimeoutError) as exc:
                raise AssertionError(f"{exc}:\n{self.log()[-4000:]}") from None
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log()[-4000:]
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        """The exit status of a server expected to stop by itself (raises if it does not within ``timeout``)."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def workers(self) -> set[int]:
        """The pids of the master's worker processes now."""
        assert self.proc is not None
        try:
            return {child.pid for child in psutil.Process(self.proc.pid).children()}
        except psutil.NoSuchProcess:
            return set()

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> set[int]:
        """The worker pids once there are exactly ``count`` (raises with the log after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.workers()
            if len(pids) == count:
                return pids
            time.sleep(0.2)
        raise AssertionError(f"not {count} workers within {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_lines(self) -> list[dict]:
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:  # the last line, still being written
                    continue
        return lines

    def wait_for_log(self, predicate, timeout: float = 60) -> dict:
        return self.wait_for_count(predicate, 1, timeout)[0]

    def wait_for_count(self, predicate, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.json_lines() if predicate(line)]
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} matching log lines within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the process group (gunicorn's graceful stop), SIGKILL if it is still there after 40 s."""
        if self.proc is None:
            return
        stop_group(self.proc, timeout=40)
        self._log.close()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)


@contextmanager
def gunicorn_web(env: dict[str, str], *, workers: int = 2, timeout: float = 60.0,
                 log_path: Path | None = None, cwd: Path | None = None) -> Iterator[str]:
    """Run the Procfile ``web`` command on a free loopback port until ``/readyz`` answers; yields its base URL.
    The server's output (one JSON log line per event) goes to ``log_path`` when given, for tests that read it.
    ``cwd``: the server's working directory (default: the checkout). A host of its own gets its own, so
    what lives under ``var/`` by default (audit spool, artifact cache) is not shared with another server.
    """
    server = GunicornWeb(env, workers=workers, log_path=log_path, cwd=cwd)
    try:
        yield server.start(timeout=timeout).url
    finally:
        server.stop()


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
