"""Output encoding: every documented type encodes; anything else is a recorded 500, never a silent null."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import numpy as np
import pytest

from modelplatform.encoding import UnencodableOutput, encode_output
from support import Platform
from support.models import Returns, ReturnsDataclass


@dataclass
class Point:
    x: int
    label: str


@pytest.mark.parametrize("value, expected", [
    ({"a": 1, "b": [1.5, None, True]}, '{"a":1,"b":[1.5,null,true]}'),
    (Decimal("19.90"), "19.90"),
    (Decimal("1E+3"), "1000"),
    (Decimal("-0.000001"), "-0.000001"),
    (date(2026, 1, 2), '"2026-01-02"'),
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), '"2026-01-02T03:04:05+00:00"'),
    (Point(1, "p"), '{"x":1,"label":"p"}'),
    ((1, 2), "[1,2]"),
    ({1: "int key"}, '{"1":"int key"}'),
    (np.float64(2.5), "2.5"),
    (np.int64(7), "7"),
    (np.float32(0.5), "0.5"),
    (np.float16(0.5), "0.5"),
    (np.bool_(True), "true"),
    (np.array([[1, 2], [3, 4]]), "[[1,2],[3,4]]"),
    (np.array([0.25, 0.5]), "[0.25,0.5]"),
])
def test_documented_types_encode(value, expected: str) -> None:
    assert encode_output(value).decode() == expected


@pytest.mark.parametrize("value", [
    float("nan"), {"p": float("inf")}, [1.0, float("-inf")], Decimal("NaN"), Decimal("Infinity"),
    np.array([1.0, np.nan]), np.float64("nan"), object(), {1, 2}, b"bytes", Point(float("nan"), "x"),
])
def test_unencodable_values_raise(value) -> None:
    with pytest.raises(UnencodableOutput):
        encode_output(value)


def test_dataclass_with_decimal_and_dates_through_the_api(platform: Platform) -> None:
    platform.add("quotes", {"1.0.0": ReturnsDataclass()})
    response = platform.app().test_client().post("/models/quotes/predict", json={})
    assert response.status_code == 200
    assert b'"premium":123.45' in response.data
    assert response.get_json()["output"] == {"premium": 123.45, "valid_until": "2026-12-31",
                                             "issued_at": "2026-11-22T10:30:00+00:00"}
    (row,) = platform.rows()
    assert row["output"]["valid_until"] == "2026-12-31"


def test_numpy_output_through_the_api(platform: Platform) -> None:
    platform.add("vector", {"1.0.0": Returns({"scores": np.array([0.5, 0.25]), "n": np.int32(2)})})
    response = platform.app().test_client().post("/models/vector/predict", json={})
    assert response.get_json()["output"] == {"scores": [0.5, 0.25], "n": 2}


@pytest.mark.parametrize("value", [float("nan"), {"s": {1, 2}}])
def test_unencodable_output_is_a_recorded_500(platform: Platform, value) -> None:
    platform.add("broken", {"1.0.0": Returns(value)})
    response = platform.app().test_client().post("/models/broken/predict", json={"q": 1})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    doc = response.get_json()
    (row,) = platform.rows()
    assert str(row["id"]) == doc["inference_id"]
    assert row["status"] == "error"
    assert row["error"]["type"] == "UnencodableOutput"
    assert row["input"] == {"q": 1}
    json.dumps(row["error"])
