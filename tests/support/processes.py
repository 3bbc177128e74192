"""Starting real server processes for end-to-end tests, always bounded in time and always stopped."""
from __future__ import annotations

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

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming ready")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready within {timeout} s")


@contextmanager
def gunicorn_web(env: dict[str, str], *, workers: int = 2, timeout: float = 60.0,
                 cwd: Path | None = None) -> Iterator[str]:
    """Run the Procfile ``web`` command on a free loopback port; yields its base URL.

    ``cwd``: the server's working directory (default: the checkout). A host of its own gets its own, so
    what lives under ``var/`` by default (audit spool, artifact cache) is not shared with another server.
    """
    port = free_port()
    full_env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    # a file, not a pipe: the server logs a line per request, and an undrained pipe would block it
    output = tempfile.TemporaryFile()
    proc = subprocess.Popen(procfile_command("web"), cwd=cwd or ROOT, env=full_env,
                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", timeout, proc)
        yield base
    finally:
        stop_group(proc, timeout=30)
        output.close()


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
