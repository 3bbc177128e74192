"""Choosing the version that serves an unpinned request.

:class:`DefaultRouter` sends everything to the model's default. :class:`ABRouter` assigns the calls of a
model that has an ``ab_test`` to one of its arms and falls back to the default for the others.

Assignment scheme (``docs/ab-testing.md`` explains it for readers of the config)
--------------------------------------------------------------------------------
Weighted rendezvous (highest-random-weight) hashing, in its "exponential race" form. For a unit key
``k`` of test ``T`` each arm ``v`` with weight ``w > 0`` draws ``u = H(T, v, k)``, a number in (0, 1)
from BLAKE2b, and scores ``-ln(u) / w``; the lowest score wins (ties: the smaller version string).
``-ln(u)`` is exponentially distributed, so arm ``v`` wins with probability ``w / Σw`` (the split),
and because ``u`` depends only on ``(T, v, k)``:

- *sticky*: the same ``(T, k)`` gets the same arm in every process, host and restart, and the test
  name salts the hash so two tests never assign the same units together;
- *monotone*: raising one arm's weight while the others keep their proportions only lowers that arm's
  scores, so units move into it and never between the other arms; lowering one arm moves units only
  out of it. With two arms every change is of this kind and moves exactly ``|Δw| %`` of the units;
- weight 0 is never chosen.

A call without a key (no ``X-Routing-Key`` header and nothing scalar at ``sticky_key``) is assigned at
random by the weights.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonpointer

from modelplatform import encoding
from modelplatform.config import ABTest
from modelplatform.inference import Route
from modelplatform.registry import RegisteredModel, Registry

# routing keys end up in the audit table; longer keys are replaced by a digest of themselves
MAX_ROUTING_KEY_CHARS = 256
_HASH_PERSON = b"mp-ab-v1"  # versions the scheme: changing it would reassign every unit
_MISSING = object()


class Router(Protocol):
    def route(self, model: RegisteredModel, payload: Any, routing_key: str | None) -> Route:
        """Pick a version for an unpinned request; ``routing_key`` is the ``X-Routing-Key`` header."""


class DefaultRouter:
    """Everything to the model's default; a caller's ``X-Routing-Key`` is still recorded."""

    def route(self, model: RegisteredModel, payload: Any, routing_key: str | None) -> Route:
        return Route(version=model.spec.default, routed_by="default", routing_key=routing_key)


def arm_score(test: str, version: str, key: str, weight: int) -> float:
    """The arm's score for ``key`` in the race: ``-ln(u) / weight``; the lowest wins."""
    digest = hashlib.blake2b(digest_size=8, person=_HASH_PERSON)
    for part in (test, version, key):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(4, "big"))  # length-prefixed: ("ab", "c") ≠ ("a", "bc")
        digest.update(data)
    # 53 bits map exactly onto a double; the half step keeps u strictly inside (0, 1)
    u = ((int.from_bytes(digest.digest(), "big") >> 11) + 0.5) / float(1 << 53)
    return -math.log(u) / weight


def assign(test: str, weights: Mapping[str, int], key: str) -> str:
    """The arm of ``key`` in ``test``: deterministic, weighted and monotone (see the module docstring).

    Raises ``ValueError`` when no arm has a positive weight.
    """
    arms = [(arm_score(test, version, key, weight), version) for version, weight in weights.items() if weight > 0]
    if not arms:
        raise ValueError(f"ab_test {test!r} has no arm with a positive weight")
    return min(arms)[1]


def unit_key(value: Any) -> str | None:
    """A routing key from a scalar JSON value: strings as they are, numbers and booleans as JSON text
    (so ``42`` and the header ``42`` are the same unit). ``null``, objects, arrays give no key."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, (bool, int, float)):
        return encoding.dumps(value).decode()
    return None


def bounded(key: str) -> str:
    """``key`` itself when short enough to record, else a stable digest standing for it."""
    if len(key) <= MAX_ROUTING_KEY_CHARS:
        return key
    return "blake2b:" + hashlib.blake2b(key.encode("utf-8"), digest_size=32).hexdigest()


@dataclass(frozen=True)
class _CompiledTest:
    test: ABTest
    pointer: jsonpointer.JsonPointer | None
    versions: tuple[str, ...]
    weights: tuple[int, ...]

    @classmethod
    def build(cls, test: ABTest) -> _CompiledTest:
        arms = sorted((v, w) for v, w in test.weights.items() if w > 0)
        return cls(
            test=test,
            pointer=None if test.sticky_key is None else jsonpointer.JsonPointer(test.sticky_key),
            versions=tuple(v for v, _ in arms),
            weights=tuple(w for _, w in arms),
        )

    def key_from(self, payload: Any, header: str | None) -> str | None:
        if header is not None:
            return bounded(header)
        if self.pointer is None:
            return None
        try:
            value = self.pointer.resolve(payload, _MISSING)
        except jsonpointer.JsonPointerException:  # e.g. an array index into a string
            return None
        key = None if value is _MISSING else unit_key(value)
        return None if key is None else bounded(key)


class ABRouter:
    """Routes unpinned calls of models with an ``ab_test`` by it, others to their default.

    Built once per process from the registry (the pointers are compiled then). The random source for
    keyless calls is seeded from the OS in the process that builds the router, so forked workers built
    after the fork do not share a sequence.
    """

    def __init__(self, tests: Mapping[str, ABTest], rng: random.Random | None = None) -> None:
        self._tests = {model: _CompiledTest.build(test) for model, test in tests.items()}
        self._rng = rng if rng is not None else random.Random()
        self._default = DefaultRouter()

    @classmethod
    def from_registry(cls, registry: Registry, rng: random.Random | None = None) -> ABRouter:
        return cls({m.name: m.spec.ab_test for m in registry if m.spec.ab_test is not None}, rng)

    def route(self, model: RegisteredModel, payload: Any, routing_key: str | None) -> Route:
        compiled = self._tests.get(model.name)
        if compiled is None:
            return self._default.route(model, payload, routing_key)
        name = compiled.test.name
        key = compiled.key_from(payload, routing_key)
        if key is None:
            version = self._rng.choices(compiled.versions, weights=compiled.weights)[0]
        else:
            version = assign(name, compiled.test.weights, key)
        return Route(version=version, routed_by="ab_test", experiment=name, routing_key=key)
