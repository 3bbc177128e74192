"""End to end: the real Procfile web command (gunicorn, two workers) answering over HTTP."""
from __future__ import annotations

import requests

from support import Platform
from support.models import Pricer
from support.processes import gunicorn_web


def test_procfile_web_command_serves_predictions_and_records_them(platform: Platform) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")},
                 schemas={"1.X.X": {"type": "object", "required": ["vehicle", "driver_age"]}})
    with gunicorn_web(platform.env()) as base:
        ok = requests.post(f"{base}/models/auto_pricing/predict", json={"vehicle": "van", "driver_age": 30},
                           headers={"X-Request-ID": "e2e-1"}, timeout=10)
        invalid = requests.post(f"{base}/models/auto_pricing/predict", json={"vehicle": "van"}, timeout=10)
        missing = requests.get(f"{base}/nothing-here", timeout=10)
        models = requests.get(f"{base}/models", timeout=10)

    assert ok.status_code == 200
    assert ok.json()["output"] == {"premium": 360.0, "currency": "EUR", "tag": "v1"}
    assert ok.headers["X-Model-Version"] == "1.0.0"
    assert ok.headers["X-Request-ID"] == "e2e-1"
    assert invalid.status_code == 422
    assert invalid.headers["Content-Type"] == "application/problem+json"
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"
    assert models.json()["models"][0]["name"] == "auto_pricing"

    rows = {str(r["id"]): r for r in platform.rows()}
    assert set(rows) == {ok.json()["inference_id"], invalid.json()["inference_id"]}
    assert rows[ok.json()["inference_id"]]["request_id"] == "e2e-1"
