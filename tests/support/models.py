"""Tiny real models. Serialized by value, as a notebook would, so servers load them without this module."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from modelplatform import ModelRejected

KNOWN_VEHICLES = {"hatchback": Decimal("1.00"), "suv": Decimal("1.35"), "van": Decimal("1.20")}


class Pricer:
    """A pricing model: premium from vehicle factor and driver age; unknown vehicles are rejected."""

    def __init__(self, base: str = "300.00", version_tag: str = "v1") -> None:
        self.base = Decimal(base)
        self.version_tag = version_tag

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        factor = KNOWN_VEHICLES.get(payload["vehicle"])
        if factor is None:
            raise ModelRejected("unknown_vehicle", f"vehicle {payload['vehicle']!r} is not priced")
        age_load = Decimal("1.5") if payload["driver_age"] < 25 else Decimal("1.0")
        return {"premium": (self.base * factor * age_load).quantize(Decimal("0.01")),
                "currency": "EUR", "tag": self.version_tag}


class Echo:
    def predict(self, payload: Any) -> Any:
        return {"echo": payload}


class Returns:
    """Returns a fixed value, to test output encoding."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def predict(self, payload: Any) -> Any:
        return self.value


class Raises:
    """Raises ``exc``, by default a RuntimeError with ``message`` (anything: ``BaseException`` too)."""

    def __init__(self, message: str = "boom: secret internal detail", *, exc: BaseException | None = None) -> None:
        self.message = message
        self.exc = exc

    def predict(self, payload: Any) -> Any:
        raise self.exc if self.exc is not None else RuntimeError(self.message)


class Blocks:
    """Answers only once ``release`` is set (or after ``timeout`` seconds): a slow model without a clock.
    Holds a threading.Event, so it serves from memory only (``support.memory``), never from a dill file."""

    def __init__(self, answer: Any = None, timeout: float = 30.0) -> None:
        import threading

        self.release = threading.Event()
        self.answer = answer
        self.timeout = timeout

    def predict(self, payload: Any) -> Any:
        self.release.wait(self.timeout)
        return self.answer


class Sleeps:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, payload: Any) -> Any:
        time.sleep(self.seconds)
        return {"slept": self.seconds}


@dataclass
class Quote:
    premium: Decimal
    valid_until: date
    issued_at: datetime


class ReturnsDataclass:
    def predict(self, payload: Any) -> Quote:
        return Quote(Decimal("123.45"), date(2026, 12, 31), datetime(2026, 11, 22, 10, 30, tzinfo=UTC))


class NotAModel:
    """Has no predict: must be refused at load."""

    def score(self, payload: Any) -> int:
        return 1


class LeavesTrace:
    """A model that creates the file ``trace`` whenever it is unpickled: proof that some process loaded it."""

    def __init__(self, trace: str) -> None:
        self.trace = trace

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        from pathlib import Path

        Path(self.trace).touch()

    def predict(self, payload: Any) -> Any:
        return {"premium": 1.0, "tag": "forged"}


class ExitsProcess:
    """Raises SystemExit from predict, as a careless ``sys.exit()`` in model code would."""

    def __init__(self, code: int = 3) -> None:
        self.code = code

    def predict(self, payload: Any) -> Any:
        raise SystemExit(self.code)


class Interrupts:
    def predict(self, payload: Any) -> Any:
        raise KeyboardInterrupt("model interrupted itself")


class KillsProcess:
    """Ends its process outright, as a crash in native code would: no exception, no cleanup."""

    def predict(self, payload: Any) -> Any:
        import os

        os._exit(7)


class Burns:
    """Computes for ``seconds`` without ever waiting (holds the CPU and the GIL)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, payload: Any) -> Any:
        until = time.perf_counter() + self.seconds
        spins = 0
        while time.perf_counter() < until:
            spins += 1
        return {"spins": spins}
