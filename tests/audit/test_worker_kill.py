"""A gunicorn worker SIGKILLed during a burst: every 200 the client received has its row."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audit_support import Burst
from support import OBJECT_SCHEMA, Platform
from support.models import Pricer
from support.processes import GunicornWeb

pytestmark = pytest.mark.slow


@pytest.fixture(params=["gevent", "gthread"])
def server(platform: Platform, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GunicornWeb]:
    """The Procfile web command with two workers of ``request.param`` class, both booted."""
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": OBJECT_SCHEMA})
    server = GunicornWeb({**platform.env(), "AUDIT_SPOOL_DIR": str(tmp_path / "spool"), "WEB_WORKER": request.param},
                         workers=2, log_path=tmp_path / "gunicorn.log")
    try:
        server.start()
        server.wait_for_workers(2)
        yield server
    finally:
        server.stop()


def test_every_200_has_its_row_when_a_worker_is_killed(server: GunicornWeb, platform: Platform, payload) -> None:
    base = server.url
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
        victim = min(server.workers())
        answered_before_kill = len(burst.results)
        os.kill(victim, signal.SIGKILL)
        time.sleep(2.0)
    answered = burst.results

    assert answered_before_kill > 0 and len(answered) > answered_before_kill  # served before and after
    assert victim not in server.wait_for_workers(2)  # the master replaced the killed worker
    recorded = {str(row["id"]) for row in platform.rows()}
    missing = set(answered) - recorded
    assert not missing, f"{len(missing)} answered inference(s) without a row"
