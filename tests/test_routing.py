"""Routing (routing.py): the assignment function itself (split, weight 0, monotonicity when weights change), and
the router that picks the version of an unpinned call from a model's ``ab_test`` (sticky key, header, no key).

Keys are hashed, so over N distinct keys the count an arm receives is (to every test's purpose)
Binomial(N, p). Tolerances are 4 standard deviations, sqrt(N·p·(1-p)): a correct scheme fails one
with probability below 1e-4, and since keys are fixed the outcome is the same on every run.
"""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from modelplatform.registry import RegisteredModel
from modelplatform.routing import MAX_ROUTING_KEY_CHARS, ABRouter, Route, assign
from support.memory import MemoryPlatform
from support.models import Echo

N = 20_000
KEYS = [f"customer-{i}" for i in range(N)]
WEIGHTS = {"1.0.0": 50, "2.0.0": 50}


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
    same = sum(x == y for x, y in zip(first, second, strict=True))
    # independent tests agree on half the units by chance, not on all of them
    assert abs(same - N / 2) <= tolerance(N, 0.5)


def test_two_arms_raising_one_weight_moves_exactly_the_required_units_into_it() -> None:
    before, after = assignments({"a": 50, "b": 50}), assignments({"a": 70, "b": 30})
    moves = Counter((x, y) for x, y in zip(before, after, strict=True) if x != y)
    assert set(moves) == {("b", "a")}  # nothing leaves the arm that grew
    # 20 % of all units must move from b to a; nothing else may
    assert abs(moves[("b", "a")] - 0.2 * N) <= tolerance(N, 0.2), moves


def test_three_arms_raising_one_never_shuffles_units_between_the_others() -> None:
    # a: 40 → 60; b and c keep their proportions (30:30 → 20:20)
    before, after = assignments({"a": 40, "b": 30, "c": 30}), assignments({"a": 60, "b": 20, "c": 20})
    moves = Counter((x, y) for x, y in zip(before, after, strict=True) if x != y)
    assert set(moves) <= {("b", "a"), ("c", "a")}
    assert abs(sum(moves.values()) - 0.2 * N) <= tolerance(N, 0.2), moves
    assert abs(moves[("b", "a")] - 0.1 * N) <= tolerance(N, 0.1), moves

    # and lowering it back moves exactly those units back out of a
    again = assignments({"a": 40, "b": 30, "c": 30})
    assert again == before


def test_adding_an_arm_only_takes_units_into_the_new_arm() -> None:
    before, after = assignments({"a": 50, "b": 50}), assignments({"a": 45, "b": 45, "new": 10})
    moves = Counter((x, y) for x, y in zip(before, after, strict=True) if x != y)
    assert set(moves) <= {("a", "new"), ("b", "new")}
    assert abs(sum(moves.values()) - 0.1 * N) <= tolerance(N, 0.1), moves


# -- the router: which version serves an unpinned call ------------------------------------------------------


def rollout(weights: dict[str, int] | None = None, *, sticky_key: str | None = "/customer_id",
            name: str = "rollout-test") -> RegisteredModel:
    """A model ``rollout`` with one echo version per weight and an ``ab_test`` over them, in memory."""
    weights = WEIGHTS if weights is None else weights
    test: dict[str, Any] = {"name": name, "weights": weights}
    if sticky_key is not None:
        test["sticky_key"] = sticky_key
    memory = MemoryPlatform()
    memory.add("rollout", {version: Echo() for version in weights}, default=min(weights), ab_test=test)
    return memory.registry().model("rollout")


def router_for(model: RegisteredModel, seed: int | None = None) -> ABRouter:
    return ABRouter({model.name: model.spec.ab_test}, None if seed is None else random.Random(seed))


def test_the_sticky_key_assigns_each_unit_to_its_arm_by_the_weights() -> None:
    model = rollout()
    router = router_for(model)
    routes = [router.route(model, {"customer_id": f"c{i}"}, None) for i in range(1000)]
    assert {(r.routed_by, r.experiment) for r in routes} == {("ab_test", "rollout-test")}
    assert [r.routing_key for r in routes] == [f"c{i}" for i in range(1000)]
    assert all(r.version == assign("rollout-test", WEIGHTS, r.routing_key) for r in routes)
    versions = Counter(r.version for r in routes)
    assert abs(versions["1.0.0"] - 500) <= tolerance(1000, 0.5), versions


def test_a_number_and_the_same_digits_in_the_header_are_one_unit() -> None:
    model = rollout()
    router = router_for(model)
    by_body, by_header = router.route(model, {"customer_id": 7}, None), router.route(model, {}, "7")
    assert by_body == by_header
    assert by_body.version == assign("rollout-test", WEIGHTS, "7") and by_body.routing_key == "7"


def test_the_header_overrides_the_sticky_key() -> None:
    model = rollout()
    header = next(f"h{i}" for i in range(100)
                  if assign("rollout-test", WEIGHTS, f"h{i}") != assign("rollout-test", WEIGHTS, "p"))
    route = router_for(model).route(model, {"customer_id": "p"}, header)
    assert (route.version, route.routing_key) == (assign("rollout-test", WEIGHTS, header), header)


def test_routers_built_apart_assign_every_unit_alike() -> None:
    model = rollout()
    other = rollout()  # another registry, another router: nothing shared but the config
    keys = [f"k{i}" for i in range(200)]
    assert [router_for(model).route(model, {"customer_id": k}, None) for k in keys] == \
           [router_for(other).route(other, {"customer_id": k}, None) for k in keys]


@pytest.mark.parametrize("payload", [{"other": 1}, {"customer_id": None}, {"customer_id": {"nested": 1}},
                                     {"customer_id": [1]}, {"customer_id": ""}, "not an object", [1, 2]],
                         ids=["absent", "null", "object", "array", "empty", "string-body", "array-body"])
def test_without_a_key_a_call_is_assigned_at_random_by_the_weights(payload: Any) -> None:
    model = rollout()
    router = router_for(model, seed=7)
    routes = [router.route(model, payload, None) for _ in range(400)]
    assert {(r.routed_by, r.experiment, r.routing_key) for r in routes} == {("ab_test", "rollout-test", None)}
    versions = Counter(r.version for r in routes)
    assert abs(versions["1.0.0"] - 200) <= tolerance(400, 0.5), versions


def test_a_test_without_sticky_key_uses_the_header_or_chance() -> None:
    model = rollout(sticky_key=None)
    router = router_for(model, seed=3)
    assert {router.route(model, {"customer_id": "c1"}, "u1").version for _ in range(20)} == \
           {assign("rollout-test", WEIGHTS, "u1")}
    assert {router.route(model, {"customer_id": "c1"}, None).routing_key for _ in range(20)} == {None}
    assert len({router.route(model, {"customer_id": "c1"}, None).version for _ in range(60)}) == 2


def test_an_arm_of_weight_zero_is_never_chosen_with_or_without_a_key() -> None:
    model = rollout({"1.0.0": 0, "2.0.0": 100})
    router = router_for(model, seed=5)
    assert {router.route(model, {"customer_id": f"c{i}"}, None).version for i in range(100)} == {"2.0.0"}
    assert {router.route(model, {}, None).version for _ in range(100)} == {"2.0.0"}


def test_a_deploy_raising_a_weight_moves_units_only_into_that_arm() -> None:
    before_model, after_model = rollout({"1.0.0": 50, "2.0.0": 50}), rollout({"1.0.0": 20, "2.0.0": 80})
    before_router, after_router = router_for(before_model), router_for(after_model)
    keys = [f"k{i}" for i in range(300)]
    before = [before_router.route(before_model, {"customer_id": k}, None).version for k in keys]
    after = [after_router.route(after_model, {"customer_id": k}, None).version for k in keys]
    moves = Counter((x, y) for x, y in zip(before, after, strict=True) if x != y)
    assert set(moves) == {("1.0.0", "2.0.0")}
    assert abs(moves[("1.0.0", "2.0.0")] - 0.3 * 300) <= tolerance(300, 0.3), moves


def test_a_model_without_a_test_goes_to_its_default_and_keeps_the_callers_key() -> None:
    memory = MemoryPlatform()
    memory.add("plain", {"1.0.0": Echo(), "2.0.0": Echo()}, default="1.0.0")
    registry = memory.registry()
    route = ABRouter.from_registry(registry).route(registry.model("plain"), {"customer_id": "c1"}, "u1")
    assert route == Route(version="1.0.0", routed_by="default", experiment=None, routing_key="u1")


def test_a_long_key_is_recorded_as_a_bounded_digest_and_stays_sticky() -> None:
    model = rollout()
    router = router_for(model)
    first, second = (router.route(model, {"customer_id": "x" * 5000}, None) for _ in range(2))
    assert first == second
    assert first.routing_key.startswith("blake2b:") and len(first.routing_key) <= MAX_ROUTING_KEY_CHARS
    assert router.route(model, {}, "y" * MAX_ROUTING_KEY_CHARS).routing_key == "y" * MAX_ROUTING_KEY_CHARS


def test_a_sticky_key_pointing_through_a_string_gives_no_key() -> None:
    model = rollout(sticky_key="/customer/0")
    route = router_for(model, seed=1).route(model, {"customer": "abc"}, None)
    assert route.routing_key is None and route.routed_by == "ab_test"


ANOTHER_PROCESS = """
import json, sys
from modelplatform.routing import assign
print(json.dumps([assign("rollout-test", {"1.0.0": 50, "2.0.0": 50}, key) for key in json.load(sys.stdin)]))
"""


@pytest.mark.slow
def test_a_process_with_another_hash_seed_assigns_every_unit_alike() -> None:
    keys = [f"k{i}" for i in range(200)]
    model = rollout()
    here = [router_for(model).route(model, {"customer_id": key}, None).version for key in keys]
    # a fresh interpreter with its own str hashes: only the assignment scheme is shared
    done = subprocess.run([sys.executable, "-c", ANOTHER_PROCESS], input=json.dumps(keys), capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == here
