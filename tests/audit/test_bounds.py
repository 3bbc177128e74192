"""How much of an input the audit row keeps, so the audit trail cannot be used to fill the database.

Inputs that reached the model are recorded in full (bounded by ``MAX_BODY_BYTES`` and the schema): the
row must show what the model computed on. Inputs the model never saw (``invalid_input``) are recorded in
full up to ``AUDIT_MAX_INVALID_INPUT_BYTES``; beyond it the row holds a marked stand-in (a prefix, the
body's size and sha256), and the recorded violations are cut to the first 100 plus a count.
"""
from __future__ import annotations

import json
import random

import pytest
import sqlalchemy as sa

from modelplatform.audit.bounds import CLIPPED_INPUT_KEY
from support import Platform
from support.memory import MemoryPlatform
from support.models import Pricer
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
SCHEMA = {"type": "object", "required": ["vehicle", "driver_age"],
          "properties": {"vehicle": {"type": "string"}, "driver_age": {"type": "integer"},
                         "extras": {"type": "array", "items": {"type": "integer"}}}}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def pricing(platform: Platform) -> Platform:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": SCHEMA})
    return platform


def _noise(rng: random.Random, size: int) -> str:
    # incompressible text, as an attacker would send: Postgres compresses repetitive values away
    return rng.randbytes(size // 2).hex()


def _table_bytes(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select pg_total_relation_size('inferences')")).scalar_one()


@pytest.mark.slow
def test_fifty_invalid_one_megabyte_bodies_no_longer_add_fifty_megabytes(pricing: Platform) -> None:
    client = pricing.app().test_client()
    rng = random.Random(11)
    before = _table_bytes(pricing.engine)
    for _ in range(50):
        body = json.dumps({"vehicle": _noise(rng, 1_000_000), "driver_age": "old"}).encode()
        assert_problem(client.post(PINNED, data=body, headers=JSON), 422, "invalid-input")
    grown = _table_bytes(pricing.engine) - before
    assert len(pricing.rows()) == 50  # each one is still on record
    # before the bound: ~53 MB; now each row holds ~1 KiB of prefix and a digest
    assert grown < 2 * 1024 * 1024, grown


def test_the_limit_is_the_setting(memory: MemoryPlatform) -> None:
    # what the row keeps for each size is tested on the data plane (test_dataplane.py); here, that the setting
    # reaches it through the app
    memory.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": SCHEMA})
    client = memory.app(AUDIT_MAX_INVALID_INPUT_BYTES=4096).test_client()
    body = json.dumps({"vehicle": "v" * 5000, "driver_age": "old"}).encode()
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 422, "invalid-input")
    (row,) = memory.rows()
    assert row["id"] == doc["inference_id"]
    assert row["input"][CLIPPED_INPUT_KEY]["limit"] == 4096 and row["error"]["input_clipped"] is True
