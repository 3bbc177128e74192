"""``--fail-on``: thresholds on a replay's differences that make the command exit 1 (CI gates a config
pull request on them).

Syntax: conditions separated by commas, each ``METRIC OP VALUE`` with ``OP`` one of ``>``, ``>=``::

    changed>1%,error>0,ok->rejected>=10,/premium:p95>5,/premium:rel_max>10%

Row metrics (``VALUE`` a count, or ``N%`` of the rows replayed):

- ``changed``: rows whose outcome changed (status, output, or rejection code);
- ``status_changed``: rows whose status changed;
- ``ok``, ``invalid_input``, ``rejected``, ``error``: rows that *newly* have this status (the recorded
  one was different), e.g. ``error>0`` fails on any input the candidate fails on and the live version
  did not;
- ``FROM->TO``: one status transition, e.g. ``ok->rejected``;
- ``not_replayable``: rows skipped because their recorded input is not a full input (``N%`` of the
  rows read).

Leaf metrics, ``/pointer:STAT`` (over the rows where both outcomes are ``ok``):

- ``changed`` (a count, or ``N%`` of those rows) and ``beyond`` (numeric leaves beyond ``--tolerance``:
  a count, or ``N%`` of the rows where the leaf is a number in both outputs);
- ``mean``, ``median``, ``p95``, ``max``: the absolute difference (a plain number; ``%`` is refused);
- ``rel_mean``, ``rel_median``, ``rel_p95``, ``rel_max``: the relative difference (``0.05`` or ``5%``).

A leaf the replay never saw has nothing to compare and never fails.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

STATUSES = ("ok", "invalid_input", "rejected", "error")
ROW_METRICS = ("changed", "status_changed", "not_replayable", *STATUSES)
ABS_STATS = ("mean", "median", "p95", "max")
REL_STATS = tuple(f"rel_{s}" for s in ABS_STATS)
LEAF_COUNTS = ("changed", "beyond")
_CONDITION = re.compile(r"^\s*(?P<metric>.+?)\s*(?P<op>>=|>)\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
                        r"\s*(?P<pct>%?)\s*$")
_TRANSITION = re.compile(r"^(?P<src>[a-z_]+)->(?P<dst>[a-z_]+)$")


@dataclass(frozen=True)
class Condition:
    """One threshold. ``share`` when the value was written with ``%`` (stored as a fraction)."""

    text: str
    metric: str
    op: str
    value: float
    share: bool
    pointer: str | None = None
    stat: str | None = None

    def holds(self, observed: float) -> bool:
        return observed > self.value if self.op == ">" else observed >= self.value


@dataclass(frozen=True)
class GateResult:
    """``observed`` is a fraction when the condition was written with ``%`` (``share``)."""

    condition: str
    observed: float | None
    failed: bool
    share: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "observed": self.observed, "share": self.share, "failed": self.failed}


def parse_fail_on(text: str) -> tuple[Condition, ...]:
    """Parse a ``--fail-on`` value. Raises ``ValueError`` naming the bad condition and the syntax."""
    conditions = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _CONDITION.match(part)
        if not match:
            raise ValueError(f"--fail-on {part!r}: write METRIC>VALUE or METRIC>=VALUE, e.g. changed>1%, "
                             "error>0, ok->rejected>0, /premium:p95>5")
        metric, op, share = match["metric"], match["op"], bool(match["pct"])
        value = float(match["value"]) / (100 if share else 1)
        pointer = stat = None
        if metric.startswith("/"):
            pointer, sep, stat = metric.rpartition(":")
            if not sep or not pointer:
                raise ValueError(f"--fail-on {part!r}: a leaf condition reads /pointer:STAT>VALUE with STAT one "
                                 f"of {', '.join(LEAF_COUNTS + ABS_STATS + REL_STATS)}")
            if stat not in LEAF_COUNTS + ABS_STATS + REL_STATS:
                raise ValueError(f"--fail-on {part!r}: unknown statistic {stat!r}; use one of "
                                 f"{', '.join(LEAF_COUNTS + ABS_STATS + REL_STATS)}")
            if stat in ABS_STATS and share:
                raise ValueError(f"--fail-on {part!r}: {stat} is an absolute difference, so % means nothing; "
                                 f"use rel_{stat} for a relative one")
        elif metric not in ROW_METRICS:
            transition = _TRANSITION.match(metric)
            if not transition or transition["src"] not in STATUSES or transition["dst"] not in STATUSES:
                raise ValueError(f"--fail-on {part!r}: unknown metric {metric!r}; use one of "
                                 f"{', '.join(ROW_METRICS)}, a transition such as ok->rejected, or "
                                 "/pointer:STAT")
        conditions.append(Condition(part, metric, op, value, share, pointer, stat))
    return tuple(conditions)


def evaluate(conditions: tuple[Condition, ...], report: dict[str, Any]) -> list[GateResult]:
    """Each condition against a replay report (the document :mod:`modelplatform.replay.summary` builds)."""
    rows = report["rows"]
    transitions = {(t["from"], t["to"]): t["count"] for t in report["transitions"]}
    leaves = {leaf["pointer"]: leaf for leaf in report["leaves"]}
    results = []
    for condition in conditions:
        observed: float | None
        if condition.pointer is not None:
            observed = _leaf_value(condition, leaves.get(condition.pointer), report["rows"]["both_ok"])
        else:
            denominator = rows["read"] if condition.metric == "not_replayable" else rows["replayed"]
            count = _row_count(condition.metric, rows, transitions)
            observed = (count / denominator if denominator else 0.0) if condition.share else float(count)
        failed = observed is not None and condition.holds(observed)
        results.append(GateResult(condition.text, observed, failed, condition.share))
    return results


def _row_count(metric: str, rows: dict[str, Any], transitions: dict[tuple[str, str], int]) -> int:
    if metric == "changed":
        return rows["changed"]
    if metric == "not_replayable":
        return rows["not_replayable"]
    if metric == "status_changed":
        return sum(n for (src, dst), n in transitions.items() if src != dst)
    if metric in STATUSES:
        return sum(n for (src, dst), n in transitions.items() if dst == metric and src != metric)
    src, dst = metric.split("->")
    return transitions.get((src, dst), 0)


def _leaf_value(condition: Condition, leaf: dict[str, Any] | None, both_ok: int) -> float | None:
    if leaf is None:
        return None
    stat = condition.stat
    assert stat is not None  # parse_condition gives every leaf condition a stat
    if stat in LEAF_COUNTS:
        count = leaf[stat]
        denominator = both_ok if stat == "changed" else leaf["numeric"]
        return (count / denominator if denominator else 0.0) if condition.share else float(count)
    group, _, name = stat.rpartition("_") if stat.startswith("rel_") else ("abs", "", stat)
    value = (leaf.get(group) or {}).get(name)
    return None if value is None else float(value)
