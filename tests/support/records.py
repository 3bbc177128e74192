"""Inference records built like the data plane builds them (shared by the audit, migration and scale tests)."""
from __future__ import annotations

from typing import Any

from modelplatform.audit import InferenceRecord
from modelplatform.audit.ids import new_inference_id


def make_record(**overrides: Any) -> InferenceRecord:
    inference_id, created_at = new_inference_id()
    fields: dict[str, Any] = {
        "id": inference_id, "created_at": created_at, "model": "auto_pricing",
        "version": "1.0.0", "routed_by": "default", "experiment": None, "routing_key": None, "status": "ok",
        "input_json": '{"vehicle": "van"}', "output_json": '{"premium": 405.00}', "error_json": None,
        "latency_ms": 1.5, "request_id": "req-1", "artifact_sha256": "ab" * 32,
    }
    fields.update(overrides)
    return InferenceRecord(**fields)
