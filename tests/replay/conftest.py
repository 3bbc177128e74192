"""Replay tests: recorded traffic produced by the real app, candidates published to the S3 store, and the
``modelplatform replay`` command run in-process (its candidate runs in a real child process)."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from modelplatform.cli import main
from replay_support import QUOTE_SCHEMA
from support import Platform, publish
from support.models import Pricer

MODEL = "auto_pricing"
VEHICLES = ("hatchback", "suv", "van")


def quotes() -> list[dict[str, Any]]:
    """The recorded traffic: 3 vehicles × ages 18..41, plus an unknown vehicle and an invalid input."""
    traffic = [{"vehicle": v, "driver_age": age, "customer_id": f"c-{v}-{age}"}
               for v in VEHICLES for age in range(18, 42)]
    traffic.append({"vehicle": "tractor", "driver_age": 50, "customer_id": "c-tractor"})  # rejected live
    traffic.append({"vehicle": "suv", "driver_age": 12, "customer_id": "c-too-young"})  # invalid_input live
    return traffic


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.out)


@dataclass
class Recorded:
    platform: Platform
    inputs: list[dict[str, Any]]
    ids: dict[str, str]  # request_id → inference_id

    def add_candidate(self, version: str, model: Any, *, pin: bool = True) -> str:
        """Publish ``model`` (or raw bytes) as ``version``; pin its sha256 in the config unless told not to."""
        sha = publish(self.platform.store, MODEL, version, model)
        if pin:
            self.platform.config[MODEL]["sha256"][version] = sha
            self.platform.write_config()
        return sha


@pytest.fixture
def recorded(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """``auto_pricing`` 1.0.0 (Pricer) served by the real app, which recorded one row per quote."""
    platform.add(MODEL, {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.X.X": QUOTE_SCHEMA})
    client = platform.app().test_client()
    ids = {}
    for index, quote in enumerate(quotes()):
        response = client.post(f"/models/{MODEL}/predict", json=quote, headers={"X-Request-ID": f"q-{index}"})
        assert response.status_code in (200, 422), response.get_json()
        ids[f"q-{index}"] = response.get_json()["inference_id"]
    monkeypatch.setenv("DATABASE_URL", platform.database_url)
    monkeypatch.setenv("MODEL_STORE_URL", str(platform.store.location))
    monkeypatch.setenv("MODELS_CONFIG", str(platform.write_config()))
    return Recorded(platform, quotes(), ids)


@pytest.fixture
def replay(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``modelplatform replay ARGS… --json`` in this process."""
    def run(*argv: str, json_output: bool = True) -> Run:
        capsys.readouterr()
        handlers = list(logging.root.handlers)
        try:
            code = main(["replay", *argv, *(["--json"] if json_output else [])])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        finally:
            logging.root.handlers[:] = handlers
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)
    return run


def results(engine: sa.Engine, run_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from replay_results where run_id = :r"), {"r": run_id})
        return [dict(r._mapping) for r in rows]
