"""Production gunicorn settings (``gunicorn -c python:modelplatform.gunicorn_conf``).

Every value can be overridden from the environment (``PORT``, ``WEB_CONCURRENCY``, ``WEB_THREADS``,
``WEB_TIMEOUT``, ``LOG_LEVEL``); the README's settings table documents them. gunicorn re-executes
this module on every HUP, so it keeps no state of its own: what must survive a reload lives in the
master's environment (see :mod:`modelplatform.reload`).
"""
import os
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# threads let one worker overlap requests waiting on Postgres, which the audit writer batches
# gthread, with gunicorn's own error pages as problem+json (see modelplatform.gunicorn_worker)
worker_class = "modelplatform.gunicorn_worker.ThreadWorker"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# models are loaded by create_app() in each worker, after the fork: no preload
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
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}


def on_starting(server) -> None:
    from modelplatform import reload

    # Metrics from every worker are summed through files in this directory. It must be in the
    # environment before any worker imports prometheus-client (which picks its storage at import);
    # the master imports it only in child_exit, after this.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="modelplatform-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # values left by a previous run would be summed with this one's
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    reload.on_starting()


def on_reload(server) -> None:
    from modelplatform import reload

    reload.on_reload()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess  # in the master only once a worker has exited

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    """Let the audit writer finish its queue and close its connection when a worker stops."""
    app = getattr(worker, "wsgi", None)
    plane = getattr(app, "extensions", {}).get("modelplatform.dataplane")
    if plane is not None:
        plane.audit.close()
