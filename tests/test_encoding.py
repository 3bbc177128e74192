"""Output encoding (encoding.py): every documented type encodes; anything else raises, never a silent null (a
recorded 500: test_dataplane.py)."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from modelplatform.encoding import UnencodableOutput, encode_output


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
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), '"2026-01-02T03:04:05+00:00"'),
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
    ({"scores": np.array([0.5, 0.25]), "n": np.int32(2)}, '{"scores":[0.5,0.25],"n":2}'),
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


@pytest.mark.slow  # a fresh interpreter: what a worker has imported before its first request
def test_warm_up_does_at_boot_what_the_first_output_would_do_in_a_request() -> None:
    """orjson imports numpy the first time it meets a value it cannot encode natively (a Decimal): ~40 ms
    that landed on every worker's first prediction. warm_up() does it at boot."""
    script = (
        "import sys\n"
        "from modelplatform import encoding\n"
        "before = 'numpy' in sys.modules\n"
        "encoding.warm_up()\n"
        "print(before, 'numpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "True"]
