"""Diagnostic, never a deployment: the platform whose audit writer sends a batch as ONE jsonb parameter,
``INSERT … SELECT * FROM jsonb_populate_recordset(NULL::inferences, $1) ON CONFLICT (id) DO NOTHING``, the
rows encoded by orjson (C), instead of one array per column adapted by psycopg2. Measures what the
client-side encoding of a batch costs a worker (docs/performance.md)."""
from __future__ import annotations

from collections.abc import Sequence

import orjson
import psycopg2
import psycopg2.extensions
from flask import Flask
from sqlalchemy.dialects.postgresql import JSONB

from modelplatform.app import create_app as platform_app
from modelplatform.audit import rows as audit_rows
from modelplatform.audit.group_commit import GroupCommitAuditLog
from modelplatform.audit.tables import inferences
from modelplatform.settings import Settings

JSON_COLUMNS = frozenset(c.name for c in inferences.columns if isinstance(c.type, JSONB))
COLUMNS = ", ".join(audit_rows.COLUMNS)
PREPARE = (f"PREPARE audit_insert_jsonb (jsonb) AS INSERT INTO {inferences.name} ({COLUMNS}) "
           f"SELECT {COLUMNS} FROM jsonb_populate_recordset(NULL::{inferences.name}, $1) ON CONFLICT (id) DO NOTHING")


def encode(rows: Sequence[audit_rows.Row]) -> str:
    # JSON columns hold JSON text already: embedded as is (orjson.Fragment), not re-escaped as strings
    return orjson.dumps([{name: (orjson.Fragment(value) if name in JSON_COLUMNS and value is not None else value)
                          for name, value in row.items()} for row in rows]).decode()


def store(conn: psycopg2.extensions.connection, rows: Sequence[audit_rows.Row]) -> list[tuple[int, str]]:
    try:
        with conn.cursor() as cursor:
            cursor.execute("EXECUTE audit_insert_jsonb (%s)", [encode(rows)])
        return []
    except psycopg2.Error as exc:
        if audit_rows.is_unreachable(exc):
            raise
    return audit_rows.store(conn, rows)  # isolate the bad row(s) the usual way


class JsonbWriter(GroupCommitAuditLog):
    def _connection(self):  # noqa: ANN202
        fresh = self._conn is None or self._conn.closed
        conn = super()._connection()
        if conn is not None and fresh:
            with conn.cursor() as cursor:
                cursor.execute(PREPARE)
        return conn

    def _write(self, batch) -> None:  # noqa: ANN001 - the parent's, with the jsonb statement
        rows = [pending.record.as_params() for pending in batch]
        conn = self._connection()
        if conn is not None:
            try:
                if self.spool_depth():
                    self._replay_on(conn, whole=False)
                rejected = store(conn, rows)
            except psycopg2.Error as exc:
                self._lost_connection(exc)
            else:
                self._release(batch, rejected)
                return
        self._spool_or_fail(batch, rows)


def create_app() -> Flask:
    settings = Settings.from_env()
    return platform_app(settings, audit=JsonbWriter(settings.database_url, spool_dir=settings.audit_spool_dir))
