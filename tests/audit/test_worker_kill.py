"""A gunicorn worker SIGKILLed during a burst: every 200 the client received has its row."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audit_support import Burst
from support import OBJECT_SCHEMA, Platform
from support.processes import free_port
from support.models import Pricer

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture(params=["gevent", "gthread"])
def server(platform: Platform, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen]]:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": OBJECT_SCHEMA})
    port = free_port()
    env = {**os.environ, **platform.env(), "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2",
           "AUDIT_SPOOL_DIR": str(tmp_path / "spool"), "WEB_WORKER": request.param}
    # a file, not a pipe: the server logs a line per request, and an undrained pipe would block it
    output = open(tmp_path / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:modelplatform.gunicorn_conf",
         "modelplatform.app:create_app()"], env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200 and len(children(process.pid)) == 2:
                break
        except requests.RequestException:  # not listening yet, or too slow while workers boot
            pass
        time.sleep(0.2)
    else:
        pytest.fail("gunicorn did not become ready in 60 s")
    yield base, process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    output.close()


def test_every_200_has_its_row_when_a_worker_is_killed(server, platform: Platform, payload) -> None:
    base, gunicorn = server
    body = payload("quote_valid.json")
    sessions = threading.local()

    def send() -> str | None:
        """The inference id of a 200; None when the killed worker dropped the connection (allowed)."""
        session = sessions.__dict__.setdefault("session", requests.Session())
        try:
            response = session.post(base + "/models/auto_pricing/versions/1.0.0/predict", json=body, timeout=10)
        except requests.RequestException:
            sessions.session = requests.Session()
            return None
        return response.json()["inference_id"] if response.status_code == 200 else None

    with Burst(send) as burst:
        time.sleep(1.0)
        victim = children(gunicorn.pid)[0]
        answered_before_kill = len(burst.results)
        os.kill(victim, signal.SIGKILL)
        time.sleep(2.0)
    answered = burst.results

    assert answered_before_kill > 0 and len(answered) > answered_before_kill  # served before and after
    assert victim not in children(gunicorn.pid)  # the master replaced the killed worker
    recorded = {str(row["id"]) for row in platform.rows()}
    missing = set(answered) - recorded
    assert not missing, f"{len(missing)} answered inference(s) without a row"
