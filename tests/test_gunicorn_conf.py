"""The production gunicorn settings refuse a bad environment with every problem listed, before starting."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support.processes import GunicornWeb

pytestmark = pytest.mark.slow  # every test here starts a process


def refused(**env: str) -> list[str]:
    """The lines the Procfile web command prints when it refuses ``env``; asserts it exits 1 on its own."""
    server = GunicornWeb(env)
    try:
        server.start(wait=None)
        assert server.wait_exit(timeout=60) == 1, server.log()
        return server.log().strip().splitlines()
    finally:
        server.stop()


def test_bad_server_settings_are_listed_together_and_gunicorn_exits_1() -> None:
    assert refused(PORT="http", WEB_THREADS="0", WEB_TIMEOUT="soon", LOG_LEVEL="loud") == [
        "invalid server settings:",
        "  PORT='http': must be a whole number 1–65535",
        "  WEB_THREADS='0': must be a whole number ≥ 1",
        "  WEB_TIMEOUT='soon': must be a whole number ≥ 1",
        "  LOG_LEVEL='LOUD': must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    ]


def test_defaults_and_valid_overrides_load() -> None:
    code = ("import modelplatform.gunicorn_conf as c; "
            "print(c.bind, c.workers, c.threads, c.timeout, c.logconfig_dict['root']['level'])")
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "PORT", "WEB_CONCURRENCY", "WEB_THREADS",
                                                             "WEB_TIMEOUT", "LOG_LEVEL"}}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0.0.0.0:8000", "2", "8", "30", "INFO"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**env, "PORT": "9000", "WEB_THREADS": "4", "LOG_LEVEL": "warning"})
    assert out.stdout.split() == ["0.0.0.0:9000", "2", "4", "30", "WARNING"]


def test_worker_settings_are_checked_with_the_others() -> None:
    assert refused(WEB_WORKER="eventlet", WEB_HEADER_TIMEOUT="0", WEB_BODY_TIMEOUT="soon", WEB_KEEPALIVE="-1",
                   WEB_BOOT_RETRY_MAX="99999", WEB_CONNECTIONS="0") == [
        "invalid server settings:",
        "  WEB_CONNECTIONS='0': must be a whole number ≥ 1",
        "  WEB_WORKER='eventlet': must be one of gevent, gthread",
        "  WEB_HEADER_TIMEOUT='0': must be a number of seconds, > 0 and ≤ 3600",
        "  WEB_BODY_TIMEOUT='soon': must be a number of seconds, > 0 and ≤ 3600",
        "  WEB_KEEPALIVE='-1': must be a number of seconds, > 0 and ≤ 3600",
        "  WEB_BOOT_RETRY_MAX='99999': must be a number of seconds, > 0 and ≤ 3600",
    ]


def test_gevent_is_the_default_worker_and_gthread_can_be_chosen() -> None:
    code = "import modelplatform.gunicorn_conf as c; print(c.worker_class, c.worker_connections, c.keepalive)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEB_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["modelplatform.gunicorn_worker.GeventWorker", "1000", "5"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**env, "WEB_WORKER": "gthread", "WEB_KEEPALIVE": "2"})
    assert out.stdout.split() == ["modelplatform.gunicorn_worker.ThreadWorker", "1000", "2"]
