"""The assignment function itself: split, weight 0, monotonicity when weights change.

Keys are hashed, so over N distinct keys the count an arm receives is (to every test's purpose)
Binomial(N, p). Tolerances are 4 standard deviations, sqrt(N·p·(1-p)): a correct scheme fails one
with probability below 1e-4, and since keys are fixed the outcome is the same on every run.
"""
from __future__ import annotations

import math
from collections import Counter

from modelplatform.routing import assign

N = 20_000
KEYS = [f"customer-{i}" for i in range(N)]


def tolerance(n: int, p: float) -> float:
    return 4 * math.sqrt(n * p * (1 - p))


def assignments(weights: dict[str, int], test: str = "t") -> list[str]:
    return [assign(test, weights, key) for key in KEYS]


def test_split_follows_the_weights_and_weight_zero_is_never_chosen() -> None:
    weights = {"a": 20, "b": 30, "c": 50, "off": 0}
    counts = Counter(assignments(weights))
    assert counts["off"] == 0
    for arm in ("a", "b", "c"):
        p = weights[arm] / 100
        assert abs(counts[arm] - N * p) <= tolerance(N, p), (arm, counts)


def test_assignment_is_salted_by_test_name() -> None:
    first, second = assignments({"a": 50, "b": 50}, "test-1"), assignments({"a": 50, "b": 50}, "test-2")
    same = sum(x == y for x, y in zip(first, second))
    # independent tests agree on half the units by chance, not on all of them
    assert abs(same - N / 2) <= tolerance(N, 0.5)


def test_two_arms_raising_one_weight_moves_exactly_the_required_units_into_it() -> None:
    before, after = assignments({"a": 50, "b": 50}), assignments({"a": 70, "b": 30})
    moves = Counter((x, y) for x, y in zip(before, after) if x != y)
    assert set(moves) == {("b", "a")}  # nothing leaves the arm that grew
    # 20 % of all units must move from b to a; nothing else may
    assert abs(moves[("b", "a")] - 0.2 * N) <= tolerance(N, 0.2), moves


def test_three_arms_raising_one_never_shuffles_units_between_the_others() -> None:
    # a: 40 → 60; b and c keep their proportions (30:30 → 20:20)
    before, after = assignments({"a": 40, "b": 30, "c": 30}), assignments({"a": 60, "b": 20, "c": 20})
    moves = Counter((x, y) for x, y in zip(before, after) if x != y)
    assert set(moves) <= {("b", "a"), ("c", "a")}
    assert abs(sum(moves.values()) - 0.2 * N) <= tolerance(N, 0.2), moves
    assert abs(moves[("b", "a")] - 0.1 * N) <= tolerance(N, 0.1), moves

    # and lowering it back moves exactly those units back out of a
    again = assignments({"a": 40, "b": 30, "c": 30})
    assert again == before


def test_adding_an_arm_only_takes_units_into_the_new_arm() -> None:
    before, after = assignments({"a": 50, "b": 50}), assignments({"a": 45, "b": 45, "new": 10})
    moves = Counter((x, y) for x, y in zip(before, after) if x != y)
    assert set(moves) <= {("a", "new"), ("b", "new")}
    assert abs(sum(moves.values()) - 0.1 * N) <= tolerance(N, 0.1), moves
