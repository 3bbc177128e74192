"""HTTP tests: a pricing model with two versions and different schemas, served from memory through the real
factory (``create_app`` with an in-memory registry and audit log); records are read with ``pricing.rows()``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from support.memory import MemoryPlatform
from support.models import Pricer

DATA = Path(__file__).parent.parent / "data"


def schema(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def pricing(memory: MemoryPlatform) -> MemoryPlatform:
    memory.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
               default="1.1.0",
               schemas={"1.0.X": schema("schema_quote_v1.json"), "1.1.X": schema("schema_quote_v2.json")})
    return memory


@pytest.fixture
def client(pricing: MemoryPlatform) -> FlaskClient:
    return pricing.app().test_client()
