"""Where per-row results go: ``replay_results`` (one COPY per batch) and, when asked, a Parquet or CSV file.

COPY rather than INSERTs: one round trip and one statement per batch whatever its size (measured in
``benchmarks/replay.py``). Each batch is committed, so an interrupted run keeps what it replayed.
"""
from __future__ import annotations

import csv
import io
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplatform.replay.tables import RESULT_COLUMNS

OUT_SUFFIXES = (".parquet", ".csv")
PARQUET_ROW_GROUP = 50_000


@dataclass(frozen=True)
class ResultRow:
    """One replayed row, as stored and written out. JSON values as JSON text (None for SQL NULL)."""

    run_id: str
    inference_id: str
    inference_created_at: Any  # datetime
    request_id: str
    baseline_version: str
    baseline_status: str
    candidate_status: str
    changed: bool
    candidate_output: str | None
    candidate_error: str | None
    diffs: str | None
    max_abs_diff: float | None
    max_rel_diff: float | None
    # for --out only (already in inferences)
    input_json: str
    baseline_output: str | None

    def copy_values(self) -> tuple[Any, ...]:
        return (self.run_id, self.inference_id, self.inference_created_at.isoformat(), self.request_id,
                self.baseline_version, self.baseline_status, self.candidate_status,
                "t" if self.changed else "f", self.candidate_output, self.candidate_error, self.diffs,
                _float(self.max_abs_diff), _float(self.max_rel_diff))


def _float(value: float | None) -> str | None:
    return None if value is None else repr(value)


class ResultWriter:
    """Appends result rows to ``replay_results`` with COPY, one transaction per batch."""

    _SQL = f"copy replay_results ({', '.join(RESULT_COLUMNS)}) from stdin with (format csv)"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def write(self, rows: list[ResultRow]) -> None:
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        # csv writes None as an empty unquoted field, which COPY's csv format reads as NULL; no text
        # column here is ever an empty string (ids, statuses, JSON)
        writer.writerows(row.copy_values() for row in rows)
        buffer.seek(0)
        with self.connection.cursor() as cursor:
            cursor.copy_expert(self._SQL, buffer)
        self.connection.commit()


class BackgroundWriter:
    """Runs a :class:`ResultWriter` in its own thread, so Postgres stores batch *k* while the CLI compares
    batch *k+1* (psycopg2 releases the GIL while it waits on the server). At most ``depth`` batches wait;
    a failure of the writer is raised by the next :meth:`write` or by :meth:`close`."""

    def __init__(self, writer: ResultWriter, depth: int = 2) -> None:
        self._writer = writer
        self._queue: queue.Queue[list[ResultRow] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="replay-results-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (rows := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write(rows)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, rows: list[ResultRow]) -> None:
        self._raise()
        self._queue.put(rows)

    def close(self) -> None:
        """Wait until every batch is stored; raises the writer's failure, if any."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def abandon(self, timeout: float = 30.0) -> None:
        """Stop without raising (the run failed already): drop what waits, let the current batch end."""
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(None)
        self._thread.join(timeout)


OUT_COLUMNS = ("inference_id", "inference_created_at", "request_id", "baseline_version", "baseline_status",
               "candidate_status", "changed", "input", "baseline_output", "candidate_output", "candidate_error",
               "diffs", "max_abs_diff", "max_rel_diff")


def _out_values(row: ResultRow) -> tuple[Any, ...]:
    return (row.inference_id, row.inference_created_at, row.request_id, row.baseline_version, row.baseline_status,
            row.candidate_status, row.changed, row.input_json, row.baseline_output, row.candidate_output,
            row.candidate_error, row.diffs, row.max_abs_diff, row.max_rel_diff)


class OutFile:
    """``--out FILE.parquet|.csv``: every replayed row, streamed. Written to ``FILE.partial`` and renamed
    when complete, so a reader never sees half a file under the final name."""

    def __init__(self, path: Path) -> None:
        if path.suffix.lower() not in OUT_SUFFIXES:
            raise ValueError(f"--out {path}: the name must end in .parquet or .csv")
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.parquet = path.suffix.lower() == ".parquet"
        self._pending: list[tuple[Any, ...]] = []
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            fields: list[tuple[str, pa.DataType]] = [
                ("inference_id", pa.string()), ("inference_created_at", pa.timestamp("us", tz="UTC")),
                ("request_id", pa.string()), ("baseline_version", pa.string()), ("baseline_status", pa.string()),
                ("candidate_status", pa.string()), ("changed", pa.bool_()), ("input", pa.string()),
                ("baseline_output", pa.string()), ("candidate_output", pa.string()),
                ("candidate_error", pa.string()), ("diffs", pa.string()),
                ("max_abs_diff", pa.float64()), ("max_rel_diff", pa.float64()),
            ]
            self._schema = pa.schema(fields)
            self._parquet = pq.ParquetWriter(self.partial, self._schema)
        else:
            self._file = self.partial.open("w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file)
            self._csv.writerow(OUT_COLUMNS)

    def write(self, rows: list[ResultRow]) -> None:
        if not self.parquet:
            self._csv.writerows(_out_values(row) for row in rows)
            return
        self._pending.extend(_out_values(row) for row in rows)
        if len(self._pending) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        import pyarrow as pa

        columns = list(zip(*self._pending, strict=True))
        self._parquet.write_table(pa.Table.from_arrays(
            [pa.array(column, type=field.type) for column, field in zip(columns, self._schema, strict=True)],
            schema=self._schema))
        self._pending.clear()

    def close(self) -> None:
        """Finish the file and give it its final name."""
        if self.parquet:
            self._flush()
            self._parquet.close()
        else:
            self._file.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        """Drop the partial file (the run failed)."""
        try:
            if self.parquet:
                self._parquet.close()
            else:
                self._file.close()
        finally:
            self.partial.unlink(missing_ok=True)
