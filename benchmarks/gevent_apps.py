"""Diagnostic: the bare app and the platform (unchanged, default writer) under gunicorn's gevent worker,
with psycopg2 made cooperative by psycogreen, to measure what an async worker model would change
(``docs/performance.md``). Needs ``pip install gevent psycogreen`` (``benchmarks/run.py`` says so).
Not a supported deployment: the platform's tests run it under gthread only."""
from __future__ import annotations

from flask import Flask
from psycogreen.gevent import patch_psycopg

import bare_app
from modelplatform.app import create_app as platform_app


def create_bare() -> Flask:
    return bare_app.create_app()


def create_platform() -> Flask:
    patch_psycopg()  # every psycopg2 wait goes through gevent's hub instead of blocking the worker
    return platform_app()
