"""Shadow traffic through the app: copies recorded off the response path, never changing the answer."""
from __future__ import annotations

import logging
import time

from flask import Flask

from modelplatform.dataplane import DataPlane
from modelplatform.http import DATAPLANE
from modelplatform.routing import assign
from support import Platform
from support.models import Raises, Returns, Sleeps

BODY = {"customer_id": "c1", "vehicle": "van"}
SLEEP_S = 2.0


def plane(app: Flask) -> DataPlane:
    return app.extensions[DATAPLANE]


def with_shadow_limits(app: Flask, **limits: int) -> DataPlane:
    """Serve ``app`` from a data plane like its own whose shadow queue has these limits."""
    served = plane(app)
    app.extensions[DATAPLANE] = DataPlane(served.registry, served.audit, served.router, **limits)
    return plane(app)


def test_shadow_row_is_recorded_with_the_primarys_request_id_and_never_alters_the_response(
        shadowed, platform: Platform, wait_rows) -> None:
    client = shadowed(Returns({"shadow": "different answer"})).test_client()
    response = client.post("/models/quote/predict", json=BODY, headers={"X-Request-ID": "req-shadow-1"})

    assert response.status_code == 200
    doc = response.get_json()
    assert (doc["version"], doc["routed_by"], doc["experiment"]) == ("1.0.0", "default", None)
    assert doc["output"] == {"echo": BODY}
    assert response.headers["X-Model-Version"] == "1.0.0"

    (shadow,) = wait_rows(1)
    assert (shadow["version"], shadow["routed_by"], shadow["status"]) == ("2.0.0", "shadow", "ok")
    assert shadow["request_id"] == "req-shadow-1"
    assert shadow["output"] == {"shadow": "different answer"}
    assert shadow["input"] == BODY
    assert shadow["experiment"] is None
    (primary,) = platform.rows("routed_by = 'default'")
    assert primary["request_id"] == "req-shadow-1" and str(primary["id"]) == doc["inference_id"]


def test_a_raising_shadow_leaves_the_primary_untouched(shadowed, wait_rows) -> None:
    app = shadowed(Raises())
    response = app.test_client().post("/models/quote/predict", json=BODY, headers={"X-Request-ID": "req-raises"})
    assert response.status_code == 200
    assert response.get_json()["output"] == {"echo": BODY}

    (shadow,) = wait_rows(1)
    assert (shadow["status"], shadow["request_id"], shadow["routed_by"]) == ("error", "req-raises", "shadow")
    assert shadow["error"]["type"] == "RuntimeError"
    assert plane(app).shadows.failed == 1


def test_a_sleeping_shadow_does_not_delay_the_primary(shadowed, platform: Platform, wait_rows) -> None:
    client = shadowed(Sleeps(SLEEP_S)).test_client()
    started = time.monotonic()
    response = client.post("/models/quote/predict", json=BODY)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.get_json()["output"] == {"echo": BODY}
    assert elapsed < SLEEP_S / 2, f"primary took {elapsed:.2f}s behind a {SLEEP_S}s shadow"
    assert platform.rows("routed_by = 'shadow'") == []  # the shadow is still sleeping

    (shadow,) = wait_rows(1)
    assert shadow["output"] == {"slept": SLEEP_S}
    assert shadow["latency_ms"] >= SLEEP_S * 1000


def test_shadows_get_calls_whose_primary_failed_validation(platform: Platform, shadowed, wait_rows) -> None:
    # the live version requires "vehicle", the shadow does not: the shadow shows what it would answer
    app = shadowed(Returns({"ok": True}), schemas={"1.0.0": {"type": "object", "required": ["vehicle"]},
                                                   "2.0.0": {"type": "object"}})
    response = app.test_client().post("/models/quote/predict", json={"customer_id": "c1"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    (shadow,) = wait_rows(1)
    assert (shadow["status"], shadow["output"]) == ("ok", {"ok": True})
    (primary,) = platform.rows("routed_by = 'default'")
    assert primary["status"] == "invalid_input" and primary["request_id"] == shadow["request_id"]


def test_pinned_calls_are_not_shadowed(shadowed, platform: Platform, wait_rows) -> None:
    client = shadowed(Returns(1)).test_client()
    assert client.post("/models/quote/versions/1.0.0/predict", json=BODY).status_code == 200
    assert client.post("/models/quote/predict", json=BODY, headers={"X-Request-ID": "unpinned"}).status_code == 200
    # one worker, FIFO: had the pinned call been queued, its copy would be recorded before this one
    assert [r["request_id"] for r in wait_rows(1)] == ["unpinned"]


def test_under_an_ab_test_shadow_rows_carry_the_experiment_and_skip_the_arm_it_serves(
        platform: Platform, shadowed, wait_rows) -> None:
    weights = {"1.0.0": 50, "2.0.0": 50}
    app = shadowed(Returns("v2"), ab_test={"name": "exp", "weights": weights, "sticky_key": "/customer_id"})
    client = app.test_client()
    to_v1 = next(f"k{i}" for i in range(100) if assign("exp", weights, f"k{i}") == "1.0.0")
    to_v2 = next(f"k{i}" for i in range(100) if assign("exp", weights, f"k{i}") == "2.0.0")

    assert client.post("/models/quote/predict", json={"customer_id": to_v2},
                       headers={"X-Request-ID": "primary-is-shadow"}).get_json()["version"] == "2.0.0"
    assert client.post("/models/quote/predict", json={"customer_id": to_v1},
                       headers={"X-Request-ID": "primary-is-v1"}).get_json()["version"] == "1.0.0"

    # one worker, FIFO: a copy of the first call would be recorded first
    (shadow,) = wait_rows(1)
    assert (shadow["request_id"], shadow["experiment"], shadow["routing_key"]) == ("primary-is-v1", "exp", to_v1)


def test_full_queue_drops_are_counted_and_logged_never_blocking(shadowed, platform: Platform, caplog) -> None:
    app = shadowed(Sleeps(0.5))
    data_plane = with_shadow_limits(app, shadow_max_queue=1)
    client = app.test_client()
    calls = 6

    with caplog.at_level(logging.WARNING, logger="modelplatform.shadow"):
        started = time.monotonic()
        for i in range(calls):
            assert client.post("/models/quote/predict", json=BODY).status_code == 200
        elapsed = time.monotonic() - started

    assert elapsed < 0.5 * calls / 2, f"{calls} primaries took {elapsed:.2f}s"  # not one behind each shadow
    # one copy running, at most one waiting: at least four had no room
    dropped = data_plane.shadows.dropped
    assert dropped >= calls - 2
    assert any("shadow call dropped, queue full" in r.getMessage() for r in caplog.records)

    assert data_plane.shadows.close(timeout=10) == 0  # drains what was queued
    assert len(platform.rows("routed_by = 'shadow'")) == calls - dropped
    assert len(platform.rows("routed_by = 'default'")) == calls


def test_copies_over_the_byte_budget_are_dropped(shadowed, platform: Platform) -> None:
    app = shadowed(Returns(1))
    data_plane = with_shadow_limits(app, shadow_max_bytes=64)
    client = app.test_client()
    assert client.post("/models/quote/predict", json={"blob": "x" * 100}).status_code == 200
    assert data_plane.shadows.dropped == 1
    assert client.post("/models/quote/predict", json={"small": 1}).status_code == 200
    data_plane.shadows.close(timeout=10)
    assert [r["input"] for r in platform.rows("routed_by = 'shadow'")] == [{"small": 1}]
