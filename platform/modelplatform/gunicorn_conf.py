"""Production gunicorn settings (``gunicorn -c python:modelplatform.gunicorn_conf``).

Every value comes from :class:`~modelplatform.settings.ServerSettings` (``PORT``, ``HOST``, ``WEB_CONCURRENCY``,
``WEB_WORKER``, ``WEB_CONNECTIONS``, ``WEB_THREADS``, ``WEB_TIMEOUT``, ``WEB_HEADER_TIMEOUT``, ``WEB_BODY_TIMEOUT``,
``WEB_KEEPALIVE``, ``WEB_BOOT_RETRY_MAX``, ``LOG_LEVEL``), read once when gunicorn imports this module in the
master; the worker classes take their deadlines from :data:`server` (inherited at the fork). The README's
settings table documents them. What must survive a config reload (HUP) lives in the master's environment
(:mod:`modelplatform.forkenv`) and in :mod:`modelplatform.handoff` (see :mod:`modelplatform.reload`).
"""
from __future__ import annotations

from typing import Any

from modelplatform.errors import StartupError
from modelplatform.settings import WORKER_CLASSES, ServerSettings

try:
    server = ServerSettings.from_env()
except StartupError as exc:  # every problem at once, instead of a traceback from the first int() that fails
    raise SystemExit("invalid server settings:\n  " + "\n  ".join(exc.problems)) from None

bind = f"{server.host}:{server.port}"
workers = server.workers
# gevent (default): a greenlet per connection, so slow or idle clients cost no thread, with read
# deadlines; gthread: a thread per in-flight request (WEB_THREADS). Both answer gunicorn's own errors
# as problem+json and retry a failed boot; see modelplatform.gunicorn_worker and docs/operations.md
worker_class = WORKER_CLASSES[server.worker]
worker_connections = server.connections
threads = server.threads
# a worker whose event loop is held this long (a model computing without yielding) is aborted and replaced
timeout = server.timeout
graceful_timeout = 30
keepalive = max(1, round(server.limits.keepalive))
# The master loads the models (modelplatform.reload, from on_starting/on_reload) and workers inherit them at
# the fork; the app itself (connections, threads, metrics) is built by create_app() in each worker, so no
# preload_app
preload_app = False
# gunicorn ≥ 24 opens a control socket at one fixed path per user; two masters on a machine would
# fight over it, and nothing here uses it
control_socket_disable = True

# one JSON object per line on stderr, for the app and gunicorn alike; the app writes its own
# per-request line, so gunicorn's access log is off
accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "modelplatform.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": server.log_level, "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}


def on_starting(arbiter: Any) -> None:
    """Before listening or forking: runtime directory, artifacts fetched and verified, models loaded
    (modelplatform.reload); exits listing every problem when the deploy cannot serve."""
    from modelplatform import reload

    reload.on_starting()


def on_reload(arbiter: Any) -> None:
    """HUP, before any worker is replaced: the same steps for the edited config, or a logged refusal."""
    from modelplatform import reload

    reload.on_reload()


def on_exit(arbiter: Any) -> None:
    """The master stops: its runtime directory (config snapshots, metric files) goes with it."""
    from modelplatform import reload

    reload.on_exit()


def child_exit(arbiter: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # in the master only once a worker has exited

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(arbiter: Any, worker: Any) -> None:
    """A worker stops: its app's shadow copies and audit queue are finished and its connection closed."""
    from flask import Flask

    from modelplatform.app import close_app

    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):  # None when the worker never booted
        close_app(app)
