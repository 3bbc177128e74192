"""Choosing the version that serves an unpinned request.

:class:`DefaultRouter` sends everything to the model's default; the A/B router replaces it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from modelplatform.audit.records import RoutedBy
from modelplatform.registry import RegisteredModel


@dataclass(frozen=True)
class Route:
    version: str
    routed_by: RoutedBy
    experiment: str | None = None
    routing_key: str | None = None


class Router(Protocol):
    def route(self, model: RegisteredModel, payload: Any, routing_key: str | None) -> Route:
        """Pick a version for an unpinned request; ``routing_key`` is the ``X-Routing-Key`` header."""


class DefaultRouter:
    def route(self, model: RegisteredModel, payload: Any, routing_key: str | None) -> Route:
        return Route(version=model.spec.default, routed_by="default")
