"""The record of one inference, as the data plane hands it to an :class:`~modelplatform.audit.AuditLog`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

RoutedBy = Literal["pinned", "default", "ab_test", "shadow"]
Status = Literal["ok", "invalid_input", "rejected", "error"]


@dataclass(frozen=True)
class InferenceRecord:
    """One row of ``inferences``. JSON columns arrive pre-encoded (UTF-8 JSON text) to avoid re-encoding."""

    id: str
    created_at: datetime
    model: str
    version: str
    routed_by: RoutedBy
    experiment: str | None
    routing_key: str | None
    status: Status
    input_json: str
    output_json: str | None
    error_json: str | None
    latency_ms: float
    request_id: str
    artifact_sha256: str
    api_key_id: str | None = None  # which API key called (its id, never the key); None when auth is off

    def as_params(self) -> dict[str, object]:
        return {
            "id": self.id, "created_at": self.created_at, "model": self.model, "version": self.version,
            "routed_by": self.routed_by, "experiment": self.experiment, "routing_key": self.routing_key,
            "status": self.status, "input": self.input_json, "output": self.output_json,
            "error": self.error_json, "latency_ms": self.latency_ms, "request_id": self.request_id,
            "artifact_sha256": self.artifact_sha256, "api_key_id": self.api_key_id,
        }

    @property
    def summary(self) -> InferenceSummary:
        return InferenceSummary(self.id, self.model, self.version, self.routed_by, self.status)


@dataclass(frozen=True)
class InferenceSummary:
    """What was recorded for a request, as its log line reports it (``status`` is the log's ``outcome``).

    Carried up to the HTTP layer on the data plane's return value (:class:`~modelplatform.inference.Prediction`)
    or on the error it raises (:attr:`~modelplatform.errors.ProblemError.recorded`), never through a side channel.
    """

    inference_id: str
    model: str
    version: str
    routed_by: RoutedBy
    status: Status
