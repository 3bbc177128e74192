"""Real gunicorn masters on a free loopback port, always terminated."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Platform
from support.processes import GunicornWeb, free_port

BOOT_SECONDS = 90


class Gunicorn(GunicornWeb):
    """One gunicorn master running ``modelplatform.app:create_app()`` with the production settings, for a
    platform's store, database and config."""

    def __init__(self, platform: Platform, workdir: Path, workers: int = 2, **env: str) -> None:
        settings = {"WEB_THREADS": "4", "WEB_TIMEOUT": "60", **platform.env(), **env}
        super().__init__(settings, workers=workers, log_path=workdir / f"gunicorn-{free_port()}.log")

    def start(self, **options) -> Gunicorn:  # type: ignore[override]
        options.setdefault("wait", "/healthz")
        options.setdefault("timeout", BOOT_SECONDS)
        super().start(**options)
        return self


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator:
    """``gunicorn(platform, **env)`` starts a master and waits until it answers (``wait=None``: does not wait,
    for a start that must fail); every one started is stopped at teardown."""
    started: list[Gunicorn] = []

    def start(platform: Platform, workers: int = 2, *, wait: str | None = "/healthz", **env: str) -> Gunicorn:
        server = Gunicorn(platform, tmp_path, workers, **env)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.stop()
