"""What flows through the data plane, as plain data: a :class:`PredictRequest` in, a :class:`Route` chosen, a
:class:`Prediction` out, and a :class:`ShadowCall` for each copy sent to a shadow version.

The HTTP layer resolves the model (and a pinned version) from the URL before it reads the body, so a request
arrives with them already looked up: the registry is consulted once per request, never again below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelplatform import encoding
from modelplatform.audit.records import InferenceSummary, RoutedBy
from modelplatform.registry import LoadedVersion, RegisteredModel


@dataclass(frozen=True)
class PredictRequest:
    """A predict call. ``pinned`` is the version the caller named in the URL (None: routed by the model's A/B
    test or default). ``raw_input`` is the body as received (already checked to be JSON); it is what the audit
    row stores, so numbers keep their exact digits."""

    model: RegisteredModel
    payload: Any
    request_id: str
    pinned: LoadedVersion | None = None
    routing_key: str | None = None
    raw_input: bytes | None = None
    api_key_id: str | None = None

    def input_json(self) -> str:
        """The input as the audit row records it: the body's own text, or the payload encoded."""
        if self.raw_input is not None:
            return self.raw_input.decode("utf-8")
        return encoding.dumps(self.payload).decode()


@dataclass(frozen=True)
class Route:
    """Which version serves a call, and why (``routed_by``; ``experiment`` when an A/B test chose)."""

    version: str
    routed_by: RoutedBy
    experiment: str | None = None
    routing_key: str | None = None


@dataclass(frozen=True)
class ShadowCall:
    """A copy of an unpinned call for one shadow version. ``size`` is what the copy holds on to (its body),
    counted against the shadow queue's byte budget."""

    loaded: LoadedVersion
    route: Route
    request: PredictRequest
    size: int


@dataclass(frozen=True)
class Prediction:
    """A successful, recorded inference; ``output_json`` is the model's output already encoded."""

    inference_id: str
    model: str
    version: str
    routed_by: RoutedBy
    experiment: str | None
    output_json: bytes
    latency_ms: float

    @property
    def summary(self) -> InferenceSummary:
        """What the request's log line says about it."""
        return InferenceSummary(self.inference_id, self.model, self.version, self.routed_by, "ok")

    def body(self) -> bytes:
        """The 200 response document, embedding the already-encoded output."""
        return encoding.dumps({
            "inference_id": self.inference_id,
            "model": self.model,
            "version": self.version,
            "routed_by": self.routed_by,
            "experiment": self.experiment,
            "output": encoding.Fragment(self.output_json),
        })
