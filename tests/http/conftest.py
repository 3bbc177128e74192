"""HTTP tests: a pricing model with two versions and different schemas, served through the factory."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from support import Platform
from support.models import Pricer

DATA = Path(__file__).parent.parent / "data"


def schema(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def pricing(platform: Platform) -> Platform:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
                 default="1.1.0",
                 schemas={"1.0.X": schema("schema_quote_v1.json"), "1.1.X": schema("schema_quote_v2.json")})
    return platform


@pytest.fixture
def client(pricing: Platform) -> FlaskClient:
    return pricing.app().test_client()
