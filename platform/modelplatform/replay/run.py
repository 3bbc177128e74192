"""One replay, end to end: read the recorded rows, run them through the candidate, compare, store, report.

:func:`replay` is the whole of it, without a terminal or argument parsing (the CLI wraps it). Memory
does not grow with the number of rows: rows stream from a server-side cursor in batches, each batch's
results are COPYed to ``replay_results`` and forgotten, and everything the report needs beyond running
sums (medians, p95s, the largest differences, examples) is computed from ``replay_results`` at the end.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from modelplatform.replay import gates, source, summary
from modelplatform.replay.child import peak_rss_kib
from modelplatform.replay.compare import Comparer, LeafStats, Tolerances
from modelplatform.replay.process import (
    DEFAULT_BATCH_TIMEOUT_S,
    DEFAULT_LOAD_TIMEOUT_S,
    DEFAULT_MAX_RESTARTS,
    Batch,
    CandidateSpec,
    Replayer,
    TooManyRestarts,
)
from modelplatform.replay.sink import BackgroundWriter, OutFile, ResultRow, ResultWriter
from modelplatform.replay.tables import replay_runs

DEFAULT_BATCH_SIZE = 1000
DEFAULT_TOP = 10
DEFAULT_EXAMPLES = 3
NOT_REPLAYABLE = "not_replayable"
# exit statuses of the command: what CI reads
EXIT_DONE, EXIT_GATES_FAILED = 0, 1


@dataclass(frozen=True)
class ReplayOptions:
    """Everything a replay needs besides the database and the candidate's bytes."""

    selection: source.Selection
    candidate_version: str
    sha256: str
    schema: Any
    schema_source: str
    tolerances: Tolerances = field(default_factory=Tolerances)
    fail_on: tuple[gates.Condition, ...] = ()
    fail_on_text: str = ""
    top: int = DEFAULT_TOP
    examples: int = DEFAULT_EXAMPLES
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_timeout: float = DEFAULT_BATCH_TIMEOUT_S
    load_timeout: float = DEFAULT_LOAD_TIMEOUT_S
    max_restarts: int = DEFAULT_MAX_RESTARTS
    out: Path | None = None


class ReplayAborted(Exception):
    """The replay stopped before the end (the candidate's process kept dying, the database went away…).

    ``run_id`` names the stored run (state ``aborted``/``failed``) when one was created."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass
class _Counts:
    read: int = 0
    not_replayable: int = 0


def replay(engine: sa.Engine, options: ReplayOptions, data: bytes, *,
           on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Replay ``options.selection`` through the candidate whose file bytes are ``data`` (already verified
    against ``options.sha256`` by the caller; the child verifies them again before loading).

    Returns the report (a JSON-ready dict; ``exit_status`` 0, or 1 when a ``--fail-on`` condition holds).
    Raises :class:`~modelplatform.replay.process.CandidateLoadError` when the candidate does not load (no
    run is stored then), :class:`ReplayAborted` when the run stops half-way (stored as aborted), and
    ``SQLAlchemyError``/``psycopg2.Error`` when the database fails.
    """
    started = time.monotonic()
    selection = options.selection
    spec = CandidateSpec(selection.model, options.candidate_version, options.sha256, data, options.schema)
    replayer = Replayer(spec, batch_timeout=options.batch_timeout, load_timeout=options.load_timeout,
                        max_restarts=options.max_restarts)
    run_id = str(uuid.uuid4())
    out = None
    try:
        with engine.begin() as conn:
            conn.execute(replay_runs.insert().values(
                id=run_id, model=selection.model, candidate_version=options.candidate_version,
                candidate_sha256=options.sha256, baseline=selection.baseline, since=selection.since,
                until=selection.until, sample=selection.sample, row_limit=selection.limit,
                tolerance=str(options.tolerances), fail_on=options.fail_on_text or None))
        out = OutFile(options.out) if options.out is not None else None
        comparer = Comparer(options.tolerances)
        counts = _Counts()
        _stream(engine, options, replayer, comparer, counts, run_id, out, on_progress)
        replayer.close()  # reads the child's peak memory from its farewell
        if out is not None:
            out.close()
            out = None
        report = _report(engine, options, run_id, comparer, counts, replayer, time.monotonic() - started)
    except BaseException as exc:
        replayer.kill()
        if out is not None:
            out.discard()
        try:
            _finish(engine, run_id, "aborted" if isinstance(exc, TooManyRestarts) else "failed", None)
        except Exception:  # noqa: BLE001 - the database may be what failed; the original error matters
            pass
        if isinstance(exc, TooManyRestarts):
            raise ReplayAborted(str(exc), run_id) from None
        raise
    _finish(engine, run_id, "done", report)
    return report


def _stream(engine: sa.Engine, options: ReplayOptions, replayer: Replayer, comparer: Comparer, counts: _Counts,
            run_id: str, out: OutFile | None, on_progress: Callable[[int], None] | None) -> None:
    reader = engine.raw_connection()
    writer_connection = engine.raw_connection()
    writer = BackgroundWriter(ResultWriter(writer_connection))
    try:

        def batches() -> Iterator[Batch[list[source.RecordedRow]]]:
            for fetched in source.read(reader, options.selection, fetch=options.batch_size):
                counts.read += len(fetched)
                rows = [row for row in fetched if row.input_json is not None]
                skipped = len(fetched) - len(rows)
                if skipped:
                    counts.not_replayable += skipped
                    if on_progress is not None:
                        on_progress(skipped)
                if rows:
                    yield Batch([row.input_json.encode() for row in rows if row.input_json is not None], rows)

        for batch, outcomes in replayer.run(batches()):
            results = []
            for row, (status, output_json, error) in zip(batch.rows, outcomes, strict=True):
                if status == NOT_REPLAYABLE:
                    counts.not_replayable += 1
                    continue
                results.append(_result(run_id, row, status, output_json, error, comparer))
            writer.write(results)
            if out is not None:
                out.write(results)
            if on_progress is not None:
                on_progress(len(batch.rows))
        writer.close()
        reader.rollback()  # ends the read transaction and its cursor
    except BaseException:
        writer.abandon()
        raise
    finally:
        reader.close()
        writer_connection.close()


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits, which jsonb keeps and orjson refuses
        import json

        return json.loads(text)


def _result(run_id: str, row: source.RecordedRow, status: str, output_json: str | None, error: Any,
            comparer: Comparer) -> ResultRow:
    baseline_output = _decode(row.output_json) if row.status == "ok" else None
    candidate_output = _decode(output_json) if status == "ok" else None
    baseline_error = _decode(row.error_json) if row.status == status == "rejected" else None
    compared = comparer.compare(row.status, baseline_output, baseline_error, status, candidate_output, error)
    assert row.input_json is not None  # only replayable rows are replayed
    return ResultRow(
        run_id=run_id, inference_id=row.inference_id, inference_created_at=row.created_at,
        request_id=row.request_id, baseline_version=row.version, baseline_status=row.status,
        candidate_status=status, changed=compared.changed, candidate_output=output_json,
        candidate_error=None if error is None else orjson.dumps(error).decode(),
        diffs=orjson.dumps(compared.diffs).decode() if compared.diffs else None,
        max_abs_diff=compared.max_abs_diff, max_rel_diff=compared.max_rel_diff,
        input_json=row.input_json, baseline_output=row.output_json,
    )


def _leaf_report(leaf: LeafStats, quantiles: dict[str, Any], both_ok: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "pointer": leaf.pointer, "kind": "numeric" if leaf.numeric else "other",
        "compared": leaf.compared, "numeric": leaf.numeric, "changed": leaf.changed,
        "change_rate": leaf.changed / both_ok if both_ok else 0.0, "added": leaf.added, "removed": leaf.removed,
    }
    if leaf.numeric:
        q = quantiles.get(leaf.pointer, {"abs": {}, "rel": {}})
        report.update({
            "abs": {"mean": leaf.sum_abs / leaf.numeric, "median": q["abs"].get("median"),
                    "p95": q["abs"].get("p95"), "max": leaf.max_abs},
            "rel": {"mean": leaf.sum_rel / leaf.rel_defined if leaf.rel_defined else None,
                    "median": q["rel"].get("median"), "p95": q["rel"].get("p95"), "max": leaf.max_rel},
            "rel_undefined": leaf.numeric - leaf.rel_defined,
            "tolerance": str(leaf.tolerance), "beyond": leaf.beyond,
            "beyond_share": leaf.beyond / leaf.numeric,
        })
    return report


def _report(engine: sa.Engine, options: ReplayOptions, run_id: str, comparer: Comparer, counts: _Counts,
            replayer: Replayer, seconds: float) -> dict[str, Any]:
    selection = options.selection
    leaves = sorted(comparer.leaves.values(), key=lambda leaf: leaf.pointer)
    with engine.connect() as conn:
        quantiles = summary.leaf_quantiles(conn, run_id, leaves)
        largest = summary.largest(conn, run_id, options.top)
        examples = summary.transition_examples(conn, run_id, options.examples)
    transitions = [
        {"from": src, "to": dst, "count": n, "examples": examples.get((src, dst), [])}
        for (src, dst), n in sorted(comparer.transitions.items(), key=lambda item: (-item[1], item[0]))
    ]
    replayed = comparer.rows
    report: dict[str, Any] = {
        "run_id": run_id,
        "model": selection.model,
        "candidate": {"version": options.candidate_version, "sha256": options.sha256,
                      "schema": options.schema_source, "predictor_type": replayer.predictor_type},
        "baseline": selection.baseline,
        "window": {"since": _iso(selection.since), "until": _iso(selection.until)},
        "sample": selection.sample,
        "limit": selection.limit,
        "tolerance": str(options.tolerances),
        "rows": {"read": counts.read, "not_replayable": counts.not_replayable, "replayed": replayed,
                 "changed": comparer.changed, "unchanged": replayed - comparer.changed,
                 "both_ok": comparer.both_ok},
        "statuses": {"baseline": dict(sorted(comparer.baseline_statuses.items())),
                     "candidate": dict(sorted(comparer.candidate_statuses.items()))},
        "transitions": transitions,
        "leaves": [_leaf_report(leaf, quantiles, comparer.both_ok) for leaf in leaves],
        "largest": largest,
        "process": {"restarts": replayer.restarts, "failures": replayer.failures},
        "performance": {
            "seconds": round(seconds, 3),
            "rows_per_s": round(counts.read / seconds, 1) if seconds > 0 else None,
            "cli_max_rss_mib": round(peak_rss_kib() / 1024, 1),
            "child_max_rss_mib": round(replayer.child_max_rss_kib / 1024, 1),
        },
    }
    results = gates.evaluate(options.fail_on, report)
    failed = any(r.failed for r in results)
    report["gates"] = {"fail_on": options.fail_on_text, "results": [r.as_dict() for r in results],
                       "failed": failed}
    report["exit_status"] = EXIT_GATES_FAILED if failed else EXIT_DONE
    return report


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _finish(engine: sa.Engine, run_id: str, state: str, report: dict[str, Any] | None) -> None:
    values: dict[str, Any] = {"state": state, "finished_at": datetime.now(UTC)}
    if report is not None:
        # orjson writes a non-finite float (a difference between two numbers near the float limit) as
        # null; the json module would write Infinity, which jsonb refuses
        values.update(rows_replayed=report["rows"]["replayed"], rows_changed=report["rows"]["changed"],
                      exit_status=report["exit_status"],
                      summary=sa.cast(sa.literal(orjson.dumps(report).decode(), sa.Text), JSONB))
    with engine.begin() as conn:
        conn.execute(replay_runs.update().where(replay_runs.c.id == run_id).values(**values))
