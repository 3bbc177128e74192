"""Shadow tests: a live echo version and a shadow version whose behaviour each test chooses."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from modelplatform.dataplane import DataPlane
from support import Platform
from support.models import Echo

WAIT_S = 20.0


def _dataplane(app: Flask) -> DataPlane:
    return app.extensions["modelplatform.dataplane"]


@pytest.fixture
def shadowed(platform: Platform) -> Iterator[Callable[..., Flask]]:
    """Build an app serving ``quote`` 1.0.0 (echo) with ``shadow_model`` as shadow 2.0.0."""
    apps: list[Flask] = []

    def build(shadow_model: Any, **entry: Any) -> Flask:
        platform.add("quote", {"1.0.0": Echo(), "2.0.0": shadow_model}, default="1.0.0", shadow=["2.0.0"], **entry)
        app = platform.app()
        apps.append(app)
        return app

    yield build
    for app in apps:  # stop the workers so no shadow writes into the next test's table
        shadows = _dataplane(app).shadows
        if shadows is not None:
            shadows.close(timeout=10)


@pytest.fixture
def wait_rows(platform: Platform) -> Callable[..., list[dict[str, Any]]]:
    """Poll (bounded) until ``count`` rows match ``where``; return them."""
    def wait(count: int, where: str = "routed_by = 'shadow'", **params: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_S
        while True:
            rows = platform.rows(where, **params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
    return wait
