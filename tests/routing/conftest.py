"""A/B routing tests: one model with two echo versions under a sticky test."""
from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from support import Platform

from ab_routing_support import ab_model


@pytest.fixture
def rollout(platform: Platform) -> Platform:
    return ab_model(platform, {"1.0.0": 50, "2.0.0": 50})


@pytest.fixture
def client(rollout: Platform) -> FlaskClient:
    return rollout.app().test_client()
