"""Numbers beyond a double's precision: what is validated, what the model receives and what the row
records must be the same value, so a number a double cannot hold exactly is refused (400
``number-precision``) with the JSON Pointer of each one; every number a double holds exactly passes.

The rule (docs/validation.md): a JSON number is accepted when the double it is read as prints back as
the same decimal value (``Decimal(literal) == Decimal(repr(float(literal)))``); integers are exact in
[-2**63, 2**64).
"""
from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from flask.testing import FlaskClient

from modelplatform.errors import NumberPrecision
from modelplatform.http import payload
from support.memory import MemoryPlatform
from support.models import Echo
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def echo(memory: MemoryPlatform) -> FlaskClient:
    memory.add("echo", {"1.0.0": Echo()})
    return memory.app().test_client()


@pytest.mark.parametrize(("literal", "shown"), [
    (b"16.99999999999999999999", "16.99999999999999999999"),   # a double reads 17.0: passes minimum 17
    (b"120.000000000000000001", "120.000000000000000001"),     # a double reads 120.0: passes maximum 120
])
def test_a_number_the_validator_would_round_into_range_is_refused_not_recorded(
        client: FlaskClient, pricing: MemoryPlatform, literal: bytes, shown: str) -> None:
    body = b'{"vehicle": "suv", "driver_age": ' + literal + b"}"
    doc = assert_problem(client.post(PINNED, data=body, headers=JSON), 400, "number-precision")
    assert [e["path"] for e in doc["errors"]] == ["/driver_age"]
    assert shown in doc["errors"][0]["message"]
    assert pricing.rows() == []


@pytest.mark.parametrize("literal", [
    b"1e-400",                    # underflows to 0.0
    b"0.10000000000000001",       # 17 significant digits a double cannot keep (reads 0.1)
    b"9007199254740993.0",        # 2**53 + 1 as a float
    b"1234567890123456789012.5",
    b"18446744073709551616",      # 2**64: an integer orjson would turn into a float
    b"-9223372036854775809",      # -2**63 - 1
    b"1" * 30,
])
def test_numbers_a_double_cannot_hold_exactly_are_400_with_their_path(echo: FlaskClient, memory: MemoryPlatform,
                                                                      literal: bytes) -> None:
    body = b'{"a/b": [1, {"x~": ' + literal + b"}]}"
    doc = assert_problem(echo.post("/models/echo/predict", data=body, headers=JSON), 400, "number-precision")
    assert doc["errors"] == [{"path": "/a~1b/1/x~0", "message": doc["errors"][0]["message"]}]
    assert len(doc["detail"]) < 300
    assert memory.rows() == []


@pytest.mark.parametrize("literal", [
    b"0.1", b"1.10", b"1e2", b"-0.0", b"5e-324", b"1.7976931348623157e308", b"2.5E-3",
    b"0.30000000000000004",           # 17 significant digits, and exactly what a double prints
    b"1.2345678901234568e+21",       # 17 digits: the shortest form of its double
    b"0.500000000000000000000000",    # many digits, all exact
    b"12345678901234567890",          # an integer below 2**64: kept exact as an integer
])
def test_numbers_a_double_holds_exactly_pass_and_model_and_row_agree(echo: FlaskClient, memory: MemoryPlatform,
                                                                     literal: bytes) -> None:
    response = echo.post("/models/echo/predict", data=b'{"n": ' + literal + b"}", headers=JSON)
    assert response.status_code == 200, response.data
    seen = response.get_json()["output"]["echo"]["n"]
    (recorded,) = memory.audit.records
    stored = json.loads(recorded.input_json, parse_float=Decimal, parse_int=Decimal)["n"]
    # what the model computed on (its echo) and what the row holds are the same number as written (Postgres
    # keeps a jsonb number's digits: test_rows_json.py)
    assert Decimal(repr(seen)) == Decimal(literal.decode()) == stored


def test_every_inexact_number_is_listed_up_to_a_bound(echo: FlaskClient) -> None:
    body = b'{"xs": [' + b",".join([b"0.10000000000000001"] * 150 + [b"0.5"]) + b"]}"
    doc = assert_problem(echo.post("/models/echo/predict", data=body, headers=JSON), 400, "number-precision")
    assert doc["errors_total"] == 150
    assert [e["path"] for e in doc["errors"]] == [f"/xs/{i}" for i in range(100)]


def test_a_long_digit_run_inside_a_string_is_not_a_number(echo: FlaskClient) -> None:
    body = b'{"id": "1.00000000000000000000001", "e": "1e-400"}'
    response = echo.post("/models/echo/predict", data=body, headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["output"]["echo"] == {"id": "1.00000000000000000000001", "e": "1e-400"}


def test_no_inexact_literal_slips_through_the_fast_screen_or_the_exact_check() -> None:
    """The hot path skips the exact check for bodies without a 16-digit run or a 3-digit exponent; that is
    safe only if every such literal is exact. Checked on 20,000 derandomized literals of every shape."""
    rng = random.Random(11)
    accepted = 0
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 17)))
        dot = rng.randint(0, len(digits))
        mantissa = digits if dot in (0, len(digits)) else digits[:dot] + "." + digits[dot:]
        mantissa = mantissa if mantissa[0] != "0" or mantissa.startswith("0.") else "1" + mantissa
        exponent = rng.choice(["", f"e{rng.randint(-99, 99)}", f"E+{rng.randint(0, 99):02d}",
                               f"e-{rng.randint(0, 330)}", f"e{rng.randint(100, 400)}"])
        literal = rng.choice(["", "-"]) + mantissa + ("" if "." in mantissa or exponent else ".0") + exponent
        body = b'{"n": ' + literal.encode() + b"}"
        try:
            payload.check_numbers(body)
        except NumberPrecision:
            continue
        value = float(literal)
        assert Decimal(repr(value)) == Decimal(literal), literal
        accepted += 1
    assert 5_000 < accepted < 20_000  # both outcomes were exercised
