"""Helpers for the A/B tests: a model with one echo version per arm under a sticky test."""
from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from support import Platform
from support.models import Echo

TEST_NAME = "pricing-rollout"


def ab_model(platform: Platform, weights: dict[str, int], *, sticky_key: str | None = "/customer_id",
             name: str = TEST_NAME, **entry: Any) -> Platform:
    """Publish ``rollout`` with one echo version per weight and an ``ab_test`` over them."""
    test: dict[str, Any] = {"name": name, "weights": weights}
    if sticky_key is not None:
        test["sticky_key"] = sticky_key
    platform.add("rollout", {version: Echo() for version in weights}, default=min(weights), ab_test=test, **entry)
    return platform


def predict(client: FlaskClient, body: Any, **headers: str) -> dict[str, Any]:
    response = client.post("/models/rollout/predict", json=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()
