"""Logs: one JSON line per request with what served it, and JSON lines that hostile input cannot break."""
from __future__ import annotations

import json
import logging

import pytest
from flask.testing import FlaskClient

from modelplatform.logs import JsonFormatter

PINNED = "/models/auto_pricing/versions/1.0.0/predict"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name == "modelplatform.request"]
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]


def test_one_line_per_request_with_model_version_status_latency(client: FlaskClient, payload,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelplatform.request")
    ok = client.post(PINNED, json=payload("quote_valid.json"), headers={"X-Request-ID": "req-1"})
    bad = client.post("/models/auto_pricing/predict", json={"vehicle": 1}, headers={"X-Request-ID": "req-2"})
    missing = client.get("/models/nope", headers={"X-Request-ID": "req-3"})

    first, second, third = request_lines(caplog)
    assert first["request_id"] == "req-1" and first["status"] == 200
    assert (first["model"], first["version"], first["routed_by"], first["outcome"]) == (
        "auto_pricing", "1.0.0", "pinned", "ok")
    assert first["inference_id"] == ok.get_json()["inference_id"]
    assert first["latency_ms"] > 0 and first["level"] == "INFO" and first["ts"]
    assert (second["status"], second["version"], second["routed_by"], second["outcome"]) == (
        422, "1.1.0", "default", "invalid_input")
    assert second["inference_id"] == bad.get_json()["inference_id"]
    assert (third["status"], third["model"], third["version"]) == (404, None, None)
    assert missing.status_code == 404


def test_hostile_strings_cannot_forge_log_lines(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelplatform.request")
    client.get('/models/x%0A{"level":%20"CRITICAL"}' + "y" * 1000)  # %0A: a newline once decoded
    (line,) = request_lines(caplog)
    assert line["path"].startswith('/models/x\n{"level"')  # kept as data, escaped on output
    assert len(line["path"]) == 256
    assert line["level"] == "INFO"


def test_formatter_keeps_extra_fields_and_exceptions() -> None:
    logger = logging.getLogger("modelplatform.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord("modelplatform.test", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                   exc_info=__import__("sys").exc_info(), extra={"model": "m", "bytes": 3})
    doc = json.loads(JsonFormatter().format(record))
    assert (doc["message"], doc["model"], doc["bytes"], doc["level"]) == ("failed x", "m", 3, "ERROR")
    assert "ValueError: boom" in doc["exc"]
