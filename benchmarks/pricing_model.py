"""The benchmark's model: a small pricing function like the first real user's (pricing)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from modelplatform import ModelRejected

FACTORS = {"hatchback": Decimal("1.00"), "suv": Decimal("1.35"), "van": Decimal("1.20")}

SCHEMA = {
    "type": "object",
    "required": ["vehicle", "driver_age"],
    "additionalProperties": False,
    "properties": {
        "vehicle": {"type": "string"},
        "driver_age": {"type": "integer", "minimum": 17, "maximum": 120},
        "annual_km": {"type": "integer", "minimum": 0},
    },
}

BODY = b'{"vehicle": "suv", "driver_age": 40, "annual_km": 12000}'


class Pricer:
    def __init__(self, base: str = "300.00") -> None:
        self.base = Decimal(base)

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        factor = FACTORS.get(payload["vehicle"])
        if factor is None:
            raise ModelRejected("unknown_vehicle", f"vehicle {payload['vehicle']!r} is not priced")
        age_load = Decimal("1.5") if payload["driver_age"] < 25 else Decimal("1.0")
        return {"premium": (self.base * factor * age_load).quantize(Decimal("0.01")), "currency": "EUR"}
