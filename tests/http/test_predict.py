"""Predict: the 200 path, routing by default and by pin, headers, and the row behind every answer."""
from __future__ import annotations

import uuid

from flask.testing import FlaskClient

from support import Platform


def test_unpinned_predict_uses_default_and_records_a_row(client: FlaskClient, pricing: Platform, payload) -> None:
    body = {**payload("quote_valid.json"), "annual_km": 12000}
    response = client.post("/models/auto_pricing/predict", json=body, headers={"X-Request-ID": "req-123"})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["model"] == "auto_pricing"
    assert doc["version"] == "1.1.0"
    assert doc["routed_by"] == "default"
    assert doc["experiment"] is None
    assert doc["output"] == {"premium": 418.5, "currency": "EUR", "tag": "v2"}
    assert uuid.UUID(doc["inference_id"])
    assert response.headers["X-Model-Version"] == "1.1.0"
    assert response.headers["X-Request-ID"] == "req-123"

    (row,) = pricing.rows()
    assert str(row["id"]) == doc["inference_id"]
    assert row["status"] == "ok"
    assert row["routed_by"] == "default"
    assert row["version"] == "1.1.0"
    assert row["input"] == body
    assert row["output"] == doc["output"]
    assert row["error"] is None
    assert row["request_id"] == "req-123"
    assert row["artifact_sha256"] == pricing.config["auto_pricing"]["sha256"]["1.1.0"]
    assert row["latency_ms"] > 0


def test_pinned_predict_uses_that_versions_schema_and_model(client: FlaskClient, pricing: Platform,
                                                            payload) -> None:
    response = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_young_hatchback.json"))

    assert response.status_code == 200
    doc = response.get_json()
    assert (doc["version"], doc["routed_by"], doc["output"]["tag"]) == ("1.0.0", "pinned", "v1")
    assert doc["output"]["premium"] == 450.0  # 300 × 1.00 × 1.5 for a driver under 25
    assert response.headers["X-Model-Version"] == "1.0.0"
    (row,) = pricing.rows()
    assert (row["routed_by"], row["version"], row["status"]) == ("pinned", "1.0.0", "ok")


def test_decimal_output_keeps_exact_digits(client: FlaskClient, payload) -> None:
    response = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"))
    # 300.00 × 1.35 = 405.00: the Decimal's digits are written as they are, not through a float
    assert b'"premium":405.00' in response.data


def test_request_id_is_generated_when_absent_or_unsafe(client: FlaskClient, payload) -> None:
    plain = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"))
    assert uuid.UUID(plain.headers["X-Request-ID"])

    hostile = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"),
                          headers={"X-Request-ID": "x" * 500})
    assert uuid.UUID(hostile.headers["X-Request-ID"])


def test_json_with_charset_and_vendor_json_types_are_accepted(client: FlaskClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.pricing+json"):
        response = client.post("/models/auto_pricing/versions/1.0.0/predict",
                               data='{"vehicle": "van", "driver_age": 30}', content_type=content_type)
        assert response.status_code == 200, content_type
