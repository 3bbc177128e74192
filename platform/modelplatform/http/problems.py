"""The one error handler: every error, ours or Werkzeug's, becomes RFC 9457 problem+json. Never HTML."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from modelplatform import encoding
from modelplatform.errors import PayloadTooLarge, ProblemError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(encoding.dumps(body), status=body["status"], mimetype=PROBLEM_JSON)
    if "inference_id" in body:
        response.headers["X-Inference-ID"] = body["inference_id"]
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_http_exception(exc: HTTPException) -> Response:
    if isinstance(exc, RequestEntityTooLarge):
        return problem_response(PayloadTooLarge(
            f"request body exceeds the limit of {g.get('max_body_bytes', 'the configured')} bytes").to_problem())
    body = {"type": "about:blank", "title": exc.name, "status": exc.code or 500,
            "detail": exc.description or exc.name}
    headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    return problem_response(body, headers)


def handle_error(exc: Exception) -> Response:
    if isinstance(exc, ProblemError):
        if exc.status >= 500:
            log.warning("problem %s: %s", exc.status, exc.detail, extra={"inference_id": exc.inference_id})
        return problem_response(exc.to_problem(), exc.headers)
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    log.exception("unhandled error")
    return problem_response({"type": "about:blank", "title": "Internal Server Error", "status": 500,
                             "detail": "unexpected error; it has been logged"})


def register(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)
