"""Diagnostic only, never a deployment: the platform with the simplest durable writer (one INSERT + COMMIT per
request through a SQLAlchemy pool, no group commit, no spool), to compare with the group-commit writer.

It lived in the package as ``audit/postgres.py`` while nothing but this benchmark and the tests used it.
"""
from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError

from modelplatform.app import create_app as platform_app
from modelplatform.audit import InferenceRecord
from modelplatform.audit.base import AuditHealth
from modelplatform.audit.tables import inferences
from modelplatform.errors import AuditUnavailable
from modelplatform.settings import Settings

log = logging.getLogger(__name__)

_JSON_COLUMNS = ("input", "output", "error")


def _insert_statement() -> sa.Insert:
    # JSON arrives already encoded; cast the text server-side instead of decoding and re-encoding it
    values: dict[str, sa.ColumnElement[object]] = {
        c.name: sa.bindparam(c.name) for c in inferences.columns if c.name not in _JSON_COLUMNS}
    values.update({name: sa.cast(sa.bindparam(name, type_=sa.Text), JSONB) for name in _JSON_COLUMNS})
    return inferences.insert().values(values)


class PerRowAuditLog:
    """Writes each record in its own transaction. The engine is created lazily in the process that uses it, so
    a gunicorn worker never inherits a parent's connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        self._pid: int | None = None
        self._insert = _insert_statement()

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)  # inherited sockets belong to the parent
            self._engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=4, max_overflow=8,
                                            connect_args={"connect_timeout": 5})
            self._pid = os.getpid()
        return self._engine

    def record(self, record: InferenceRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(self._insert, record.as_params())
        except SQLAlchemyError as exc:
            log.error("audit write failed", extra={"inference_id": record.id, "error": str(exc.__cause__ or exc)})
            raise AuditUnavailable("the inference could not be recorded, so it was not answered; retry") from None

    def health(self) -> AuditHealth:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            reachable = True
        except SQLAlchemyError:
            reachable = False
        return AuditHealth(database=reachable, spool_depth=0, can_record=reachable)

    def close(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None


def create_app() -> Flask:
    settings = Settings.from_env()
    assert settings.database_url is not None  # from_env requires it
    return platform_app(settings, audit=PerRowAuditLog(settings.database_url))
