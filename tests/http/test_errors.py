"""Every error a request can meet, as the one handler renders it: RFC 9457 problem+json of the right status and
type, never HTML, never a trace, with its ``inference_id`` (body and ``X-Inference-ID``) exactly when a record was
stored. Body checks (400/413/415) are in test_payload.py; what the data plane records, in test_dataplane.py."""
from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from modelplatform.isolation import HostExit
from support.memory import MemoryAuditLog, MemoryPlatform
from support.models import Raises, Returns, Sleeps
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
QUOTE = {"vehicle": "suv", "driver_age": 30}


def test_unknown_model_and_version_are_404_and_not_recorded(client: FlaskClient, pricing: MemoryPlatform) -> None:
    assert_problem(client.post("/models/nope/predict", json=QUOTE), 404, "unknown-model")
    version = assert_problem(client.post("/models/auto_pricing/versions/9.9.9/predict", json=QUOTE), 404,
                             "unknown-version")
    assert "1.0.0" in version["detail"]  # tells the caller what exists
    assert_problem(client.get("/models/nope"), 404, "unknown-model")
    assert_problem(client.get("/models/auto_pricing/versions/9.9.9"), 404, "unknown-version")
    assert pricing.rows() == []


@pytest.mark.parametrize(("method", "path", "slug"), [
    ("get", "/models/{long}", "unknown-model"),
    ("post", "/models/{long}/predict", "unknown-model"),
    ("get", "/models/auto_pricing/versions/{long}", "unknown-version"),
    ("post", "/models/auto_pricing/versions/{long}/predict", "unknown-version"),
])
def test_404s_clip_what_they_echo_from_the_url(client: FlaskClient, method: str, path: str, slug: str) -> None:
    long = "m" * 4000
    response = getattr(client, method)(path.format(long=long), json=QUOTE)
    doc = assert_problem(response, 404, slug)
    assert len(response.data) < 800, response.data[:200]
    assert "m" * 64 in response.data.decode() and "m" * 200 not in response.data.decode()
    assert "…" in doc["detail"]


def test_unknown_route_and_wrong_method_are_problems(client: FlaskClient) -> None:
    assert_problem(client.get("/no/such/route"), 404, "about:blank")
    wrong = client.get(PINNED)
    assert assert_problem(wrong, 405, "about:blank")["title"] == "Method Not Allowed"
    assert sorted(wrong.headers["Allow"].split(", ")) == ["OPTIONS", "POST"]


def test_schema_violations_are_422_with_every_one_and_the_records_id(client: FlaskClient, pricing: MemoryPlatform,
                                                                      payload) -> None:
    response = client.post(PINNED, json=payload("quote_many_violations.json"))
    doc = assert_problem(response, 422, "invalid-input")
    # additionalProperties at the root, and both fields
    assert sorted(e["path"] for e in doc["errors"]) == ["", "/driver_age", "/vehicle"]
    assert all(e["message"] for e in doc["errors"])
    (row,) = pricing.rows()
    assert response.headers["X-Inference-ID"] == doc["inference_id"] == row["id"]
    assert row["status"] == "invalid_input"


def test_a_model_rejection_is_422_with_its_code(client: FlaskClient, pricing: MemoryPlatform, payload) -> None:
    response = client.post(PINNED, json=payload("quote_unknown_vehicle.json"))
    doc = assert_problem(response, 422, "rejected")
    assert doc["code"] == "unknown_vehicle"
    assert "tractor" in doc["detail"]
    (row,) = pricing.rows()
    assert response.headers["X-Inference-ID"] == doc["inference_id"] == row["id"]
    assert row["status"] == "rejected"


@pytest.mark.parametrize("model", [Raises("boom: secret internal detail"), Returns({"s": {1, 2}})],
                         ids=["raises", "unencodable"])
def test_a_model_failure_is_500_without_its_message_or_a_trace(memory: MemoryPlatform, model) -> None:
    memory.add("fragile", {"1.0.0": model})
    response = memory.app().test_client().post("/models/fragile/predict", json={"a": 1})
    doc = assert_problem(response, 500, "model-error")
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text and "Traceback" not in text and "set" not in doc["detail"]
    (row,) = memory.rows()
    assert response.headers["X-Inference-ID"] == doc["inference_id"] == row["id"]
    assert row["status"] == "error"


def test_a_model_past_predict_timeout_is_504(memory: MemoryPlatform) -> None:
    memory.add("slow", {"1.0.0": Sleeps(0.15)})
    response = memory.app(PREDICT_TIMEOUT="0.05").test_client().post("/models/slow/predict", json={})
    doc = assert_problem(response, 504, "deadline-exceeded")
    (row,) = memory.rows()
    assert response.headers["X-Inference-ID"] == doc["inference_id"] == row["id"]
    assert row["error"]["type"] == "DeadlineExceeded"


def test_when_nothing_can_be_recorded_predict_is_503_without_an_id_and_not_ready(pricing: MemoryPlatform) -> None:
    down = MemoryAuditLog(reachable=False)
    client = pricing.app(audit=down).test_client()
    refused = client.post(PINNED, json=QUOTE)
    problem = assert_problem(refused, 503, "audit-unavailable")
    assert "inference_id" not in problem and "X-Inference-ID" not in refused.headers
    assert down.refused == 1
    ready = assert_problem(client.get("/readyz"), 503, "not-ready")
    assert ready["checks"] == {"models": "ok", "database": "unreachable"}
    assert client.get("/healthz").get_json() == {"status": "ok"}  # alive all the same


def test_the_hosts_own_exit_passes_through_the_handler_unrecorded(memory: MemoryPlatform) -> None:
    memory.add("m", {"1.0.0": Raises(exc=HostExit(1))})
    with pytest.raises(HostExit):
        memory.app().test_client().post("/models/m/predict", json={})
    assert memory.rows() == []


def test_a_bug_outside_the_model_is_a_500_problem_without_the_trace(pricing: MemoryPlatform) -> None:
    app = pricing.app()

    def broken() -> None:
        raise RuntimeError("secret internal state")

    app.add_url_rule("/broken", view_func=broken)  # stands for a bug in our own code
    response = app.test_client().get("/broken")
    doc = assert_problem(response, 500, "about:blank")
    assert doc["detail"] == "unexpected error; it has been logged"
    assert b"secret" not in response.data and b"Traceback" not in response.data
