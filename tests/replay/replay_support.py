"""Tiny real candidate models for the replay tests (serialized by value like any notebook model)."""
from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from modelplatform import ModelRejected
from support.models import Pricer

# a schema the recorded traffic and the candidates share: vehicle and driver_age required
QUOTE_SCHEMA = {
    "type": "object",
    "required": ["vehicle", "driver_age"],
    "properties": {"vehicle": {"type": "string"}, "driver_age": {"type": "integer", "minimum": 17},
                   "customer_id": {"type": "string"}},
}


class YoungDriverSurcharge(Pricer):
    """Pricer, except drivers under 25 pay 10% more: changes the premium of exactly that subset."""

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        output = super().predict(payload)
        if payload["driver_age"] < 25:
            output["premium"] = (output["premium"] * Decimal("1.10")).quantize(Decimal("0.01"))
        return output


class RejectsVans(Pricer):
    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload["vehicle"] == "van":
            raise ModelRejected("no_vans", "vans are no longer priced")
        return super().predict(payload)


class MisbehavesOnAge(Pricer):
    """Pricer, except on drivers of one age, where it calls :meth:`misbehave`."""

    def __init__(self, age: int) -> None:
        super().__init__("300.00", "v1")
        self.age = age

    def misbehave(self) -> None:
        raise NotImplementedError

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload["driver_age"] == self.age:
            self.misbehave()
        return super().predict(payload)


class RaisesOnAge(MisbehavesOnAge):
    def misbehave(self) -> None:
        raise ZeroDivisionError("the candidate divides by zero on this input")


class ExitsOnAge(MisbehavesOnAge):
    """Kills its own process on one input, as a segfaulting native library would."""

    def misbehave(self) -> None:
        os._exit(3)


class HangsOnAge(MisbehavesOnAge):
    def misbehave(self) -> None:
        import time

        time.sleep(120)


class ShowsEnvironment:
    """Returns the names of every environment variable it can see, and a few values."""

    def predict(self, payload: Any) -> dict[str, Any]:
        return {"names": sorted(os.environ),
                "values": {k: os.environ.get(k) for k in ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY",
                                                          "AWS_ACCESS_KEY_ID", "MODEL_STORE_URL")}}


class MarksOnUnpickle:
    """Unpickling it runs ``touch MARKER``: proof that a file was (or was not) loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def predict(self, payload: Any) -> Any:
        return {}

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class AgeSlope(Pricer):
    """Adds ``(driver_age % 7) × 0.37`` to the premium: many different differences, some zero."""

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        output = super().predict(payload)
        output["premium"] += Decimal(payload["driver_age"] % 7) * Decimal("0.37")
        return output


class RenamesCurrency(Pricer):
    """Changes a string leaf for SUVs and adds a leaf for everyone."""

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        output = super().predict(payload)
        if payload["vehicle"] == "suv":
            output["currency"] = "CHF"
        output["discount"] = 0
        return output


class SlowPricer(Pricer):
    """Pricer taking ``seconds`` per input: keeps a replay running long enough to disturb it."""

    def __init__(self, seconds: float) -> None:
        super().__init__("300.00", "v1")
        self.seconds = seconds

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        import time

        time.sleep(self.seconds)
        return super().predict(payload)
