"""Production gunicorn settings (``gunicorn -c python:modelplatform.gunicorn_conf``).

Every value can be overridden from the environment (``PORT``, ``WEB_CONCURRENCY``, ``WEB_THREADS``,
``WEB_TIMEOUT``); the README's settings table documents them.
"""
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# threads let one worker overlap requests waiting on Postgres, which the audit writer batches
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# models are loaded by create_app() in each worker, after the fork: no preload
preload_app = False


def worker_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    """Let the audit writer finish its queue and close its connection when a worker stops."""
    app = getattr(worker, "wsgi", None)
    plane = getattr(app, "extensions", {}).get("modelplatform.dataplane")
    if plane is not None:
        plane.audit.close()
