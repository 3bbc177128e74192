"""Warehouse export: ``inferences`` rows as Parquet in S3, Hive-partitioned ``model=<name>/date=<YYYY-MM-DD>/``.

Analysts query months of history with DuckDB, Athena, Trino or Spark from these files instead of the
live database. Contract (also in ``docs/operations.md``):

- **Whole UTC days.** A run exports every day from the day of ``since`` through the day of ``until``, each
  complete as the database holds it at that moment (today's is partial until a later run).
- **Idempotent per day.** A day's files are written under names unique to the run, and only once all of
  them are uploaded are that day's other files (an earlier run's, in any ``model=`` folder) deleted: a
  re-run replaces exactly that day, and a failed run leaves the previous export of the day in place
  (possibly beside some new files; re-run it).
- **Schema.** ``model`` and ``date`` are in the path only (Hive partition columns, as Athena requires).
  ``id`` is the UUID's text; ``created_at`` is ``timestamp[us, tz=UTC]``; ``input``, ``output`` and
  ``error`` are the jsonb values as **JSON text** (Parquet strings: every engine reads them and parses them
  with its JSON functions, e.g. DuckDB ``output->>'premium'``); ``latency_ms`` is a double; the other
  columns are strings. Files are zstd-compressed, one or more per (model, day), row groups of up to
  ``row_group_rows`` rows.
- **Memory stays flat**: rows are read through a server-side cursor ``batch_rows`` at a time, turned into
  Arrow columns at once, and written as a row group whenever a model has ``row_group_rows`` of them: at
  most one row group per model is held, in Arrow's compact form (measured in ``docs/operations.md``).

pyarrow is imported here only: the server never loads this module.
"""
from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelplatform.settings import StoreLocation, psycopg2_dsn

_FIELDS: list[tuple[str, pa.DataType]] = [
    ("id", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("version", pa.string()),
    ("routed_by", pa.string()),
    ("experiment", pa.string()),
    ("routing_key", pa.string()),
    ("status", pa.string()),
    ("input", pa.string()),
    ("output", pa.string()),
    ("error", pa.string()),
    ("latency_ms", pa.float64()),
    ("request_id", pa.string()),
    ("artifact_sha256", pa.string()),
    ("api_key_id", pa.string()),
]
SCHEMA = pa.schema(_FIELDS)
# the model first (it picks the file), then SCHEMA's columns; created_at as epoch microseconds (exact, cheap)
_SELECT = ("select model, id::text, (extract(epoch from created_at) * 1000000)::bigint, version, routed_by, "
           "experiment, routing_key, status, input::text, output::text, error::text, latency_ms, request_id, "
           "artifact_sha256, api_key_id from inferences where created_at >= %(start)s and created_at < %(end)s")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class DayExport:
    day: date
    rows: int = 0
    rows_by_model: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # the files written
    replaced: list[str] = field(default_factory=list)  # earlier files of the day, deleted
    bytes: int = 0


def days_between(since: datetime, until: datetime) -> list[date]:
    """Every UTC day from the day of ``since`` through the day of ``until``. Raises ``ValueError`` if reversed."""
    first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    if last < first:
        raise ValueError(f"--until ({last}) is before --since ({first})")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_prefix(location: StoreLocation, model: str, day: date) -> str:
    return "/".join(p for p in (location.prefix, f"model={model}", f"date={day.isoformat()}") if p) + "/"


class _ModelFile:
    """One model's Parquet file(s) of one day, written locally row group by row group. Rows wait as Arrow
    tables (compact columnar memory, not Python objects) until a row group is full."""

    def __init__(self, directory: Path, row_group_rows: int, file_rows: int) -> None:
        self.directory, self.row_group_rows, self.file_rows = directory, row_group_rows, file_rows
        self.chunks: list[pa.Table] = []
        self.pending = 0
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0

    def add(self, table: pa.Table) -> None:
        self.chunks.append(table)
        self.pending += table.num_rows
        if self.pending >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self._writer is None or self._in_file >= self.file_rows:
            self.close()
            path = self.directory / f"{uuid.uuid4().hex}.parquet"
            self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
            self.paths.append(path)
            self._in_file = 0
        self._writer.write_table(pa.concat_tables(self.chunks), row_group_size=self.row_group_rows)
        self._in_file += self.pending
        self.chunks, self.pending = [], 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _batches(conn: psycopg2.extensions.connection, day: date, batch_rows: int) -> Iterator[list[tuple[Any, ...]]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    # a named cursor is a server-side cursor: Postgres sends batch_rows at a time, memory stays flat
    with conn.cursor(name=f"export_{uuid.uuid4().hex[:8]}") as cursor:
        cursor.itersize = batch_rows
        cursor.execute(_SELECT, {"start": start, "end": start + timedelta(days=1)})
        while batch := cursor.fetchmany(batch_rows):
            yield batch


def _to_arrow(batch: list[tuple[Any, ...]]) -> tuple[pa.Array[Any], pa.Table]:
    """The batch's model column, and the rest as a table of :data:`SCHEMA`."""
    columns = list(zip(*batch, strict=True))
    arrays = [pa.array(values, type=pa.int64()).cast(f.type) if f.name == "created_at"
              else pa.array(values, type=f.type)
              for values, f in zip(columns[1:], SCHEMA, strict=True)]
    return pa.array(columns[0], type=pa.string()), pa.Table.from_arrays(arrays, schema=SCHEMA)


def export_day(conn: psycopg2.extensions.connection, s3: Any, location: StoreLocation, day: date, *,
               batch_rows: int = 10_000, row_group_rows: int = 100_000, file_rows: int = 2_000_000,
               progress: Callable[[int], None] = lambda n: None) -> DayExport:
    """Export one UTC day and then delete that day's files of earlier runs. Raises ``psycopg2.Error``
    (database) and ``botocore`` errors (store); a failure leaves the previous export of the day in place."""
    result = DayExport(day)
    run = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="modelplatform-export-") as tmp:
        files: dict[str, _ModelFile] = {}
        for batch in _batches(conn, day, batch_rows):
            models, table = _to_arrow(batch)
            distinct = sorted({str(model) for model in models.to_pylist()})  # model is not null
            for model in distinct:
                part = table if len(distinct) == 1 else table.filter(pc.equal(models, pa.scalar(model)))
                target = files.setdefault(model, _ModelFile(Path(tmp), row_group_rows, file_rows))
                target.add(part)
                result.rows_by_model[model] = result.rows_by_model.get(model, 0) + part.num_rows
            progress(len(batch))
        conn.rollback()  # end the read transaction the named cursor opened
        for model, target in sorted(files.items()):
            target.flush()
            target.close()
            for index, path in enumerate(target.paths):
                key = day_prefix(location, model, day) + f"part-{run}-{index:05d}.parquet"
                s3.upload_file(str(path), location.bucket, key)
                result.keys.append(key)
                result.bytes += path.stat().st_size
    result.rows = sum(result.rows_by_model.values())
    result.replaced = _delete_other_files(s3, location, day, set(result.keys))
    return result


def _delete_other_files(s3: Any, location: StoreLocation, day: date, keep: set[str]) -> list[str]:
    root = f"{location.prefix}/" if location.prefix else ""
    stale: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=root + "model=", Delimiter="/"):
        for folder in page.get("CommonPrefixes", []):
            prefix = f"{folder['Prefix']}date={day.isoformat()}/"
            for listing in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
                stale += [o["Key"] for o in listing.get("Contents", []) if o["Key"] not in keep]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=location.bucket,
                          Delete={"Objects": [{"Key": k} for k in stale[start:start + 1000]], "Quiet": True})
    return stale


def count_rows(conn: psycopg2.extensions.connection, days: list[date]) -> int:
    """Rows in the days to export (for the progress bar's total)."""
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    with conn.cursor() as cursor:
        cursor.execute("select count(*) from inferences where created_at >= %s and created_at < %s",
                       (start, start + timedelta(days=len(days))))
        row = cursor.fetchone()
        assert row is not None  # count(*) always answers one row
        (count,) = row
    conn.rollback()
    return int(count)


def connect(url: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(psycopg2_dsn(url), connect_timeout=10, application_name="modelplatform-export")
