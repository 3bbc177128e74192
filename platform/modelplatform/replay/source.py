"""Reading the recorded inferences a replay runs on: one server-side cursor, so memory stays flat.

What is read (the *baseline*):

- ``live`` (default): what live traffic got, every row of the model except shadow calls
  (``routed_by <> 'shadow'``), whatever version answered;
- a version (``2.1.0``): every row that version answered, its shadow calls included.

``--sample F`` keeps a row when a hash of its id falls in the first ``F`` of the hash range
(``hashtextextended(id::text, 0)``). It is evaluated in the database, so unsampled rows never leave
it, and unlike ``TABLESAMPLE`` it is deterministic whatever the physical layout (vacuum, partitions,
a restore): the same rows on every run, and a 5% sample is contained in the 10% one, so two
candidates replayed with the same ``--sample`` see the same inputs. It still reads the window's rows
inside Postgres (``TABLESAMPLE SYSTEM`` reads fewer pages, but samples whole pages and changes with the
layout).

A row whose recorded ``input`` is a stand-in rather than the input itself (an oversized invalid body
stored as a marked summary, see :func:`stand_in_predicate`) cannot be replayed: it is read without its
input and counted as *not replayable*.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LIVE = "live"
SAMPLE_SEED = 0
HASH_RANGE = 2**63


@dataclass(frozen=True)
class RecordedRow:
    """One recorded inference as read for replay (JSON columns as text, exactly as stored)."""

    inference_id: str
    created_at: datetime
    request_id: str
    version: str
    status: str
    input_json: str | None  # None when the row is not replayable
    output_json: str | None
    error_json: str | None


@dataclass(frozen=True)
class Selection:
    """Which recorded rows to replay."""

    model: str
    baseline: str = LIVE
    since: datetime | None = None
    until: datetime | None = None
    sample: float | None = None
    limit: int | None = None


def stand_in_predicate() -> str:
    """SQL that is true when a row's ``input`` is the stand-in for an oversized invalid body
    (:mod:`modelplatform.audit.bounds`). It reads the flag in ``error``, which only the platform writes:
    a caller can send a ``$clipped_input`` key in a real input, never that flag."""
    return "coalesce(error ->> 'input_clipped' = 'true', false)"


def query(selection: Selection, *, count: bool = False) -> tuple[str, dict[str, Any]]:
    """The SQL (psycopg2 ``%(name)s`` parameters) reading ``selection``, or counting it."""
    where = ["model = %(model)s"]
    params: dict[str, Any] = {"model": selection.model}
    if selection.baseline == LIVE:
        where.append("routed_by <> 'shadow'")
    else:
        where.append("version = %(baseline)s")
        params["baseline"] = selection.baseline
    if selection.since is not None:
        where.append("created_at >= %(since)s")
        params["since"] = selection.since
    if selection.until is not None:
        where.append("created_at < %(until)s")
        params["until"] = selection.until
    if selection.sample is not None and selection.sample < 1:
        where.append(f"(hashtextextended(id::text, {SAMPLE_SEED}) & 9223372036854775807) < %(threshold)s")
        params["threshold"] = int(selection.sample * HASH_RANGE)
    conditions = " and ".join(where)
    if count:
        inner = f"select 1 from inferences where {conditions}"
        if selection.limit is not None:
            inner += " limit %(limit)s"
            params["limit"] = selection.limit
        return f"select count(*) from ({inner}) s", params
    stand_in = stand_in_predicate()
    sql = (f"select id::text, created_at, request_id, version, status, "
           f"case when {stand_in} then null else input::text end, output::text, error::text "
           f"from inferences where {conditions}")
    if selection.limit is not None:
        # the newest rows: a limit means "the latest N calls"
        sql += " order by created_at desc, id desc limit %(limit)s"
        params["limit"] = selection.limit
    return sql, params


def read(connection: Any, selection: Selection, *, fetch: int = 2000) -> Iterator[list[RecordedRow]]:
    """The selected rows in lists of up to ``fetch``, through a named (server-side) cursor on the psycopg2
    ``connection`` (its transaction stays open until the caller ends it)."""
    sql, params = query(selection)
    with connection.cursor(name="modelplatform_replay_source") as cursor:
        cursor.itersize = fetch
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(fetch):
            yield [RecordedRow(*row) for row in rows]


def count(connection: Any, selection: Selection) -> int:
    sql, params = query(selection, count=True)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])
