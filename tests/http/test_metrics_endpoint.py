"""``GET /metrics`` in one process: predictions by outcome, latencies, audit writes, what is loaded."""
from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from support.memory import MemoryAuditLog, MemoryPlatform

PINNED = "/models/auto_pricing/versions/1.0.0/predict"


def samples(client: FlaskClient) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_predictions_are_counted_by_model_version_status_and_routing(client: FlaskClient, payload) -> None:
    assert client.post(PINNED, json=payload("quote_valid.json")).status_code == 200
    assert client.post(PINNED, json=payload("quote_valid.json")).status_code == 200
    assert client.post(PINNED, json={"vehicle": 3}).status_code == 422
    assert client.post(PINNED, json=payload("quote_unknown_vehicle.json")).status_code == 422
    body = {**payload("quote_valid.json"), "annual_km": 1000}
    assert client.post("/models/auto_pricing/predict", json=body).status_code == 200

    found = samples(client)
    pinned = {"model": "auto_pricing", "version": "1.0.0", "routed_by": "pinned"}
    assert value(found, "modelplatform_predictions_total", status="ok", **pinned) == 2
    assert value(found, "modelplatform_predictions_total", status="invalid_input", **pinned) == 1
    assert value(found, "modelplatform_predictions_total", status="rejected", **pinned) == 1
    assert value(found, "modelplatform_predictions_total", model="auto_pricing", version="1.1.0",
                 routed_by="default", status="ok") == 1
    assert value(found, "modelplatform_predict_latency_seconds_count", **pinned) == 4
    assert value(found, "modelplatform_audit_write_seconds_count") == 5
    assert value(found, "modelplatform_audit_write_seconds_sum") > 0
    assert value(found, "modelplatform_audit_write_failures_total") == 0


def test_loaded_versions_and_config_revision_are_exposed(client: FlaskClient, pricing: MemoryPlatform) -> None:
    found = samples(client)
    assert value(found, "modelplatform_model_versions_loaded", model="auto_pricing") == 2
    revisions = [labels for (name, labels), v in found.items() if name == "modelplatform_config_info" and v == 1]
    (labels,) = revisions
    assert dict(labels)["source"] == pricing.registry().config.source
    assert len(dict(labels)["revision"]) == 12


def test_http_requests_are_labelled_by_route_template_never_by_raw_path(client: FlaskClient) -> None:
    client.get("/models/auto_pricing")
    client.get("/models/nope")
    client.get("/no/such/\x01path/" + "x" * 300)
    found = samples(client)
    assert value(found, "modelplatform_http_requests_total", endpoint="/models/<name>", method="GET", status="200") == 1
    assert value(found, "modelplatform_http_requests_total", endpoint="/models/<name>", method="GET", status="404") == 1
    assert value(found, "modelplatform_http_requests_total", endpoint="unmatched", method="GET", status="404") == 1
    assert not any("x" * 50 in str(labels) for _, labels in found)


def test_audit_failures_are_counted_and_nothing_else(pricing: MemoryPlatform, payload) -> None:
    client = pricing.app(audit=MemoryAuditLog(reachable=False)).test_client()
    assert client.post(PINNED, json=payload("quote_valid.json")).status_code == 503
    found = samples(client)
    assert value(found, "modelplatform_audit_write_failures_total") == 1
    assert value(found, "modelplatform_audit_write_seconds_count") == 1
    assert value(found, "modelplatform_predictions_total", model="auto_pricing", version="1.0.0",
                 routed_by="pinned", status="ok") == 0
