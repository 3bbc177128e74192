"""Hostile input: every malformed, oversized or out-of-range request gets a 4xx problem+json, never a 5xx.

Decisions tested here (and documented in docs/operations.md): duplicate keys → the last one wins, as
in Postgres ``jsonb``; integers outside [-2**63, 2**64) → 400 ``number-precision``, because orjson
would hand the model a rounded float while the row keeps the exact digits (the general rule for numbers
is tested in test_number_precision.py); lone surrogate escapes → 400.
"""
from __future__ import annotations

import io
import uuid

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from support import Platform
from support.models import Echo
from support.problems import assert_problem
from modelplatform.validation import TOO_DEEP

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
JSON = {"Content-Type": "application/json"}



@pytest.fixture
def echo(platform: Platform) -> FlaskClient:
    platform.add("echo", {"1.0.0": Echo()})
    return platform.app(MAX_BODY_BYTES=16384).test_client()


def test_body_over_the_limit_is_413_from_content_length(pricing: Platform) -> None:
    client = pricing.app(MAX_BODY_BYTES=1000).test_client()
    body = b'{"vehicle": "' + b"x" * 2000 + b'", "driver_age": 40}'
    assert_problem(client.post(PINNED, data=body, headers=JSON), 413, "payload-too-large")
    assert pricing.rows() == []


def test_chunked_body_over_the_limit_is_413_while_reading(pricing: Platform) -> None:
    client = pricing.app(MAX_BODY_BYTES=1000).test_client()
    body = b'{"vehicle": "' + b"x" * 50_000 + b'", "driver_age": 40}'
    # gunicorn de-chunks and marks the stream terminated, as this environ does
    response = client.post(PINNED, input_stream=io.BytesIO(body),
                           headers={**JSON, "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert_problem(response, 413, "payload-too-large")
    assert pricing.rows() == []


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,                     # far past orjson's depth limit
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
], ids=["deep-array", "deep-object"])
def test_deeply_nested_json_is_400(client: FlaskClient, pricing: Platform, body: bytes) -> None:
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


@pytest.mark.parametrize("depth", [256, 600, 1024])
def test_nesting_the_parser_accepts_but_the_validator_cannot_walk_is_422_and_recorded(
        client: FlaskClient, pricing: Platform, depth: int) -> None:
    body = b'{"vehicle": "suv", "driver_age": 40, "extra": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 422, "invalid-input")
    assert doc["type"].endswith("invalid-input")
    assert doc["errors"] == [{"path": "", "message": TOO_DEEP}]
    # the stored input is too deep for the stdlib decoder rows() uses: read the row's columns in SQL
    with pricing.engine.connect() as conn:
        (row,) = conn.execute(sa.text("select id, status, input->>'vehicle' as vehicle from inferences")).all()
    assert (str(row.id), row.status, row.vehicle) == (doc["inference_id"], "invalid_input", "suv")


def test_nul_inside_json_nested_near_the_depth_limit_is_400_not_a_recursion_error(client: FlaskClient) -> None:
    body = b"[" * 1000 + b'"\\u0000"' + b"]" * 1000
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "bad-request")
    assert "U+0000" in doc["detail"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_non_finite_numbers_are_400(client: FlaskClient, pricing: Platform, literal: bytes) -> None:
    body = b'{"vehicle": "suv", "driver_age": ' + literal + b"}"
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


@pytest.mark.parametrize("body", [
    b'{"vehicle": "\xff\xfe", "driver_age": 40}',         # not UTF-8 at all
    b'{"vehicle": "\xed\xa0\x80", "driver_age": 40}',     # a UTF-8-encoded surrogate
    b'{"vehicle": "\xc3", "driver_age": 40}',             # truncated sequence
], ids=["ff-fe", "encoded-surrogate", "truncated"])
def test_invalid_utf8_is_400(client: FlaskClient, pricing: Platform, body: bytes) -> None:
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udc00", b"\\ud800x", b"\\udfff\\ud800"])
def test_lone_surrogate_escapes_are_400_before_they_reach_jsonb(client: FlaskClient, pricing: Platform,
                                                                escape: bytes) -> None:
    # Postgres jsonb refuses these; accepting them would turn into a 503 at audit time (orjson, strict,
    # refuses them as invalid JSON)
    body = b'{"vehicle": "suv' + escape + b'", "driver_age": 40}'
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


def test_valid_surrogate_pair_is_accepted_and_stored(echo: FlaskClient, platform: Platform) -> None:
    response = echo.post("/models/echo/predict", data=b'{"s": "\\ud83d\\ude00"}', headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["output"] == {"echo": {"s": "\U0001F600"}}
    (row,) = platform.rows()
    assert row["input"] == {"s": "\U0001F600"}


def test_duplicate_keys_last_one_wins_for_the_model_and_the_row(client: FlaskClient, pricing: Platform) -> None:
    body = b'{"vehicle": "van", "driver_age": 40, "vehicle": "suv"}'
    response = client.post(PINNED, data=body, headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["output"]["premium"] == 405.0  # suv: 300 × 1.35
    (row,) = pricing.rows()
    assert row["input"] == {"vehicle": "suv", "driver_age": 40}


@pytest.mark.parametrize(("number", "slug"), [
    (str(2 ** 64).encode(), "number-precision"), (str(-(2 ** 63) - 1).encode(), "number-precision"),
    (b"1" * 30, "number-precision"),
    (b"9" * 5000, "malformed-json"),  # beyond a double: the JSON parser itself refuses it, as it does 1e400
])
def test_integers_that_cannot_stay_exact_are_400(echo: FlaskClient, platform: Platform, number: bytes,
                                                 slug: str) -> None:
    body = b'{"n": ' + number + b"}"
    doc = assert_problem(echo.post("/models/echo/predict", data=body, headers=JSON), 400, slug)
    assert len(doc["detail"]) < 300  # the number is not echoed whole
    assert platform.rows() == []


def test_a_long_integer_nested_too_deep_to_check_exactly_is_400(echo: FlaskClient, platform: Platform) -> None:
    # orjson accepts 1000 levels; the exact-integer check (stdlib parser) cannot follow that deep
    body = b'{"n": ' + b"[" * 999 + b"1" * 19 + b"]" * 999 + b"}"
    doc = assert_problem(echo.post("/models/echo/predict", data=body, headers=JSON), 400, "bad-request")
    assert doc["detail"] == "the body holds a number or nesting that cannot be read exactly"
    assert platform.rows() == []


@pytest.mark.parametrize("number", [2 ** 64 - 1, -(2 ** 63), 10 ** 18])
def test_integers_at_the_edges_of_the_range_reach_the_model_exactly(echo: FlaskClient, platform: Platform,
                                                                    number: int) -> None:
    response = echo.post("/models/echo/predict", data=b'{"n": %d, "s": "%s"}' % (number, b"7" * 40), headers=JSON)
    assert response.status_code == 200, response.data
    assert response.get_json()["output"]["echo"]["n"] == number
    (row,) = platform.rows()
    assert row["input"]["n"] == number


def test_long_digit_runs_inside_strings_and_exact_floats_are_fine(echo: FlaskClient) -> None:
    body = b'{"id": "123456789012345678901234567890", "x": 1.2345678901234568e+21}'
    response = echo.post("/models/echo/predict", data=body, headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["output"]["echo"] == {"id": "123456789012345678901234567890", "x": 1.2345678901234568e+21}


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"a string"', b"42", b"null", b"true"])
def test_non_object_bodies_are_422_schema_violations_and_recorded(client: FlaskClient, pricing: Platform,
                                                                  body: bytes) -> None:
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 422, "invalid-input")
    assert doc["errors"] and doc["errors"][0]["path"] == ""
    (row,) = pricing.rows()
    assert row["status"] == "invalid_input"
    assert str(row["id"]) == doc["inference_id"]


@pytest.mark.parametrize("request_id", ["x" * 129, "a\x01b", "a b", "é" * 10, "id\t1"])
def test_unsafe_request_ids_are_replaced_before_logs_and_table(client: FlaskClient, pricing: Platform,
                                                               payload, request_id: str) -> None:
    response = client.post(PINNED, json=payload("quote_valid.json"), headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    assert uuid.UUID(response.headers["X-Request-ID"])
    (row,) = pricing.rows()
    assert row["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("key", ["k" * 257, "a\x01b", "tab\there", ""])
def test_unsafe_routing_keys_are_400_and_never_stored(client: FlaskClient, pricing: Platform, payload,
                                                      key: str) -> None:
    response = client.post("/models/auto_pricing/predict", json=payload("quote_valid.json"),
                           headers={"X-Routing-Key": key})
    assert_problem(response, 400, "bad-request")
    assert pricing.rows() == []


def test_routing_key_at_the_bound_is_stored_as_sent(client: FlaskClient, pricing: Platform, payload) -> None:
    key = "customer-" + "9" * 247
    response = client.post(PINNED, json=payload("quote_valid.json"), headers={"X-Routing-Key": key})
    assert response.status_code == 200
    (row,) = pricing.rows()
    assert row["routing_key"] == key


def test_wrong_content_type_and_empty_body(client: FlaskClient, pricing: Platform) -> None:
    text_plain = {"Content-Type": "text/plain"}
    assert_problem(client.post(PINNED, data=b'{"a": 1}', headers=text_plain), 415, "unsupported-media-type")
    assert_problem(client.post(PINNED, data=b"", headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []
