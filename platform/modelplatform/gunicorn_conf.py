"""Production gunicorn settings (``gunicorn -c python:modelplatform.gunicorn_conf``).

Every value can be overridden from the environment (``PORT``, ``WEB_CONCURRENCY``, ``WEB_WORKER``,
``WEB_CONNECTIONS``, ``WEB_THREADS``, ``WEB_TIMEOUT``, ``WEB_HEADER_TIMEOUT``, ``WEB_BODY_TIMEOUT``,
``WEB_KEEPALIVE``, ``WEB_BOOT_RETRY_MAX``, ``LOG_LEVEL``); the README's settings table documents them.
gunicorn re-executes this module on every HUP, so it keeps no state of its own: what must survive a
reload lives in the master's environment and in :mod:`modelplatform.handoff` (see
:mod:`modelplatform.reload`).
"""
import logging
import os

from modelplatform.gunicorn_worker import WORKER_CLASSES, read_limits


def _server_env() -> dict[str, object]:
    """The environment's server settings, checked together: every problem is listed at once (as the app
    does for its own settings), instead of a traceback from the first ``int()`` that fails."""
    values: dict[str, object] = {}
    problems = []
    for name, default, low in (("PORT", "8000", 1), ("WEB_CONCURRENCY", "2", 1), ("WEB_THREADS", "8", 1),
                               ("WEB_TIMEOUT", "30", 1), ("WEB_CONNECTIONS", "1000", 1)):
        raw = os.environ.get(name, default)
        try:
            values[name] = int(raw)
            if values[name] < low or (name == "PORT" and values[name] > 65535):
                raise ValueError
        except ValueError:
            limits = "1–65535" if name == "PORT" else f"≥ {low}"
            problems.append(f"{name}={raw!r}: must be a whole number {limits}")
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        problems.append(f"LOG_LEVEL={level!r}: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    values["LOG_LEVEL"] = level
    worker = os.environ.get("WEB_WORKER", "gevent").strip().lower()
    if worker not in WORKER_CLASSES:
        problems.append(f"WEB_WORKER={worker!r}: must be one of {', '.join(WORKER_CLASSES)}")
    values["WEB_WORKER"] = worker
    limits, limit_problems = read_limits(os.environ)
    problems.extend(limit_problems)
    values["limits"] = limits
    if problems:
        raise SystemExit("invalid server settings:\n  " + "\n  ".join(problems))
    return values


_env = _server_env()
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_env['PORT']}"
workers = _env["WEB_CONCURRENCY"]
# gevent (default): a greenlet per connection, so slow or idle clients cost no thread, with read
# deadlines; gthread: a thread per in-flight request (WEB_THREADS). Both answer gunicorn's own errors
# as problem+json and retry a failed boot; see modelplatform.gunicorn_worker and docs/operations.md
worker_class = WORKER_CLASSES[_env["WEB_WORKER"]]
worker_connections = _env["WEB_CONNECTIONS"]
threads = _env["WEB_THREADS"]
# a worker whose event loop is held this long (a model computing without yielding) is aborted and replaced
timeout = _env["WEB_TIMEOUT"]
graceful_timeout = 30
keepalive = max(1, round(_env["limits"].keepalive))
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
    "root": {"level": _env["LOG_LEVEL"], "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}


def on_starting(server) -> None:
    """Before listening or forking: runtime directory, artifacts fetched and verified, models loaded
    (modelplatform.reload); exits listing every problem when the deploy cannot serve."""
    from modelplatform import reload

    reload.on_starting()


def on_reload(server) -> None:
    """HUP, before any worker is replaced: the same steps for the edited config, or a logged refusal."""
    from modelplatform import reload

    reload.on_reload()


def on_exit(server) -> None:
    """The master stops: its runtime directory (config snapshots, metric files) goes with it."""
    from modelplatform import reload

    reload.on_exit()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess  # in the master only once a worker has exited

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    """A worker stops: its app's shadow copies and audit queue are finished and its connection closed."""
    from flask import Flask

    from modelplatform.app import close_app

    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):  # None when the worker never booted
        close_app(app)
