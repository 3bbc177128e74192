"""Model isolation in the data plane (threads, in process): anything a model raises is its recorded 500; a
predict past PREDICT_TIMEOUT is a recorded 504; the host's own control flow is never recorded as the model's."""
from __future__ import annotations

import time
from typing import Any

import pytest

from modelplatform.isolation import DeadlineExpired, HostExit, ModelCaller, is_host_control_flow
from support import Platform
from support.models import ExitsProcess, Interrupts, Pricer, Sleeps
from support.problems import assert_problem

QUOTE = {"vehicle": "suv", "driver_age": 40}


class Raises:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def predict(self, payload: Any) -> Any:
        raise self.exc


class UnreadableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("even my message fails")


@pytest.mark.parametrize("model, error_type", [
    (ExitsProcess(3), "SystemExit"),
    (Interrupts(), "KeyboardInterrupt"),
    (Raises(GeneratorExit()), "GeneratorExit"),
    (Raises(UnreadableError()), "UnreadableError"),
])
def test_anything_a_model_raises_is_its_recorded_500(platform: Platform, model: Any, error_type: str) -> None:
    platform.add("m", {"1.0.0": model})
    with platform.app().test_client() as client:
        response = client.post("/models/m/predict", json=QUOTE)
        doc = assert_problem(response, 500, "model-error")
        assert client.post("/models/m/predict", json=QUOTE).status_code == 500  # and it serves on
    [row, _] = platform.rows()
    assert str(row["id"]) == doc["inference_id"]
    assert row["status"] == "error" and row["error"]["type"] == error_type


def test_a_late_answer_is_a_recorded_504_not_a_200(platform: Platform) -> None:
    platform.add("slow", {"1.0.0": Sleeps(0.3)})
    with platform.app(PREDICT_TIMEOUT="0.1").test_client() as client:
        response = client.post("/models/slow/predict", json=QUOTE)
    doc = assert_problem(response, 504, "deadline-exceeded")
    [row] = platform.rows()
    assert str(row["id"]) == doc["inference_id"] and row["error"]["type"] == "DeadlineExceeded"


def test_predict_timeout_must_be_a_positive_number(platform: Platform) -> None:
    from modelplatform.errors import StartupError

    platform.add("m", {"1.0.0": Pricer()})
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(StartupError, match="PREDICT_TIMEOUT"):
            platform.settings(PREDICT_TIMEOUT=bad)


def test_the_hosts_own_exits_pass_through_unrecorded(platform: Platform) -> None:
    platform.add("m", {"1.0.0": Raises(HostExit(1))})
    app = platform.app()
    with app.test_client() as client, pytest.raises(HostExit):
        client.post("/models/m/predict", json=QUOTE)
    assert platform.rows() == []


def test_host_control_flow_is_recognised() -> None:
    import gevent

    assert is_host_control_flow(HostExit(1)) and is_host_control_flow(gevent.GreenletExit())
    assert is_host_control_flow(gevent.Timeout(1))
    assert not is_host_control_flow(SystemExit(3)) and not is_host_control_flow(KeyboardInterrupt())


def test_a_caller_without_gevent_checks_the_deadline_after_the_call() -> None:
    caller = ModelCaller(0.05)
    assert caller(Sleeps(0.0), {}) == {"slept": 0.0}
    started = time.monotonic()
    with pytest.raises(DeadlineExpired):
        caller(Sleeps(0.1), {})
    assert time.monotonic() - started >= 0.1
