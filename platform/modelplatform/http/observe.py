"""Per-request observation: one JSON log line and the HTTP metrics for every request, and ``GET /metrics``."""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from modelplatform import logs
from modelplatform.metrics import Metrics

log = logging.getLogger("modelplatform.request")

MAX_LOGGED_PATH_CHARS = 256

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = current_app.extensions["modelplatform.metrics"].render()
    return Response(body, content_type=content_type)


def register(app: Flask, metrics: Metrics) -> None:
    """Register after :mod:`~modelplatform.http.context`, so the request id is known."""
    app.extensions["modelplatform.metrics"] = metrics
    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        logs.start_request()

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
            **logs.end_request(),
        }
        if g.get("api_key_id"):
            fields["api_key_id"] = g.api_key_id
        log.info("request", extra=fields)
        return response
