"""The data plane: route → validate → predict → encode → record. Knows nothing of HTTP.

Every request that reaches a known model version produces exactly one
:class:`~modelplatform.audit.InferenceRecord`, whatever its outcome, and the outcome is returned
(or raised) only after that record is durably stored. What was recorded travels back up on the
returned :class:`~modelplatform.inference.Prediction` or on the raised error's ``recorded``.

Shadow copies of unpinned calls run off the response path on the data plane's own
:class:`~modelplatform.shadow.ShadowDispatcher`, which it creates when some model has shadow versions.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from modelplatform import encoding, failures
from modelplatform.audit import AuditLog, InferenceRecord, bounds
from modelplatform.audit.ids import new_inference_id
from modelplatform.audit.records import Status
from modelplatform.errors import DeadlineExceeded, InvalidInput, ModelFailed, ModelRejected, Rejected
from modelplatform.inference import Prediction, PredictRequest, Route, ShadowCall
from modelplatform.isolation import DeadlineExpired, ModelCaller, is_host_control_flow
from modelplatform.registry import LoadedVersion, Registry
from modelplatform.routing import DefaultRouter, Router
from modelplatform.shadow import DEFAULT_MAX_BYTES, DEFAULT_MAX_QUEUE, ShadowDispatcher

log = logging.getLogger(__name__)


class DataPlane:
    """Serves predictions from a :class:`Registry`, recording each through an :class:`AuditLog`.

    ``shadow_max_queue``/``shadow_max_bytes`` bound the shadow copies waiting to run (see
    :mod:`modelplatform.shadow`); ``shadows`` is None when no model has shadow versions.
    """

    def __init__(self, registry: Registry, audit: AuditLog, router: Router | None = None, *,
                 max_invalid_input_bytes: int = bounds.DEFAULT_MAX_INVALID_INPUT_BYTES,
                 predict_timeout: float | None = None, shadow_max_queue: int = DEFAULT_MAX_QUEUE,
                 shadow_max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.registry = registry
        self.audit = audit
        self.router: Router = router if router is not None else DefaultRouter()
        self.max_invalid_input_bytes = max_invalid_input_bytes
        # primaries run in the request's own greenlet or thread; shadows, which nobody waits for, in a
        # real OS thread under gevent so a CPU-heavy shadow never holds the event loop
        self.call_model = ModelCaller(predict_timeout)
        self.call_shadow = ModelCaller(predict_timeout, offload=True)
        # its threads start on first use, in the process that serves (after gunicorn's fork)
        self.shadows = ShadowDispatcher(self._run_shadow, max_queue=shadow_max_queue, max_bytes=shadow_max_bytes) \
            if any(model.spec.shadow for model in registry) else None

    def predict(self, request: PredictRequest) -> Prediction:
        """Answer one predict call on the model (and pinned version) the request was resolved to.

        Raises :class:`InvalidInput`/:class:`Rejected` (422), :class:`ModelFailed` (500: the model raised
        anything, ``BaseException`` included), :class:`DeadlineExceeded` (504: no answer within
        ``predict_timeout``), each with ``recorded`` set, and :class:`AuditUnavailable` (503) when the record
        cannot be stored (nothing recorded, nothing answered).

        An unpinned call whose outcome was recorded is then queued, without waiting, for each of the
        model's ``shadow`` versions other than the one that served it (see :mod:`modelplatform.shadow`).
        """
        started = time.perf_counter()
        loaded, route = self._route(request)
        if self.shadows is None or request.pinned is not None:
            return self._run(loaded, route, request, started, self.call_model)
        try:
            prediction = self._run(loaded, route, request, started, self.call_model)
        except (InvalidInput, Rejected, ModelFailed, DeadlineExceeded):
            # the primary's outcome is recorded: shadows see the same traffic, invalid input included
            # (a new version may accept what the live one refuses). AuditUnavailable sends no copy.
            self._send_to_shadows(request, route)
            raise
        self._send_to_shadows(request, route)
        return prediction

    def close(self) -> None:
        """Stop taking shadow copies and let the queued ones finish (bounded), then close the audit log."""
        if self.shadows is not None:
            self.shadows.close()
        self.audit.close()

    def _route(self, request: PredictRequest) -> tuple[LoadedVersion, Route]:
        if request.pinned is not None:
            return request.pinned, Route(request.pinned.version, "pinned", None, request.routing_key)
        route = self.router.route(request.model, request.payload, request.routing_key)
        return request.model.versions[route.version], route

    def _send_to_shadows(self, request: PredictRequest, primary: Route) -> None:
        assert self.shadows is not None
        model = request.model
        # the queue's byte budget counts request bodies: what a queued copy mostly holds on to
        size = len(request.raw_input) if request.raw_input is not None else len(request.input_json())
        for version in model.spec.shadow:
            if version != primary.version:
                route = Route(version, "shadow", primary.experiment, primary.routing_key)
                self.shadows.submit(ShadowCall(model.versions[version], route, request, size))

    def _run_shadow(self, call: ShadowCall) -> Prediction:
        """Run one queued shadow call (the dispatcher's runner); raises as :meth:`predict`."""
        return self._run(call.loaded, call.route, call.request, time.perf_counter(), self.call_shadow)

    def _run(self, loaded: LoadedVersion, route: Route, request: PredictRequest, started: float,
             call_model: ModelCaller) -> Prediction:
        """Validate, predict, encode and record on an already-routed version (primary or shadow)."""
        inference_id, created_at = new_inference_id()  # UUIDv7: time-ordered, same clock reading
        input_json = request.input_json()

        def record(status: Status, output_json: bytes | None = None, error: dict[str, Any] | None = None,
                   recorded_input: str = input_json) -> InferenceRecord:
            inference = InferenceRecord(
                id=inference_id, created_at=created_at, model=loaded.model, version=loaded.version,
                routed_by=route.routed_by, experiment=route.experiment, routing_key=route.routing_key,
                status=status, input_json=recorded_input,
                output_json=None if output_json is None else output_json.decode(),
                error_json=None if error is None else encoding.dumps(error).decode(),
                latency_ms=(time.perf_counter() - started) * 1000.0, request_id=request.request_id,
                artifact_sha256=loaded.sha256, api_key_id=request.api_key_id,
            )
            self.audit.record(inference)
            return inference

        violations = loaded.validator.violations(request.payload)
        if violations:
            errors = [v.as_dict() for v in violations]
            # the model never saw this input: what the row keeps of it is bounded (audit/bounds.py)
            recorded, clipped = bounds.invalid_input_json(input_json, self.max_invalid_input_bytes)
            row = record("invalid_input", error=bounds.invalid_input_error(errors, input_clipped=clipped),
                         recorded_input=recorded)
            raise InvalidInput(f"{len(errors)} schema violation(s) for {loaded.model} {loaded.version}",
                               recorded=row.summary, errors=errors)

        try:
            output = call_model(loaded.predictor, request.payload)
            output_json = encoding.encode_output(output)
        except ModelRejected as exc:
            row = record("rejected", error=failures.rejected(exc))
            raise Rejected(exc.message or exc.code, recorded=row.summary, code=exc.code) from None
        except encoding.UnencodableOutput as exc:
            row = record("error", error=failures.unencodable(exc))
            raise ModelFailed(f"{loaded.model} {loaded.version} returned an output that cannot be encoded as JSON",
                              recorded=row.summary) from None
        except DeadlineExpired as exc:
            log.warning("model exceeded its deadline", extra={"inference_id": inference_id, "model": loaded.model,
                                                              "version": loaded.version, "seconds": exc.seconds})
            row = record("error", error={"type": "DeadlineExceeded", "message": str(exc)})
            raise DeadlineExceeded(f"{loaded.model} {loaded.version} gave no answer within {exc.seconds:g} s",
                                   recorded=row.summary) from None
        except BaseException as exc:
            # a model is foreign code: anything it raises (SystemExit and KeyboardInterrupt included) is
            # its failure, not ours; only the host's own control flow (a greenlet being stopped) goes on
            if is_host_control_flow(exc):
                raise
            log.error("model raised", exc_info=exc, extra={"inference_id": inference_id, "model": loaded.model,
                                                           "version": loaded.version})
            row = record("error", error=failures.raised(exc))
            raise ModelFailed(f"{loaded.model} {loaded.version} failed on this input", recorded=row.summary) from None

        row = record("ok", output_json=output_json)
        return Prediction(inference_id, loaded.model, loaded.version, route.routed_by, route.experiment,
                          output_json, row.latency_ms)
