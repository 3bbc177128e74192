"""The replay report's figures that need every row: exact medians and p95s, the largest differences and
examples, computed in Postgres from ``replay_results`` rather than held in the CLI's memory.

Median and p95 are exact (``percentile_cont``, the same interpolation as numpy's default). Only the rows
where a leaf *changed* store its difference; the unchanged rows are zeros, which sort first, so the
quantile of all ``n`` values is read from the ``k`` stored ones at a shifted position
(:func:`shifted_fraction`), and the sort Postgres does is over the changed rows only, spilling to disk
past ``work_mem``: memory stays bounded at any row count.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import orjson
import sqlalchemy as sa

from modelplatform.replay.compare import OTHER_LEAVES, LeafStats

QUANTILES = (("median", 0.5), ("p95", 0.95))

_QUANTILES_SQL = sa.text("""
    select w.pointer,
           min((d.value->>'abs')::float8) as abs_min,
           percentile_cont(array[w.a0, w.a1]) within group (order by (d.value->>'abs')::float8) as abs_q,
           min((d.value->>'rel')::float8) as rel_min,
           percentile_cont(array[w.r0, w.r1]) within group (order by (d.value->>'rel')::float8) as rel_q
    from replay_results r
    cross join lateral jsonb_each(r.diffs) d
    join jsonb_to_recordset(cast(:wanted as jsonb))
         as w(pointer text, a0 float8, a1 float8, r0 float8, r1 float8) on w.pointer = d.key
    where r.run_id = :run_id and r.changed and jsonb_typeof(d.value->'abs') = 'number'
    group by w.pointer, w.a0, w.a1, w.r0, w.r1
""")

_EXAMPLE_COLUMNS = """
    r.inference_id::text as inference_id, r.inference_created_at, r.request_id, r.baseline_version,
    r.baseline_status, r.candidate_status, r.candidate_output::text as candidate_output,
    r.candidate_error::text as candidate_error, r.diffs::text as diffs, r.max_abs_diff, r.max_rel_diff,
    i.input::text as input, i.output::text as baseline_output, i.error::text as baseline_error
"""
# created_at too, so a partitioned inferences table is read in one partition per row
_JOIN_INFERENCES = "left join inferences i on i.id = r.inference_id and i.created_at = r.inference_created_at"

_LARGEST_SQL = sa.text(f"""
    select {_EXAMPLE_COLUMNS}
    from replay_results r {_JOIN_INFERENCES}
    where r.run_id = :run_id and r.max_abs_diff is not null
    order by coalesce(r.max_rel_diff, 'Infinity'::float8) desc, r.max_abs_diff desc, r.inference_id
    limit :top
""")

_EXAMPLES_SQL = sa.text(f"""
    select {_EXAMPLE_COLUMNS}
    from (select *, row_number() over (partition by baseline_status, candidate_status
                                       order by inference_created_at, inference_id) as n
          from replay_results
          where run_id = :run_id and (baseline_status <> candidate_status or candidate_status = 'error')) r
    {_JOIN_INFERENCES}
    where r.n <= :per_transition
    order by r.baseline_status, r.candidate_status, r.n
""")


def shifted_fraction(p: float, n: int, k: int) -> float | None:
    """Where the ``p`` quantile of ``n`` values, ``n - k`` of them zeros and ``k`` positive, falls among the
    ``k`` positive ones, as a fraction for ``percentile_cont``; None when it falls among the zeros
    (then :func:`combine` gives the answer)."""
    position = p * (n - 1) - (n - k)
    if k == 0 or position < 0:
        return None
    return 0.0 if k == 1 else min(1.0, position / (k - 1))


def combine(p: float, n: int, k: int, smallest: float | None, from_positive: float | None) -> float | None:
    """The ``p`` quantile (linear interpolation) of ``n`` values of which ``k`` are positive."""
    if n == 0:
        return None
    position = p * (n - 1) - (n - k)
    if k == 0 or position <= -1:
        return 0.0
    if position < 0:  # between the last zero and the smallest positive value
        return (position + 1) * (smallest or 0.0)
    return from_positive


def leaf_quantiles(conn: sa.Connection, run_id: str, leaves: Iterable[LeafStats]) -> dict[str, dict[str, Any]]:
    """``{pointer: {"abs": {"median", "p95"}, "rel": {…}}}`` for the numeric leaves, exact."""
    numeric = [leaf for leaf in leaves if leaf.numeric and leaf.pointer != OTHER_LEAVES]
    wanted = []
    for leaf in numeric:
        a = [shifted_fraction(p, leaf.numeric, leaf.nonzero) for _, p in QUANTILES]
        r = [shifted_fraction(p, leaf.rel_defined, leaf.rel_nonzero) for _, p in QUANTILES]
        wanted.append({"pointer": leaf.pointer, "a0": a[0] or 0.0, "a1": a[1] or 0.0,
                       "r0": r[0] or 0.0, "r1": r[1] or 0.0})
    found: dict[str, Any] = {}
    if any(leaf.nonzero for leaf in numeric):
        for quantiles in conn.execute(_QUANTILES_SQL, {"run_id": run_id, "wanted": orjson.dumps(wanted).decode()}):
            found[quantiles.pointer] = quantiles
    result = {}
    for leaf in numeric:
        row = found.get(leaf.pointer)
        result[leaf.pointer] = {
            "abs": {name: combine(p, leaf.numeric, leaf.nonzero, row.abs_min if row else None,
                                  row.abs_q[i] if row else None)
                    for i, (name, p) in enumerate(QUANTILES)},
            "rel": {name: combine(p, leaf.rel_defined, leaf.rel_nonzero, row.rel_min if row else None,
                                  row.rel_q[i] if row and row.rel_q else None)
                    for i, (name, p) in enumerate(QUANTILES)},
        }
    return result


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _example(row: Any) -> dict[str, Any]:
    return {
        "inference_id": row.inference_id,
        "request_id": row.request_id,
        "created_at": row.inference_created_at.isoformat(),
        "baseline_version": row.baseline_version,
        "input": _json(row.input),
        "baseline": {"status": row.baseline_status, "output": _json(row.baseline_output),
                     "error": _json(row.baseline_error)},
        "candidate": {"status": row.candidate_status, "output": _json(row.candidate_output),
                      "error": _json(row.candidate_error)},
        "diffs": _json(row.diffs) or {},
        "max_abs_diff": _finite(row.max_abs_diff),
        "max_rel_diff": _finite(row.max_rel_diff),
    }


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def largest(conn: sa.Connection, run_id: str, top: int) -> list[dict[str, Any]]:
    """The ``top`` rows with the largest numeric differences: ranked by the largest relative difference
    among the row's leaves (unit-free, so a premium and a factor compare), then the absolute one."""
    if top <= 0:
        return []
    return [_example(row) for row in conn.execute(_LARGEST_SQL, {"run_id": run_id, "top": top})]


def transition_examples(conn: sa.Connection, run_id: str, per_transition: int) -> dict[tuple[str, str], list[Any]]:
    """Up to ``per_transition`` rows of every status transition (and of every candidate error), oldest first."""
    examples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if per_transition <= 0:
        return examples
    for row in conn.execute(_EXAMPLES_SQL, {"run_id": run_id, "per_transition": per_transition}):
        examples.setdefault((row.baseline_status, row.candidate_status), []).append(_example(row))
    return examples
