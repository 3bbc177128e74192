"""Per-request context: the request id, echoed or generated, on every response, and the caller's API key id."""
from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from modelplatform.auth import ApiKeys

REQUEST_ID_HEADER = "X-Request-ID"
# blueprints whose routes need an API key when keys are configured; health, metrics, openapi and docs stay open
PROTECTED_BLUEPRINTS = frozenset({"models"})
# echoed ids end up in logs and the audit table: bound them and keep them printable
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def request_id_from(header: str | None) -> str:
    """The caller's id when it is 1–128 safe characters, else a fresh UUID."""
    if header and _REQUEST_ID_RE.match(header):
        return header
    return str(uuid.uuid4())


def register(app: Flask, max_body_bytes: int) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.max_body_bytes = max_body_bytes

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id_from(None)
        return response


def require_api_keys(app: Flask, keys: ApiKeys) -> None:
    """Answer 401 on protected routes unless the request carries one of ``keys``; sets ``g.api_key_id``."""
    @app.before_request
    def _authenticate() -> None:
        if request.blueprint in PROTECTED_BLUEPRINTS:
            g.api_key_id = keys.identify(request.headers.get("Authorization"))
