"""Reading a predict body (http/payload.py), as an attacker sends it: every malformed, oversized or out-of-range
body gets a 4xx problem+json, never a 5xx, and a body refused here is never recorded.

Decisions tested here (and documented in docs/operations.md): duplicate keys → the last one wins, as in
Postgres ``jsonb``; lone surrogate escapes → 400; a number a double cannot hold exactly → 400
``number-precision`` (test_number_precision.py).
"""
from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient

from modelplatform.validation import TOO_DEEP
from support.memory import MemoryPlatform
from support.models import Echo
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def echo(memory: MemoryPlatform) -> FlaskClient:
    memory.add("echo", {"1.0.0": Echo()})
    return memory.app(MAX_BODY_BYTES=16384).test_client()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(client: FlaskClient, pricing: MemoryPlatform, content_type) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    doc = assert_problem(client.post(PINNED, data='{"vehicle": "suv", "driver_age": 30}', **kwargs), 415,
                         "unsupported-media-type")
    assert "application/json" in doc["detail"]
    assert pricing.rows() == []


def test_415_clips_the_content_type_it_echoes(client: FlaskClient) -> None:
    response = client.post(PINNED, data=b"{}", headers={"Content-Type": "text/" + "x" * 4000})
    assert_problem(response, 415, "unsupported-media-type")
    assert len(response.data) < 800


def test_json_with_charset_and_vendor_json_types_are_accepted(client: FlaskClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.pricing+json"):
        response = client.post(PINNED, data='{"vehicle": "van", "driver_age": 30}', content_type=content_type)
        assert response.status_code == 200, content_type


def test_body_over_the_limit_is_413_from_content_length(pricing: MemoryPlatform) -> None:
    client = pricing.app(MAX_BODY_BYTES=1000).test_client()
    body = b'{"vehicle": "' + b"x" * 2000 + b'", "driver_age": 40}'
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 413, "payload-too-large")
    assert "1000" in doc["detail"]
    assert pricing.rows() == []


def test_chunked_body_over_the_limit_is_413_while_reading(pricing: MemoryPlatform) -> None:
    client = pricing.app(MAX_BODY_BYTES=1000).test_client()
    body = b'{"vehicle": "' + b"x" * 50_000 + b'", "driver_age": 40}'
    # gunicorn de-chunks and marks the stream terminated, as this environ does
    response = client.post(PINNED, input_stream=io.BytesIO(body),
                           headers={**JSON, "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert_problem(response, 413, "payload-too-large")
    assert pricing.rows() == []


@pytest.mark.parametrize("body", [b"", b'{"vehicle": ', b'{"vehicle": "suv",}'], ids=["empty", "cut", "trailing-comma"])
def test_a_body_that_is_not_json_text_is_400(client: FlaskClient, pricing: MemoryPlatform, body: bytes) -> None:
    response = client.post(PINNED, data=body, headers=JSON)
    assert_problem(response, 400, "malformed-json")
    assert "X-Inference-ID" not in response.headers
    assert pricing.rows() == []


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,                     # far past orjson's depth limit
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
], ids=["deep-array", "deep-object"])
def test_deeply_nested_json_is_400(client: FlaskClient, pricing: MemoryPlatform, body: bytes) -> None:
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


@pytest.mark.parametrize("depth", [256, 600, 1024])
def test_nesting_the_parser_accepts_but_the_validator_cannot_walk_is_422_and_recorded(
        client: FlaskClient, pricing: MemoryPlatform, depth: int) -> None:
    body = b'{"vehicle": "suv", "driver_age": 40, "extra": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 422, "invalid-input")
    assert doc["errors"] == [{"path": "", "message": TOO_DEEP}]
    (row,) = pricing.rows()
    assert (row["id"], row["status"], row["input"]["vehicle"]) == (doc["inference_id"], "invalid_input", "suv")


@pytest.mark.parametrize("body", [b'{"vehicle": "a\\u0000b", "driver_age": 30}',
                                  b"[" * 1000 + b'"\\u0000"' + b"]" * 1000], ids=["flat", "near-the-depth-limit"])
def test_nul_is_refused_before_it_can_break_the_audit_row(client: FlaskClient, pricing: MemoryPlatform,
                                                          body: bytes) -> None:
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "bad-request")
    assert "U+0000" in doc["detail"]
    assert pricing.rows() == []


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"9" * 5000])
def test_numbers_without_a_finite_double_are_400(client: FlaskClient, pricing: MemoryPlatform, literal: bytes) -> None:
    body = b'{"vehicle": "suv", "driver_age": ' + literal + b"}"
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert len(doc["detail"]) < 300  # the number is not echoed whole
    assert pricing.rows() == []


@pytest.mark.parametrize("body", [
    b'{"vehicle": "\xff\xfe", "driver_age": 40}',         # not UTF-8 at all
    b'{"vehicle": "\xed\xa0\x80", "driver_age": 40}',     # a UTF-8-encoded surrogate
    b'{"vehicle": "\xc3", "driver_age": 40}',             # truncated sequence
], ids=["ff-fe", "encoded-surrogate", "truncated"])
def test_invalid_utf8_is_400(client: FlaskClient, pricing: MemoryPlatform, body: bytes) -> None:
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udc00", b"\\ud800x", b"\\udfff\\ud800"])
def test_lone_surrogate_escapes_are_400_before_they_reach_jsonb(client: FlaskClient, pricing: MemoryPlatform,
                                                                escape: bytes) -> None:
    # Postgres jsonb refuses these; accepting them would turn into a 503 at audit time (orjson, strict,
    # refuses them as invalid JSON)
    body = b'{"vehicle": "suv' + escape + b'", "driver_age": 40}'
    assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "malformed-json")
    assert pricing.rows() == []


def test_valid_surrogate_pair_is_accepted_and_recorded(echo: FlaskClient, memory: MemoryPlatform) -> None:
    response = echo.post("/models/echo/predict", data=b'{"s": "\\ud83d\\ude00"}', headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["output"] == {"echo": {"s": "\U0001F600"}}
    (row,) = memory.rows()
    assert row["input"] == {"s": "\U0001F600"}


def test_duplicate_keys_last_one_wins_for_the_model_and_the_row(client: FlaskClient, pricing: MemoryPlatform) -> None:
    body = b'{"vehicle": "van", "driver_age": 40, "vehicle": "suv"}'
    response = client.post(PINNED, data=body, headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["output"]["premium"] == 405.0  # suv: 300 × 1.35
    # the row keeps the body as received; read back (as jsonb does, test_rows_json.py) the last key wins
    (row,) = pricing.rows()
    assert pricing.audit.records[0].input_json == body.decode()
    assert row["input"] == {"vehicle": "suv", "driver_age": 40}


def test_a_long_integer_nested_too_deep_to_check_exactly_is_400(echo: FlaskClient, memory: MemoryPlatform) -> None:
    # orjson accepts 1000 levels; the exact-integer check (stdlib parser) cannot follow that deep
    body = b'{"n": ' + b"[" * 999 + b"1" * 19 + b"]" * 999 + b"}"
    doc = assert_problem(echo.post("/models/echo/predict", data=body, headers=JSON), 400, "bad-request")
    assert doc["detail"] == "the body holds a number or nesting that cannot be read exactly"
    assert memory.rows() == []


@pytest.mark.parametrize("number", [2 ** 64 - 1, -(2 ** 63), 10 ** 18])
def test_integers_at_the_edges_of_the_range_reach_the_model_exactly(echo: FlaskClient, memory: MemoryPlatform,
                                                                    number: int) -> None:
    response = echo.post("/models/echo/predict", data=b'{"n": %d, "s": "%s"}' % (number, b"7" * 40), headers=JSON)
    assert response.status_code == 200, response.data
    assert response.get_json()["output"]["echo"]["n"] == number
    (row,) = memory.rows()
    assert row["input"]["n"] == number
