"""Predict over HTTP (http/models.py): the 200 document and its headers, by default and by pin, the row behind
every answer, and the ``X-Routing-Key`` header. Request ids are in test_context.py, body checks in test_payload.py."""
from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from modelplatform.routing import MAX_ROUTING_KEY_CHARS, assign
from support.memory import MemoryPlatform
from support.models import Echo, Returns, ReturnsDataclass
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"


def test_unpinned_predict_uses_default_and_records_a_row(client: FlaskClient, pricing: MemoryPlatform, payload) -> None:
    body = {**payload("quote_valid.json"), "annual_km": 12000}
    response = client.post("/models/auto_pricing/predict", json=body, headers={"X-Request-ID": "req-123"})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    assert uuid.UUID(doc["inference_id"]).version == 7
    assert doc == {"inference_id": doc["inference_id"], "model": "auto_pricing", "version": "1.1.0",
                   "routed_by": "default", "experiment": None,
                   "output": {"premium": 418.5, "currency": "EUR", "tag": "v2"}}
    assert response.headers["X-Model-Version"] == "1.1.0"
    assert response.headers["X-Inference-ID"] == doc["inference_id"]

    (row,) = pricing.rows()
    assert row["id"] == doc["inference_id"]
    assert (row["status"], row["routed_by"], row["version"]) == ("ok", "default", "1.1.0")
    assert (row["input"], row["output"], row["error"]) == (body, doc["output"], None)
    assert row["request_id"] == "req-123"
    assert row["artifact_sha256"] == pricing.config["auto_pricing"]["sha256"]["1.1.0"]
    assert row["latency_ms"] > 0


def test_pinned_predict_uses_that_versions_schema_and_model(client: FlaskClient, pricing: MemoryPlatform,
                                                            payload) -> None:
    response = client.post(PINNED, json=payload("quote_young_hatchback.json"))

    assert response.status_code == 200
    doc = response.get_json()
    assert (doc["version"], doc["routed_by"], doc["output"]["tag"]) == ("1.0.0", "pinned", "v1")
    assert doc["output"]["premium"] == 450.0  # 300 × 1.00 × 1.5 for a driver under 25
    assert response.headers["X-Model-Version"] == "1.0.0"
    (row,) = pricing.rows()
    assert (row["routed_by"], row["version"], row["status"]) == ("pinned", "1.0.0", "ok")
    # the unpinned schema (1.1.X) requires annual_km, which this body lacks
    assert client.post("/models/auto_pricing/predict", json=payload("quote_young_hatchback.json")).status_code == 422


def test_an_outputs_own_digits_and_types_reach_the_caller(memory: MemoryPlatform) -> None:
    memory.add("quotes", {"1.0.0": ReturnsDataclass()})
    response = memory.app().test_client().post("/models/quotes/predict", json={})
    assert response.status_code == 200
    assert b'"premium":123.45' in response.data  # a Decimal, exact
    assert response.get_json()["output"] == {"premium": 123.45, "valid_until": "2026-12-31",
                                             "issued_at": "2026-11-22T10:30:00+00:00"}
    (row,) = memory.rows()
    assert row["output"] == response.get_json()["output"]


def test_an_ab_test_names_the_arm_and_the_experiment(memory: MemoryPlatform) -> None:
    weights = {"1.0.0": 50, "2.0.0": 50}
    memory.add("rollout", {"1.0.0": Echo(), "2.0.0": Echo()}, default="1.0.0",
               ab_test={"name": "exp", "weights": weights, "sticky_key": "/customer_id"})
    response = memory.app().test_client().post("/models/rollout/predict", json={"customer_id": 7})
    doc = response.get_json()
    assert (doc["routed_by"], doc["experiment"]) == ("ab_test", "exp")
    assert doc["version"] == response.headers["X-Model-Version"] == assign("exp", weights, "7")


def test_a_model_with_shadows_gets_its_copies_off_the_response(memory: MemoryPlatform) -> None:
    memory.add("quote", {"1.0.0": Echo(), "2.0.0": Returns("shadow")}, default="1.0.0", shadow=["2.0.0"])
    response = memory.app().test_client().post("/models/quote/predict", json={"a": 1},
                                               headers={"X-Request-ID": "req-s"})
    assert response.get_json()["output"] == {"echo": {"a": 1}}
    assert response.headers["X-Model-Version"] == "1.0.0"
    (shadow,) = memory.wait_rows(1, routed_by="shadow")
    assert (shadow["version"], shadow["output"], shadow["request_id"]) == ("2.0.0", "shadow", "req-s")


@pytest.mark.parametrize("key", ["k" * (MAX_ROUTING_KEY_CHARS + 1), "a\x01b", "tab\there", ""],
                         ids=["too-long", "control", "tab", "empty"])
def test_an_unsafe_routing_key_header_is_400_and_never_stored(client: FlaskClient, pricing: MemoryPlatform, payload,
                                                               key: str) -> None:
    response = client.post("/models/auto_pricing/predict", json=payload("quote_valid.json"),
                           headers={"X-Routing-Key": key})
    assert_problem(response, 400, "bad-request")
    assert pricing.rows() == []


def test_a_routing_key_at_the_bound_is_stored_as_sent(client: FlaskClient, pricing: MemoryPlatform, payload) -> None:
    key = "customer-" + "9" * (MAX_ROUTING_KEY_CHARS - 9)
    response = client.post(PINNED, json=payload("quote_valid.json"), headers={"X-Routing-Key": key})
    assert response.status_code == 200
    (row,) = pricing.rows()
    assert row["routing_key"] == key


def test_the_routing_key_header_is_read_as_utf8(client: FlaskClient, pricing: MemoryPlatform, payload) -> None:
    # a WSGI server hands header bytes over as Latin-1 text (PEP 3333): "Zoë" sent as UTF-8 arrives as "ZoÃ«"
    as_wsgi_gives_it = "Zoë".encode().decode("latin-1")
    assert client.post(PINNED, json=payload("quote_valid.json"),
                       headers={"X-Routing-Key": as_wsgi_gives_it}).status_code == 200
    assert pricing.rows()[0]["routing_key"] == "Zoë"
    # bytes that are not UTF-8 ("Zoë" in Latin-1) are refused, not guessed at
    doc = assert_problem(client.post(PINNED, json=payload("quote_valid.json"), headers={"X-Routing-Key": "Zoë"}),
                         400, "bad-request")
    assert "UTF-8" in doc["detail"]
