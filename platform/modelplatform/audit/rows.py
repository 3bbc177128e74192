"""Multi-row, idempotent INSERT of audit rows with raw psycopg2 (the cheapest client path we measured).

A batch is sent as one ``EXECUTE`` of a statement prepared once per connection,
``INSERT … SELECT * FROM unnest($1::uuid[], …)``: one array per column, so the same prepared statement
takes any batch size and Postgres parses and plans the INSERT once per connection, not once per batch.
The column list and the array types come from :data:`~modelplatform.audit.tables.inferences`, and each row is the
record's :meth:`~modelplatform.audit.records.InferenceRecord.as_params`, so a column added to both
flows through here with no change. ``ON CONFLICT (id, created_at) DO NOTHING`` (the primary key: a
partitioned table's unique key must hold the partition key) makes every write idempotent: a batch whose
COMMIT outcome is unknown (connection lost mid-commit) is spooled and replayed, with the same
``created_at``, safely.

Behind PgBouncer in transaction mode a session's prepared statement is not there on the next
transaction's server connection (and SQL ``PREPARE`` is not the protocol-level kind PgBouncer ≥ 1.21
can track), so :func:`connect` with ``prepare=False`` sends the same INSERT unprepared (``INSERT_SQL``):
parsed and planned per batch, measured in ``docs/performance.md``. Should the setting be missed, a
connection whose ``PREPARE`` finds the statement already there, or whose ``EXECUTE`` finds it gone, falls
back to ``INSERT_SQL`` with a WARNING instead of failing the writes.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from sqlalchemy.dialects import postgresql

from modelplatform.audit.tables import inferences

# psycopg2_dsn: the one database-URL rule lives in settings (benchmarks import it from here too)
from modelplatform.settings import psycopg2_dsn

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = tuple(c.name for c in inferences.columns)

_TYPES = tuple(c.type.compile(dialect=postgresql.dialect()) for c in inferences.columns)
_PK = ", ".join(c.name for c in inferences.primary_key)

# prepared once per connection (see :func:`connect`): one statement for any batch size, one array per column
PREPARE_SQL = (f"PREPARE audit_insert ({', '.join(t + '[]' for t in _TYPES)}) AS "
               f"INSERT INTO {inferences.name} ({', '.join(COLUMNS)}) "
               f"SELECT * FROM unnest({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))}) "
               f"ON CONFLICT ({_PK}) DO NOTHING")
EXECUTE_SQL = "EXECUTE audit_insert (" + ", ".join(f"%s::{t}[]" for t in _TYPES) + ")"
# the same statement, unprepared: for PgBouncer's transaction pooling (see the module docstring)
INSERT_SQL = (f"INSERT INTO {inferences.name} ({', '.join(COLUMNS)}) "
              f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)}) "
              f"ON CONFLICT ({_PK}) DO NOTHING")


class AuditConnection(psycopg2.extensions.connection):
    """A psycopg2 connection that knows which INSERT to send: ``EXECUTE`` of the statement it prepared, or
    ``INSERT_SQL`` when it was opened with ``prepare=False``."""

    insert_sql: str = INSERT_SQL

Row = Mapping[str, Any]


def insert_rows(cursor: psycopg2.extensions.cursor, rows: Sequence[Row]) -> None:
    """One INSERT of ``rows`` through the connection's statement (``EXECUTE`` of the prepared one, or
    ``INSERT_SQL``). JSON columns are JSON text, cast by Postgres.
    A column missing from a row (a spool written before the column existed) is sent as NULL: the
    database then stores it or rejects the row, like any other data error."""
    params = [[row.get(name) for row in rows] for name in COLUMNS]
    statement = getattr(cursor.connection, "insert_sql", INSERT_SQL)
    try:
        cursor.execute(statement, params)
    except psycopg2.errors.InvalidSqlStatementName:
        if statement != EXECUTE_SQL:
            raise
        # our prepared statement is not on this server connection: a pooler in transaction mode handed us
        # another one. Go on unprepared rather than fail every write (autocommit: nothing to roll back).
        conn = cursor.connection
        assert isinstance(conn, AuditConnection)  # connect() makes every audit connection one
        _unprepared(conn, "the prepared audit INSERT vanished between statements")
        cursor.execute(INSERT_SQL, params)


def _unprepared(conn: AuditConnection, why: str) -> None:
    conn.insert_sql = INSERT_SQL
    log.warning("%s: a connection pooler in transaction mode? Writing unprepared on this connection; set "
                "DATABASE_POOL_MODE=transaction to skip the PREPARE (docs/operations.md)", why)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot be reached or lost the connection" (spool and retry),
    False when the database answered and rejected the rows (a data error: retrying cannot help)."""
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


def connect(url: str, *, connect_timeout: int = 3, prepare: bool = True) -> psycopg2.extensions.connection:
    """An autocommit connection for audit writes. Raises :class:`psycopg2.OperationalError` when unreachable,
    or when connecting (and preparing) took more than ``connect_timeout`` seconds.

    Autocommit: a multi-row INSERT is one statement, so it is atomic on its own, and sending it alone
    costs one round trip instead of three (BEGIN, INSERT, COMMIT), measured in ``docs/performance.md``.
    ``prepare``: prepare the INSERT once for this connection (direct to Postgres, or PgBouncer in session
    mode); False behind PgBouncer's transaction pooling.
    """
    if psycopg2.extensions.get_wait_callback() is None:
        return _connect(url, connect_timeout, prepare)
    # a wait callback (psycogreen, under the gevent worker) makes psycopg2 connect asynchronously, and
    # libpq ignores connect_timeout there: a database that accepts and never answers would hold the
    # caller for the TCP timeout. The greenlet's own timer bounds it instead.
    import gevent

    timer = gevent.Timeout(connect_timeout)
    timer.start()
    try:
        return _connect(url, connect_timeout, prepare)
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise psycopg2.OperationalError(
            f"timeout expired: no answer from the database within {connect_timeout} s") from None
    finally:
        timer.close()


def _connect(url: str, connect_timeout: int, prepare: bool) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(
        psycopg2_dsn(url), connect_timeout=connect_timeout, application_name="modelplatform-audit",
        # notice a dead peer within ~15 s instead of the kernel's two hours
        keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=5,
        connection_factory=AuditConnection,
    )
    try:
        conn.autocommit = True
        if prepare:
            try:
                with conn.cursor() as cursor:
                    cursor.execute(PREPARE_SQL)
            except psycopg2.errors.DuplicatePreparedStatement:
                _unprepared(conn, "the audit INSERT was already prepared on this server connection")
            else:
                conn.insert_sql = EXECUTE_SQL
    except BaseException:
        conn.close()  # interrupted or failed while preparing: never leak the half-set-up session
        raise
    return conn


def store(conn: psycopg2.extensions.connection, rows: Sequence[Row]) -> list[tuple[int, str]]:
    """Insert ``rows`` on an autocommit connection (see :func:`connect`); return ``(index, reason)`` for
    each row the database rejected.

    All other rows are committed when this returns. A rejected batch is retried one row per
    statement to isolate the bad rows, so one bad row never blocks the others and nothing loops.
    Raises :class:`psycopg2.OperationalError`/:class:`psycopg2.InterfaceError` when the database is
    unreachable; rows not yet committed then have an unknown outcome and must be retried (idempotent).
    """
    try:
        with conn.cursor() as cursor:
            insert_rows(cursor, rows)
        return []
    except psycopg2.Error as exc:
        if is_unreachable(exc):
            raise
    rejected: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        try:
            with conn.cursor() as cursor:
                insert_rows(cursor, [row])
        except psycopg2.Error as exc:
            if is_unreachable(exc):
                raise
            rejected.append((index, (exc.pgerror or str(exc)).strip()))
    return rejected
