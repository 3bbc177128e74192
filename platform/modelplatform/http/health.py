"""Liveness and readiness."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from modelplatform import encoding
from modelplatform.errors import NotReady

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: the process answers. Says nothing about dependencies."""
    return Response(encoding.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready: models are loaded (always true once the app exists) and the database answers; else 503."""
    plane = current_app.extensions["modelplatform.dataplane"]
    if not plane.audit.ping():
        raise NotReady("the audit database is not reachable", checks={"models": "ok", "database": "unreachable"})
    return Response(encoding.dumps({
        "status": "ready",
        "checks": {"models": "ok", "database": "ok"},
        "models": len(plane.registry),
        "versions": plane.registry.count_versions(),
        "config_revision": plane.registry.config.revision,
    }), mimetype="application/json")
