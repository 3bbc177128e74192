"""Liveness and readiness (http/health.py): ready while every answer can be recorded, "degraded" (still 200)
while records go to the outage spool, 503 when they can go nowhere. How the real writer knows which is tested
with Postgres in tests/audit/ (test_group_commit.py, test_audit_readiness.py, test_readyz_cost.py)."""
from __future__ import annotations

from flask.testing import FlaskClient

from support.memory import MemoryAuditLog, MemoryPlatform
from support.problems import assert_problem


def test_ready_when_models_are_loaded_and_the_database_answers(client: FlaskClient, pricing: MemoryPlatform) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready", "checks": {"models": "ok", "database": "ok"}, "audit_spool_depth": 0,
        "workers_failing_to_boot": [], "models": 1, "versions": 2,
        "config_revision": pricing.registry().config.revision,
        "models_source": {"auto_pricing": {"1.0.0": "store", "1.1.0": "store"}},
    }
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_degraded_but_serving_while_records_go_to_the_spool(pricing: MemoryPlatform, payload) -> None:
    outage = MemoryAuditLog(reachable=False, spool=True)
    client = pricing.app(audit=outage).test_client()
    answer = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"))
    assert answer.status_code == 200
    assert [r.id for r in outage.spooled] == [answer.get_json()["inference_id"]]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    doc = ready.get_json()
    assert (doc["status"], doc["checks"], doc["audit_spool_depth"]) == (
        "degraded", {"models": "ok", "database": "unreachable"}, 1)


def test_not_ready_when_records_can_go_nowhere(pricing: MemoryPlatform) -> None:
    client = pricing.app(audit=MemoryAuditLog(reachable=False, spool=False)).test_client()
    doc = assert_problem(client.get("/readyz"), 503, "not-ready")
    assert (doc["checks"], doc["audit_spool_depth"]) == ({"models": "ok", "database": "unreachable"}, 0)
    assert client.get("/healthz").status_code == 200
