"""What A/B routing and shadow queuing add to an unpinned call, measured in one run.

    .venv/bin/python benchmarks/ab_routing.py

Prints µs per call and the ratio to the baseline (:class:`DefaultRouter`, which the A/B router replaces)
for: a sticky key read by JSON Pointer from the body (2 arms), a header key (4 arms), a call without a
key (random by weights), and one :meth:`ShadowDispatcher.submit` (a non-blocking put; a worker thread
drains the queue meanwhile, as in production). No database or store is involved: this is the cost the
data plane adds on the request thread.
"""
from __future__ import annotations

import timeit
from types import MappingProxyType

from modelplatform.config import ABTest, ModelSpec
from modelplatform.inference import Route, ShadowCall
from modelplatform.registry import RegisteredModel
from modelplatform.routing import ABRouter, DefaultRouter
from modelplatform.shadow import ShadowDispatcher

BODY = {"customer_id": "c-123456", "vehicle": "suv", "driver_age": 40, "annual_km": 12000}


def model(name: str, weights: dict[str, int]) -> RegisteredModel:
    spec = ModelSpec(name=name, description="", active_versions=tuple(weights), default=min(weights),
                     sha256=MappingProxyType({}), schemas=MappingProxyType({}),
                     ab_test=ABTest(f"{name}-test", MappingProxyType(weights), "/customer_id"))
    return RegisteredModel(spec=spec, versions=MappingProxyType({}))


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main(number: int = 50_000) -> None:
    two = model("two", {"1.0.0": 50, "2.0.0": 50})
    four = model("four", {"1.0.0": 10, "2.0.0": 20, "3.0.0": 30, "4.0.0": 40})
    default, ab = DefaultRouter(), ABRouter({m.name: m.spec.ab_test for m in (two, four)})

    cases = {
        "default router (baseline)": lambda: default.route(two, BODY, None),
        "ab: sticky_key, 2 arms": lambda: ab.route(two, BODY, None),
        "ab: header key, 4 arms": lambda: ab.route(four, BODY, "customer-42"),
        "ab: no key, random": lambda: ab.route(two, {"vehicle": "suv"}, None),
    }
    dispatcher = ShadowDispatcher(lambda call: None, max_queue=10 * number)
    call = ShadowCall(loaded=None, route=Route("2.0.0", "shadow"), request=None, size=100)  # type: ignore[arg-type]
    cases["shadow submit (queue put)"] = lambda: dispatcher.submit(call)

    baseline = None
    print(f"{'case':28} {'µs/call':>8} {'ratio':>7}")
    for name, fn in cases.items():
        us = per_call_us(fn, number)
        baseline = baseline or us
        print(f"{name:28} {us:8.2f} {us / baseline:7.1f}")
    dispatcher.close(timeout=30)
    print(f"\nshadow calls run {dispatcher.completed}, dropped {dispatcher.dropped}")


if __name__ == "__main__":
    main()
