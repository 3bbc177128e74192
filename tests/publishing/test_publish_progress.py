"""The upload progress bar: shown on a terminal for large files, never in pipes or logs."""
from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from modelplatform.cli.publish_command import PROGRESS_MIN_BYTES

MODELPLATFORM = str(Path(sys.executable).with_name("modelplatform"))


def run_in_terminal(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run a command with a pseudo-terminal (80×24) as stdout and stderr; return status and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), output.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)


def test_large_upload_shows_a_progress_bar_on_a_terminal_only(store, store_url, tmp_path) -> None:
    path = tmp_path / "large.dill"
    path.write_bytes(os.urandom(PROGRESS_MIN_BYTES + 1024))
    env = {**os.environ, "MODEL_STORE_URL": store_url}
    command = [MODELPLATFORM, "publish", str(path), "--model", "large", "--skip-load-check",
               "--config", str(tmp_path / "absent.json")]

    status, terminal = run_in_terminal(command + ["--version", "1.0"], env)
    piped = subprocess.run(command + ["--version", "2.0"], env=env, capture_output=True, text=True, timeout=120)

    assert status == 0, terminal
    assert "uploading: 100%" in terminal
    assert piped.returncode == 0, piped.stderr
    assert "uploading" not in piped.stdout + piped.stderr


def test_small_upload_shows_no_bar(store, store_url, tmp_path) -> None:
    path = tmp_path / "small.dill"
    path.write_bytes(os.urandom(1024))
    env = {**os.environ, "MODEL_STORE_URL": store_url}

    status, terminal = run_in_terminal([MODELPLATFORM, "publish", str(path), "--model", "small", "--version", "1",
                                        "--skip-load-check"], env)

    assert status == 0, terminal
    assert "uploading" not in terminal and "sha256" in terminal
