"""The platform with the simple writer (one INSERT + COMMIT per request through SQLAlchemy), for comparison."""
from __future__ import annotations

from flask import Flask

from modelplatform.app import create_app as platform_app
from modelplatform.audit.postgres import PostgresAuditLog
from modelplatform.settings import Settings


def create_app() -> Flask:
    settings = Settings.from_env()
    return platform_app(settings, audit=PostgresAuditLog(settings.database_url))
