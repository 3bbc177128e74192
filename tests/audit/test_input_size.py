"""How much of an input the audit row keeps, so the audit trail cannot be used to fill the database.

Inputs that reached the model are recorded in full (bounded by ``MAX_BODY_BYTES`` and the schema): the
row must show what the model computed on. Inputs the model never saw (``invalid_input``) are recorded in
full up to ``AUDIT_MAX_INVALID_INPUT_BYTES``; beyond it the row holds a marked stand-in (a prefix, the
body's size and sha256), and the recorded violations are cut to the first 100 plus a count.
"""
from __future__ import annotations

import hashlib
import json
import random

import pytest
import sqlalchemy as sa

from modelplatform.audit.bounds import CLIPPED_INPUT_KEY, MAX_RECORDED_ERRORS, PREFIX_BYTES
from support import Platform
from support.models import Echo, Pricer
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
SCHEMA = {"type": "object", "required": ["vehicle", "driver_age"],
          "properties": {"vehicle": {"type": "string"}, "driver_age": {"type": "integer"},
                         "extras": {"type": "array", "items": {"type": "integer"}}}}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def pricing(platform: Platform) -> Platform:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": SCHEMA})
    platform.add("echo", {"1.0.0": Echo()})
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


def test_an_invalid_input_over_the_limit_is_recorded_as_a_marked_stand_in(pricing: Platform) -> None:
    client = pricing.app(AUDIT_MAX_INVALID_INPUT_BYTES=4096).test_client()
    body = json.dumps({"vehicle": "é" + "v" * 9000, "driver_age": "old"}).encode()
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 422, "invalid-input")

    (row,) = pricing.rows()
    assert str(row["id"]) == doc["inference_id"]
    stand_in = row["input"][CLIPPED_INPUT_KEY]
    assert stand_in["bytes"] == len(body)
    assert stand_in["sha256"] == hashlib.sha256(body).hexdigest()
    assert body.decode().startswith(stand_in["prefix"]) and len(stand_in["prefix"].encode()) <= PREFIX_BYTES
    assert stand_in["limit"] == 4096
    assert row["error"]["input_clipped"] is True
    assert row["error"]["errors"] == doc["errors"] == [{"path": "/driver_age", "message": '"old" is not of type "integer"'}]


def test_an_invalid_input_within_the_limit_is_recorded_in_full(pricing: Platform) -> None:
    client = pricing.app(AUDIT_MAX_INVALID_INPUT_BYTES=4096).test_client()
    body = {"vehicle": "v" * 3000, "driver_age": "old"}
    assert_problem(client.post(PINNED, json=body), 422, "invalid-input")
    (row,) = pricing.rows()
    assert row["input"] == body
    assert "input_clipped" not in row["error"]


def test_an_input_that_reached_the_model_is_recorded_in_full_whatever_its_size(pricing: Platform) -> None:
    client = pricing.app(AUDIT_MAX_INVALID_INPUT_BYTES=100).test_client()
    body = {"blob": _noise(random.Random(1), 200_000)}
    assert client.post("/models/echo/predict", json=body).status_code == 200
    (row,) = pricing.rows()
    assert row["input"] == body


def test_the_recorded_violations_are_cut_to_the_first_hundred_plus_a_count(pricing: Platform) -> None:
    client = pricing.app().test_client()
    body = {"vehicle": "suv", "driver_age": 40, "extras": ["x"] * 500}
    doc = assert_problem(client.post(PINNED, json=body), 422, "invalid-input")
    assert len(doc["errors"]) == 500  # the caller still gets every violation

    (row,) = pricing.rows()
    assert row["error"]["errors"] == doc["errors"][:MAX_RECORDED_ERRORS]
    assert row["error"]["errors_total"] == 500
    assert row["input"] == body
