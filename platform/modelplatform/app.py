"""The application factory: the one place where settings, adapters, registry and HTTP are wired.

``gunicorn 'modelplatform.app:create_app()'`` calls it once in every worker, after the fork: each worker
owns its database connections, threads and metrics, and takes the models the master loaded before forking
(:mod:`modelplatform.handoff`) when they were prepared for its config. Anywhere else (tests, a Flask test
client) it loads the models from the verified artifact cache, downloading what the cache lacks. Nothing here
runs at import time.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from flask import Flask

from modelplatform import encoding, handoff
from modelplatform.artifact_cache import ArtifactCache
from modelplatform.audit import AuditLog
from modelplatform.audit.group_commit import GroupCommitAuditLog
from modelplatform.config import load_config
from modelplatform.dataplane import DataPlane
from modelplatform.errors import StartupError
from modelplatform.host_artifacts import CachedArtifacts
from modelplatform.http import DATAPLANE, context, docs, health, models, observe, openapi, problems
from modelplatform.metrics import MeteredAuditLog, Metrics
from modelplatform.registry import Registry, load_registry
from modelplatform.routing import ABRouter
from modelplatform.settings import POOL_MODE_SESSION, Settings

if TYPE_CHECKING:
    from modelplatform.store import S3ModelStore

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, store: S3ModelStore | None = None,
               audit: AuditLog | None = None, registry: Registry | None = None) -> Flask:
    """Build the service: read settings (environment by default), load and verify every active model
    version, and serve them. :func:`close_app` releases what it started.

    Collaborators may be passed in instead of built from ``settings``: ``store`` (where cache misses are
    downloaded from), ``audit`` (where inference records go; else the group-commit writer on
    ``settings.database_url``) and ``registry`` (the models to serve, already loaded: then nothing is
    fetched or loaded, and ``settings.config_path`` is not read).

    Raises :class:`~modelplatform.errors.StartupError` (a :class:`~modelplatform.config.ConfigError`
    for a broken config) naming every problem, so a bad deploy never starts serving.
    """
    settings = settings if settings is not None else Settings.from_env()
    if audit is None and settings.database_url is None:
        raise StartupError(["DATABASE_URL is not set (postgresql://user:pass@host/db), and no audit log was given"])
    if registry is not None:
        how = "models given to create_app"
    else:
        registry, how = _registry(settings, store)
    encoding.warm_up()  # not on the first request's time (a no-op where the master did it before forking)
    metrics = Metrics(settings.metrics_dir)
    metrics.loaded(registry)
    if audit is None:
        assert settings.database_url is not None
        writer = GroupCommitAuditLog(settings.database_url, spool_dir=settings.audit_spool_dir,
                                     prepare=settings.database_pool_mode == POOL_MODE_SESSION, meter=metrics)
        writer.start()  # replays spools left by a crashed process before serving
        audit = writer

    log.info("serving %d model(s), %d version(s) from %s, config %s revision %s; %s",
             len(registry), registry.count_versions(), settings.store or "no store", settings.config_label,
             registry.config.revision, how)

    app = Flask("modelplatform")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[DATAPLANE] = DataPlane(
        registry, MeteredAuditLog(audit, metrics), ABRouter.from_registry(registry),
        max_invalid_input_bytes=settings.audit_max_invalid_input_bytes, predict_timeout=settings.predict_timeout)

    api_keys = settings.api_keys
    context.register(app, settings.max_body_bytes)
    observe.register(app, metrics)  # before auth, so refused requests are logged and counted too
    if api_keys is not None:
        context.require_api_keys(app, api_keys)
    log.info("API keys: %s", f"{len(api_keys)} key(s) required on model endpoints" if api_keys else "off (open)")
    problems.register(app)
    app.register_blueprint(models.bp)
    health.register(app, settings.metrics_dir)
    openapi.register(app, registry, secured=api_keys is not None)
    app.register_blueprint(docs.bp)
    return app


def close_app(app: Flask) -> None:
    """Release what :func:`create_app` started: the shadow workers finish what is queued (bounded), then the
    audit writer writes its queue, stops and disconnects. Called at worker exit (``gunicorn_conf.worker_exit``)
    and by the tests for every app they build. Idempotent; the app must not serve afterwards."""
    plane = app.extensions.get(DATAPLANE)
    if plane is not None:
        plane.close()


def _registry(settings: Settings, store: S3ModelStore | None) -> tuple[Registry, str]:
    """The models to serve, and a phrase saying how they were obtained (for the startup log line).

    Raises :class:`~modelplatform.errors.StartupError` naming every version that cannot be served.
    """
    prepared = handoff.for_worker(settings.config_path)
    if prepared is not None and prepared.registry is not None:
        return prepared.registry, "models preloaded by the master"
    config = replace(load_config(settings.config_path), source=settings.config_label)

    def the_store() -> S3ModelStore:  # built only if the cache lacks something: boto3 is slow to import
        from modelplatform.store import S3ModelStore

        if store is not None:
            return store
        assert settings.store is not None
        return S3ModelStore(settings.store)

    # no store at all: versions missing from the cache are refused ("no verified copy in the artifact cache")
    source = CachedArtifacts(ArtifactCache(settings.artifact_cache_dir),
                             store=the_store if store is not None or settings.store is not None else None,
                             origins=prepared.origins if prepared is not None else None)
    registry = load_registry(config, source, location=settings.store or "")
    return registry, f"models loaded from {settings.artifact_cache_dir}"
