"""Liveness and readiness."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, current_app

from modelplatform import bootstate, encoding
from modelplatform.errors import NotReady
from modelplatform.http import dataplane

bp = Blueprint("health", __name__)
BOOTSTATE_DIR = "modelplatform.bootstate_dir"


def register(app: Flask, bootstate_dir: Path | None) -> None:
    """The health endpoints; ``bootstate_dir`` is where sibling workers report a failed boot
    (``Settings.metrics_dir``: the master's per-run directory; None outside gunicorn)."""
    app.extensions[BOOTSTATE_DIR] = bootstate_dir
    app.register_blueprint(bp)


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: the process answers. Says nothing about dependencies."""
    return Response(encoding.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready: models are loaded (always true once the app exists) and every answer can be recorded.

    While the database is unreachable but the outage spool takes records (or spooled records are
    still waiting for replay) the answer is 200 with ``"status": "degraded"``: predictions are still
    durably recorded, and taking the instance out of rotation would turn a database blip into a full
    outage. When records can be stored nowhere (no database, no writable spool): 503.
    ``workers_failing_to_boot`` lists sibling workers retrying a failed boot (also "degraded").
    """
    plane = dataplane()
    audit = plane.audit.health()
    checks = {"models": "ok", "database": "ok" if audit.database else "unreachable"}
    # sibling workers of this master retrying a failed boot: this one serves, the host has less capacity
    failing = bootstate.failing_workers(current_app.extensions[BOOTSTATE_DIR])
    if failing:
        checks["workers"] = f"{len(failing)} failing to boot"
    if not audit.can_record:
        raise NotReady("the audit database is not reachable and no spool can take records", checks=checks,
                       audit_spool_depth=audit.spool_depth)
    return Response(encoding.dumps({
        "status": "degraded" if audit.degraded or failing else "ready",
        "checks": checks,
        "audit_spool_depth": audit.spool_depth,
        "workers_failing_to_boot": failing,
        "models": len(plane.registry),
        "versions": plane.registry.count_versions(),
        "config_revision": plane.registry.config.revision,
        # model → version → "store" (downloaded for this start or reload) or "cache" (this host's verified copy)
        "models_source": plane.registry.origins(),
    }), mimetype="application/json")
