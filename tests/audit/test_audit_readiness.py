"""What clients see when the audit database is unreachable: spooled 200s or a 503, never an unrecorded 200."""
from __future__ import annotations

from pathlib import Path

from audit_support import UNREACHABLE_URL
from support import OBJECT_SCHEMA, Platform
from support.models import Pricer


def _platform(platform: Platform) -> Platform:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": OBJECT_SCHEMA})
    return platform


def test_unwritable_spool_during_an_outage_makes_predict_answer_503(platform: Platform, tmp_path: Path,
                                                                    payload) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("not a directory")
    app = _platform(platform).app(DATABASE_URL=UNREACHABLE_URL, AUDIT_SPOOL_DIR=blocker)
    client = app.test_client()

    response = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"))

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "urn:modelplatform:problem:audit-unavailable"
    assert "inference_id" not in problem and "X-Inference-ID" not in response.headers
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == "unreachable"


def test_outage_with_a_spool_answers_200_and_readyz_says_degraded(platform: Platform, tmp_path: Path,
                                                                  payload) -> None:
    app = _platform(platform).app(DATABASE_URL=UNREACHABLE_URL, AUDIT_SPOOL_DIR=tmp_path / "spool")
    client = app.test_client()

    response = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"))

    assert response.status_code == 200
    spooled = (tmp_path / "spool").glob("audit-*.jsonl")
    assert any(response.get_json()["inference_id"].encode() in f.read_bytes() for f in spooled)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "degraded"
    assert ready.get_json()["checks"] == {"models": "ok", "database": "unreachable"}
    assert ready.get_json()["audit_spool_depth"] == 1


def test_spool_can_be_turned_off(platform: Platform, payload) -> None:
    app = _platform(platform).app(DATABASE_URL=UNREACHABLE_URL, AUDIT_SPOOL_DIR="off")
    client = app.test_client()
    predict = client.post("/models/auto_pricing/versions/1.0.0/predict", json=payload("quote_valid.json"))
    assert predict.status_code == 503
    assert client.get("/readyz").status_code == 503


def test_readyz_is_ready_with_a_reachable_database(platform: Platform) -> None:
    client = _platform(platform).app().test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"
    assert ready.get_json()["checks"] == {"models": "ok", "database": "ok"}
    assert ready.get_json()["audit_spool_depth"] == 0
