"""Every error status as RFC 9457 problem+json, never HTML, with the row written when a version was reached."""
from __future__ import annotations

import socket

import pytest
from flask.testing import FlaskClient

from support import Platform
from support.models import Raises
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"



def test_malformed_json_is_400_and_not_recorded(client: FlaskClient, pricing: Platform) -> None:
    response = client.post(PINNED, data='{"vehicle": ', content_type="application/json")
    doc = assert_problem(response, 400, "malformed-json")
    assert doc["type"].endswith("malformed-json")
    assert pricing.rows() == []


@pytest.mark.parametrize("body", ['{"driver_age": NaN}', '{"x": Infinity}', b'{"vehicle": "\xff"}',
                                  "[" * 2000 + "]" * 2000, ""])
def test_json_that_is_not_strict_json_is_400(client: FlaskClient, body) -> None:
    assert_problem(client.post(PINNED, data=body, content_type="application/json"), 400, "malformed-json")


def test_nul_character_is_refused_before_it_can_break_the_audit_row(client: FlaskClient) -> None:
    doc = assert_problem(client.post(PINNED, data='{"vehicle": "a\\u0000b", "driver_age": 30}',
                                     content_type="application/json"), 400, "bad-request")
    assert "U+0000" in doc["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_body_is_415(client: FlaskClient, content_type) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    doc = assert_problem(client.post(PINNED, data='{"vehicle": "suv", "driver_age": 30}', **kwargs), 415,
                         "unsupported-media-type")
    assert "application/json" in doc["detail"]


def test_body_over_the_limit_is_413(pricing: Platform) -> None:
    client = pricing.app(MAX_BODY_BYTES=64).test_client()
    big = '{"vehicle": "' + "s" * 200 + '", "driver_age": 30}'
    doc = assert_problem(client.post(PINNED, data=big, content_type="application/json"), 413, "payload-too-large")
    assert "64" in doc["detail"]
    assert pricing.rows() == []


def test_unknown_model_and_version_are_404(client: FlaskClient) -> None:
    body = {"vehicle": "suv", "driver_age": 30}
    model = assert_problem(client.post("/models/nope/predict", json=body), 404, "unknown-model")
    assert model["type"].endswith("unknown-model")
    version = assert_problem(client.post("/models/auto_pricing/versions/9.9.9/predict", json=body), 404,
                             "unknown-version")
    assert version["type"].endswith("unknown-version")
    assert "1.0.0" in version["detail"]  # tells the caller what exists
    assert_problem(client.get("/models/nope"), 404, "unknown-model")
    assert_problem(client.get("/models/auto_pricing/versions/9.9.9"), 404, "unknown-version")


@pytest.mark.parametrize(("method", "path", "slug"), [
    ("get", "/models/{long}", "unknown-model"),
    ("post", "/models/{long}/predict", "unknown-model"),
    ("get", "/models/auto_pricing/versions/{long}", "unknown-version"),
    ("post", "/models/auto_pricing/versions/{long}/predict", "unknown-version"),
])
def test_404s_clip_what_they_echo_from_the_url(client: FlaskClient, method: str, path: str, slug: str) -> None:
    long = "m" * 4000
    response = getattr(client, method)(path.format(long=long), json={"vehicle": "suv", "driver_age": 30})
    doc = assert_problem(response, 404, slug)
    assert len(response.data) < 800, response.data[:200]
    assert "m" * 64 in response.data.decode() and "m" * 200 not in response.data.decode()
    assert "…" in doc["detail"]


def test_415_clips_the_content_type_it_echoes(client: FlaskClient) -> None:
    response = client.post(PINNED, data=b"{}", headers={"Content-Type": "text/" + "x" * 4000})
    assert_problem(response, 415, "unsupported-media-type")
    assert len(response.data) < 800


def test_unknown_route_and_wrong_method_are_problems(client: FlaskClient) -> None:
    assert_problem(client.get("/no/such/route"), 404, "about:blank")
    wrong = assert_problem(client.get(PINNED), 405, "about:blank")
    assert wrong["title"] == "Method Not Allowed"
    assert "POST" in client.get(PINNED).headers["Allow"]


def test_schema_violations_list_every_one_with_a_pointer_and_are_recorded(
        client: FlaskClient, pricing: Platform, payload) -> None:
    response = client.post(PINNED, json=payload("quote_many_violations.json"))
    doc = assert_problem(response, 422, "invalid-input")
    assert doc["type"].endswith("invalid-input")
    paths = sorted(e["path"] for e in doc["errors"])
    assert paths == ["", "/driver_age", "/vehicle"]  # additionalProperties at the root, and both fields
    assert all(e["message"] for e in doc["errors"])
    assert response.headers["X-Inference-ID"] == doc["inference_id"]

    (row,) = pricing.rows()
    assert str(row["id"]) == doc["inference_id"]
    assert row["status"] == "invalid_input"
    assert row["output"] is None
    assert sorted(e["path"] for e in row["error"]["errors"]) == paths


def test_an_array_where_an_object_is_expected_is_422(client: FlaskClient) -> None:
    doc = assert_problem(client.post(PINNED, json=[1, 2]), 422, "invalid-input")
    assert doc["errors"][0]["path"] == ""


def test_model_rejection_is_422_with_its_code_and_recorded(client: FlaskClient, pricing: Platform,
                                                           payload) -> None:
    doc = assert_problem(client.post(PINNED, json=payload("quote_unknown_vehicle.json")), 422, "rejected")
    assert doc["type"].endswith("rejected")
    assert doc["code"] == "unknown_vehicle"
    assert "tractor" in doc["detail"]
    (row,) = pricing.rows()
    assert (row["status"], row["error"]["code"]) == ("rejected", "unknown_vehicle")
    assert str(row["id"]) == doc["inference_id"]


def test_model_exception_is_500_without_trace_and_recorded(platform: Platform) -> None:
    platform.add("fragile", {"1.0.0": Raises("boom: secret internal detail")})
    client = platform.app().test_client()
    response = client.post("/models/fragile/predict", json={"a": 1})
    doc = assert_problem(response, 500, "model-error")
    assert doc["type"].endswith("model-error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    (row,) = platform.rows()
    assert str(row["id"]) == doc["inference_id"]
    assert row["status"] == "error"
    assert row["error"] == {"type": "RuntimeError", "message": "boom: secret internal detail"}


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/nothing"


def test_not_ready_and_no_answer_without_a_record_when_the_database_is_unreachable(pricing: Platform) -> None:
    # the real writer pointed at a port where no database listens, without an outage spool
    client = pricing.app(DATABASE_URL=_closed_port_url(), AUDIT_SPOOL_DIR="off").test_client()
    assert client.get("/healthz").status_code == 200
    ready = assert_problem(client.get("/readyz"), 503, "not-ready")
    assert ready["checks"]["database"] == "unreachable"
    refused = assert_problem(client.post(PINNED, json={"vehicle": "suv", "driver_age": 30}), 503,
                             "audit-unavailable")
    assert "inference_id" not in refused


def test_ready_when_models_loaded_and_database_reachable(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"models": "ok", "database": "ok"}
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_routing_key_header_is_bounded(client: FlaskClient) -> None:
    long_key = {"X-Routing-Key": "k" * 1000}
    assert_problem(client.post("/models/auto_pricing/predict", json={}, headers=long_key), 400, "bad-request")


def test_a_bug_outside_the_model_is_a_500_problem_without_the_trace(pricing: Platform) -> None:
    app = pricing.app()

    def broken() -> None:
        raise RuntimeError("secret internal state")

    app.add_url_rule("/broken", view_func=broken)  # stands for a bug in our own code
    response = app.test_client().get("/broken")
    doc = assert_problem(response, 500, "about:blank")
    assert doc["detail"] == "unexpected error; it has been logged"
    assert b"secret" not in response.data and b"Traceback" not in response.data
