"""The data plane: route → validate → predict → encode → record. Knows nothing of HTTP.

Every request that reaches a known model version produces exactly one
:class:`~modelplatform.audit.InferenceRecord`, whatever its outcome, and the outcome is returned
(or raised) only after that record is durably stored.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from modelplatform import encoding
from modelplatform.audit import AuditLog, InferenceRecord, bounds
from modelplatform.audit.ids import new_inference_id
from modelplatform.audit.records import Status
from modelplatform.errors import DeadlineExceeded, InvalidInput, ModelFailed, ModelRejected, Rejected
from modelplatform.isolation import DeadlineExpired, ModelCaller, is_host_control_flow
from modelplatform.registry import LoadedVersion, Registry
from modelplatform.routing import DefaultRouter, Route, Router
from modelplatform.shadow import ShadowCall, ShadowDispatcher

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class PredictRequest:
    """A predict call. ``raw_input`` is the body as received (already checked to be JSON); it is what
    the audit row stores, so numbers keep their exact digits."""

    model: str
    payload: Any
    request_id: str
    version: str | None = None
    routing_key: str | None = None
    raw_input: bytes | None = None
    api_key_id: str | None = None


@dataclass(frozen=True)
class Prediction:
    inference_id: str
    model: str
    version: str
    routed_by: str
    experiment: str | None
    output_json: bytes
    latency_ms: float

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


class DataPlane:
    """Serves predictions from a :class:`Registry`, recording each through an :class:`AuditLog`."""

    def __init__(self, registry: Registry, audit: AuditLog, router: Router | None = None,
                 shadows: ShadowDispatcher | None = None, *,
                 max_invalid_input_bytes: int = bounds.DEFAULT_MAX_INVALID_INPUT_BYTES,
                 predict_timeout: float | None = None) -> None:
        self.registry = registry
        self.audit = audit
        self.router = router if router is not None else DefaultRouter()
        self.shadows = shadows
        self.max_invalid_input_bytes = max_invalid_input_bytes
        # primaries run in the request's own greenlet or thread; shadows, which nobody waits for, in a
        # real OS thread under gevent so a CPU-heavy shadow never holds the event loop
        self.call_model = ModelCaller(predict_timeout)
        self.call_shadow = ModelCaller(predict_timeout, offload=True)

    def route(self, request: PredictRequest) -> tuple[LoadedVersion, Route]:
        """Resolve the version. Raises :class:`UnknownModel`/:class:`UnknownVersion` (nothing is recorded)."""
        model = self.registry.model(request.model)
        if request.version is not None:
            return model.version(request.version), Route(request.version, "pinned", None, request.routing_key)
        route = self.router.route(model, request.payload, request.routing_key)
        return model.versions[route.version], route

    def predict(self, request: PredictRequest) -> Prediction:
        """Answer one predict call.

        Raises :class:`UnknownModel`/:class:`UnknownVersion` (404, not recorded),
        :class:`InvalidInput`/:class:`Rejected` (422), :class:`ModelFailed` (500: the model raised
        anything, ``BaseException`` included), :class:`DeadlineExceeded` (504: no answer within
        ``predict_timeout``), and :class:`AuditUnavailable` (503) when the record cannot be stored.

        An unpinned call whose outcome was recorded is then queued, without waiting, for each of the
        model's ``shadow`` versions other than the one that served it (see :mod:`modelplatform.shadow`).
        """
        started = time.perf_counter()
        loaded, route = self.route(request)
        if self.shadows is None or request.version is not None:
            return self.run(loaded, route, request, started)
        try:
            prediction = self.run(loaded, route, request, started)
        except (InvalidInput, Rejected, ModelFailed, DeadlineExceeded):
            # the primary's outcome is recorded: shadows see the same traffic, invalid input included
            # (a new version may accept what the live one refuses). AuditUnavailable sends no copy.
            self._send_to_shadows(request, route)
            raise
        self._send_to_shadows(request, route)
        return prediction

    def run_shadow(self, call: ShadowCall) -> Prediction:
        """Run one queued shadow call (the :class:`ShadowDispatcher`'s runner); raises as :meth:`run`."""
        return self.run(call.loaded, call.route, call.request, time.perf_counter(), self.call_shadow)

    def _send_to_shadows(self, request: PredictRequest, primary: Route) -> None:
        assert self.shadows is not None
        model = self.registry.model(request.model)
        # the queue's byte budget counts request bodies: what a queued copy mostly holds on to
        size = len(request.raw_input) if request.raw_input is not None else len(self._input_json(request))
        for version in model.spec.shadow:
            if version != primary.version:
                route = Route(version, "shadow", primary.experiment, primary.routing_key)
                self.shadows.submit(ShadowCall(model.versions[version], route, request, size))

    def run(self, loaded: LoadedVersion, route: Route, request: PredictRequest, started: float,
            call_model: ModelCaller | None = None) -> Prediction:
        """Validate, predict, encode and record on an already-routed version (also used for shadow calls)."""
        inference_id, created_at = new_inference_id()  # UUIDv7: time-ordered, same clock reading
        input_json = self._input_json(request)

        def record(status: Status, output_json: bytes | None = None, error: dict[str, Any] | None = None,
                   recorded_input: str = input_json) -> float:
            latency_ms = (time.perf_counter() - started) * 1000.0
            self.audit.record(InferenceRecord(
                id=inference_id, created_at=created_at, model=loaded.model, version=loaded.version,
                routed_by=route.routed_by, experiment=route.experiment, routing_key=route.routing_key,
                status=status, input_json=recorded_input,
                output_json=None if output_json is None else output_json.decode(),
                error_json=None if error is None else encoding.dumps(error).decode(),
                latency_ms=latency_ms, request_id=request.request_id, artifact_sha256=loaded.sha256,
                api_key_id=request.api_key_id,
            ))
            return latency_ms

        violations = loaded.validator.violations(request.payload)
        if violations:
            errors = [v.as_dict() for v in violations]
            # the model never saw this input: what the row keeps of it is bounded (audit/bounds.py)
            recorded, clipped = bounds.invalid_input_json(input_json, self.max_invalid_input_bytes)
            record("invalid_input", error=bounds.invalid_input_error(errors, input_clipped=clipped),
                   recorded_input=recorded)
            raise InvalidInput(
                f"{len(errors)} schema violation(s) for {loaded.model} {loaded.version}",
                inference_id=inference_id, errors=errors,
            )

        try:
            output = (call_model or self.call_model)(loaded.predictor, request.payload)
            output_json = encoding.encode_output(output)
        except ModelRejected as exc:
            record("rejected", error={"code": exc.code, "message": exc.message})
            raise Rejected(exc.message or exc.code, inference_id=inference_id, code=exc.code) from None
        except encoding.UnencodableOutput as exc:
            record("error", error={"type": "UnencodableOutput", "message": _clip(str(exc))})
            raise ModelFailed(f"{loaded.model} {loaded.version} returned an output that cannot be encoded as JSON",
                              inference_id=inference_id) from None
        except DeadlineExpired as exc:
            log.warning("model exceeded its deadline", extra={"inference_id": inference_id, "model": loaded.model,
                                                              "version": loaded.version, "seconds": exc.seconds})
            record("error", error={"type": "DeadlineExceeded", "message": str(exc)})
            raise DeadlineExceeded(f"{loaded.model} {loaded.version} gave no answer within {exc.seconds:g} s",
                                   inference_id=inference_id) from None
        except BaseException as exc:
            # a model is foreign code: anything it raises (SystemExit and KeyboardInterrupt included) is
            # its failure, not ours; only the host's own control flow (a greenlet being stopped) goes on
            if is_host_control_flow(exc):
                raise
            log.error("model raised", exc_info=exc, extra={"inference_id": inference_id, "model": loaded.model,
                                                           "version": loaded.version})
            record("error", error={"type": type(exc).__name__, "message": _message(exc)})
            raise ModelFailed(f"{loaded.model} {loaded.version} failed on this input",
                              inference_id=inference_id) from None

        latency_ms = record("ok", output_json=output_json)
        return Prediction(inference_id, loaded.model, loaded.version, route.routed_by, route.experiment,
                          output_json, latency_ms)

    @staticmethod
    def _input_json(request: PredictRequest) -> str:
        if request.raw_input is not None:
            return request.raw_input.decode("utf-8")
        return encoding.dumps(request.payload).decode()


def _message(exc: BaseException) -> str:
    """``str(exc)``, clipped; a model's exception whose ``__str__`` itself raises still gets its row."""
    try:
        return _clip(str(exc))
    except Exception:  # noqa: BLE001
        return f"<{type(exc).__name__} whose message cannot be read>"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_MESSAGE_CHARS else text[:MAX_ERROR_MESSAGE_CHARS] + "…"
