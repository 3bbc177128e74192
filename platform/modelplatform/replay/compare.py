"""Comparing a candidate's outcome with the recorded one, leaf by leaf.

An output is flattened into its leaves, each named by its RFC 6901 JSON Pointer (``/premium``,
``/factors/vehicle``, ``/scores/0``); empty objects and arrays are leaves too. A leaf that is a number
in both outputs (``true`` is not a number) is *numeric*: its absolute difference ``|c - b|`` and
relative difference ``|c - b| / |b|`` are measured (the relative one is undefined when ``b`` is 0 and
``c`` is not). Any other leaf is compared for equality. A leaf present in only one output is
``added``/``removed``.

A row is *changed* when its status differs, when both are ``ok`` and any leaf differs (numbers by
value: ``405.00`` equals ``405``), or when both are ``rejected`` with different codes. Two
``invalid_input`` or two ``error`` outcomes are the same outcome whatever their messages.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelplatform.pointers import child

MAX_SHOWN_CHARS = 200
# a model whose output keys vary per row (ids as keys) would grow one statistic per key: beyond this
# many distinct leaves, further ones are counted together instead of one by one
MAX_TRACKED_LEAVES = 2000
OTHER_LEAVES = "(other leaves)"

_TOLERANCE = re.compile(
    r"^\s*(?:(?P<path>/[^=]*|)=)?\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<pct>%?)\s*$")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_branch(node: Any) -> bool:
    return isinstance(node, (dict, list)) and bool(node)


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{pointer: leaf}`` for every leaf of a JSON value (the root itself when it is a scalar)."""
    found: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict) and node:
            stack.extend((child(pointer, key), value) for key, value in node.items())
        elif isinstance(node, list) and node:
            stack.extend((child(pointer, index), value) for index, value in enumerate(node))
        else:
            found[pointer] = node
    return found


@dataclass(frozen=True)
class Tolerance:
    """How far a numeric leaf may move before it counts as *beyond tolerance*: ``value`` absolute, or
    relative when ``relative`` (``1%`` → 0.01)."""

    value: float = 0.0
    relative: bool = False

    def exceeded(self, abs_diff: float, rel_diff: float | None) -> bool:
        if not self.relative:
            return abs_diff > self.value
        return abs_diff > 0 and (rel_diff is None or rel_diff > self.value)

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


@dataclass(frozen=True)
class Tolerances:
    """A default tolerance and per-leaf ones: ``0.01,/premium=0.5%`` (see :func:`parse_tolerances`)."""

    default: Tolerance = Tolerance()
    per_leaf: Mapping[str, Tolerance] = field(default_factory=dict)

    def for_leaf(self, pointer: str) -> Tolerance:
        return self.per_leaf.get(pointer, self.default)

    def __str__(self) -> str:
        return ",".join([str(self.default)] + [f"{p}={t}" for p, t in self.per_leaf.items()])


def parse_tolerances(text: str) -> Tolerances:
    """Parse ``VALUE[%][,/pointer=VALUE[%]…]``: a bare value is the default for every numeric leaf,
    ``/pointer=…`` sets one leaf's. ``%`` makes it relative. Raises ``ValueError`` naming the bad part."""
    default = Tolerance()
    per_leaf: dict[str, Tolerance] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _TOLERANCE.match(part)
        if not match:
            raise ValueError(f"tolerance {part!r}: write a number (0.01), a percentage (0.5%), or "
                             "/pointer=number (/premium=0.5)")
        value = float(match["value"])
        tolerance = Tolerance(value / 100, True) if match["pct"] else Tolerance(value, False)
        if match["path"]:
            per_leaf[match["path"]] = tolerance
        else:
            default = tolerance
    return Tolerances(default, per_leaf)


def _show(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_SHOWN_CHARS:
        return value[:MAX_SHOWN_CHARS - 1] + "…"
    return value


def _same_scalar(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return a == b
    return type(a) is type(b) and a == b


@dataclass
class RowComparison:
    """One row's comparison. ``diffs`` maps each leaf that differs to what differs (for storage)."""

    changed: bool
    diffs: dict[str, dict[str, Any]]
    max_abs_diff: float | None
    max_rel_diff: float | None


@dataclass
class LeafStats:
    """Streaming statistics of one leaf over the rows where both outcomes are ``ok``.

    Sums and maxima are kept here; medians and p95s are computed exactly at the end from the stored
    per-row differences (:mod:`modelplatform.replay.summary`), using ``nonzero`` to place the zeros.
    """

    pointer: str
    tolerance: Tolerance
    compared: int = 0  # present in both outputs
    numeric: int = 0  # numbers in both
    changed: int = 0
    added: int = 0
    removed: int = 0
    beyond: int = 0
    nonzero: int = 0  # numeric with a difference
    rel_defined: int = 0  # numeric with a defined relative difference (zeros included)
    rel_nonzero: int = 0
    sum_abs: float = 0.0
    sum_rel: float = 0.0
    max_abs: float = 0.0
    max_rel: float | None = None

    def add_numeric(self, abs_diff: float, rel_diff: float | None) -> None:
        self.numeric += 1
        if abs_diff > 0:
            self.nonzero += 1
            self.changed += 1
            self.sum_abs += abs_diff
            self.max_abs = max(self.max_abs, abs_diff)
        if rel_diff is not None:
            self.rel_defined += 1
            if rel_diff > 0:
                self.rel_nonzero += 1
                self.sum_rel += rel_diff
                self.max_rel = rel_diff if self.max_rel is None else max(self.max_rel, rel_diff)
            elif self.max_rel is None:
                self.max_rel = 0.0
        if self.tolerance.exceeded(abs_diff, rel_diff):
            self.beyond += 1


class Comparer:
    """Compares rows and keeps per-leaf and per-transition counts. Memory: one :class:`LeafStats` per
    distinct leaf (at most :data:`MAX_TRACKED_LEAVES`), never per row."""

    def __init__(self, tolerances: Tolerances | None = None) -> None:
        self.tolerances = tolerances or Tolerances()
        self.leaves: dict[str, LeafStats] = {}
        self.transitions: dict[tuple[str, str], int] = {}
        self.baseline_statuses: dict[str, int] = {}
        self.candidate_statuses: dict[str, int] = {}
        self.rows = 0
        self.changed = 0
        self.both_ok = 0

    def _leaf(self, pointer: str) -> LeafStats:
        stats = self.leaves.get(pointer)
        if stats is None:
            if len(self.leaves) >= MAX_TRACKED_LEAVES:
                pointer = OTHER_LEAVES
                stats = self.leaves.get(pointer)
            if stats is None:
                stats = self.leaves[pointer] = LeafStats(pointer, self.tolerances.for_leaf(pointer))
        return stats

    def compare(self, baseline_status: str, baseline_output: Any, baseline_error: Any,
                candidate_status: str, candidate_output: Any, candidate_error: Any) -> RowComparison:
        """Compare one row (outputs decoded; errors as recorded) and count it."""
        self.rows += 1
        self.baseline_statuses[baseline_status] = self.baseline_statuses.get(baseline_status, 0) + 1
        self.candidate_statuses[candidate_status] = self.candidate_statuses.get(candidate_status, 0) + 1
        key = (baseline_status, candidate_status)
        self.transitions[key] = self.transitions.get(key, 0) + 1
        result = RowComparison(baseline_status != candidate_status, {}, None, None)
        if baseline_status == candidate_status == "ok":
            self.both_ok += 1
            self._compare_outputs(baseline_output, candidate_output, result)
        elif baseline_status == candidate_status == "rejected":
            before, after = _code(baseline_error), _code(candidate_error)
            if before != after:
                result.changed = True
                result.diffs["(rejection code)"] = {"baseline": before, "candidate": after}
        if result.changed:
            self.changed += 1
        return result

    def _compare_outputs(self, baseline: Any, candidate: Any, result: RowComparison) -> None:
        # one walk over both outputs while their shapes agree (the common case: no pointer dictionaries
        # to build); where they part (an object against an array or a scalar), the two subtrees are
        # flattened and matched by pointer
        stack: list[tuple[str, Any, Any]] = [("", baseline, candidate)]
        while stack:
            pointer, b, c = stack.pop()
            if type(b) is dict and type(c) is dict and b and c:
                for key, value in b.items():
                    if key in c:
                        stack.append((child(pointer, key), value, c[key]))
                    else:
                        self._one_side(child(pointer, key), value, "baseline", result)
                for key, value in c.items():
                    if key not in b:
                        self._one_side(child(pointer, key), value, "candidate", result)
            elif type(b) is list and type(c) is list and b and c:
                common = min(len(b), len(c))
                stack.extend((child(pointer, i), b[i], c[i]) for i in range(common))
                for i in range(common, len(b)):
                    self._one_side(child(pointer, i), b[i], "baseline", result)
                for i in range(common, len(c)):
                    self._one_side(child(pointer, i), c[i], "candidate", result)
            elif _is_branch(b) or _is_branch(c):
                before, after = leaves(b, pointer), leaves(c, pointer)
                for leaf, value in before.items():
                    if leaf in after:
                        self._pair(leaf, value, after[leaf], result)
                    else:
                        self._one_side(leaf, value, "baseline", result)
                for leaf, value in after.items():
                    if leaf not in before:
                        self._one_side(leaf, value, "candidate", result)
            else:
                self._pair(pointer, b, c, result)

    def _one_side(self, pointer: str, value: Any, side: str, result: RowComparison) -> None:
        """Every leaf under ``pointer`` exists only in the ``side`` output (``baseline``: removed)."""
        for leaf, leaf_value in leaves(value, pointer).items():
            stats = self._leaf(leaf)
            if side == "baseline":
                stats.removed += 1
            else:
                stats.added += 1
            stats.changed += 1
            result.changed = True
            result.diffs[leaf] = {side: _show(leaf_value)}

    def _pair(self, pointer: str, b: Any, c: Any, result: RowComparison) -> None:
        """One leaf present in both outputs."""
        stats = self._leaf(pointer)
        stats.compared += 1
        if type(b) in _NUMBERS and type(c) in _NUMBERS:
            if type(b) is int and type(c) is int:
                abs_diff = float(abs(c - b))
            else:
                abs_diff = abs(float(c) - float(b))
            rel_diff = (abs_diff / abs(float(b))) if b != 0 else (0.0 if abs_diff == 0 else None)
            stats.add_numeric(abs_diff, rel_diff)
            if abs_diff > 0:
                result.changed = True
                result.diffs[pointer] = {"baseline": b, "candidate": c, "abs": abs_diff, "rel": rel_diff}
                result.max_abs_diff = abs_diff if result.max_abs_diff is None else max(result.max_abs_diff, abs_diff)
                if rel_diff is not None:
                    result.max_rel_diff = (rel_diff if result.max_rel_diff is None
                                           else max(result.max_rel_diff, rel_diff))
        elif not _same_scalar(b, c):
            stats.changed += 1
            result.changed = True
            result.diffs[pointer] = {"baseline": _show(b), "candidate": _show(c)}


_NUMBERS = (int, float)  # exact types: bool is not a number here


def _code(error: Any) -> Any:
    return error.get("code") if isinstance(error, dict) else None
