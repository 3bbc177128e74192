"""Per-request observation: one JSON log line and the HTTP metrics for every request, and ``GET /metrics``.

The line's model, version, routing and outcome come from what the predict endpoint got back from the data
plane (the :class:`~modelplatform.inference.Prediction`, or the error's ``recorded``), noted with
:func:`note_inference`; requests that recorded nothing log them as null.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from modelplatform.audit.records import InferenceSummary
from modelplatform.metrics import Metrics

log = logging.getLogger("modelplatform.request")

MAX_LOGGED_PATH_CHARS = 256

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = current_app.extensions["modelplatform.metrics"].render()
    return Response(body, content_type=content_type)


def note_inference(summary: InferenceSummary | None) -> None:
    """What this request recorded, for its log line (None: nothing was recorded)."""
    g.inference = summary


def register(app: Flask, metrics: Metrics) -> None:
    """Register after :mod:`~modelplatform.http.context`, so the request id is known."""
    app.extensions["modelplatform.metrics"] = metrics
    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        # the route template, never the raw path: hostile paths must not create label values
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe_http(endpoint, request.method, response.status_code, seconds)
        fields = {
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": request.path[:MAX_LOGGED_PATH_CHARS],
            "status": response.status_code,
            "latency_ms": round(seconds * 1000.0, 3),
            "model": None, "version": None, "routed_by": None,
        }
        inference: InferenceSummary | None = g.get("inference")
        if inference is not None:
            fields.update(model=inference.model, version=inference.version, routed_by=inference.routed_by,
                          outcome=inference.status, inference_id=inference.inference_id)
        if g.get("api_key_id"):
            fields["api_key_id"] = g.api_key_id
        log.info("request", extra=fields)
        return response
