"""The group-commit writer and its spool report to ``/metrics`` (the real writer against the real database)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from support import Platform
from support.models import Pricer

DATA = Path(__file__).parent.parent / "data"
PINNED = "/models/auto_pricing/versions/1.0.0/predict"
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


def samples(client: FlaskClient) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def value(found: dict, name: str) -> float:
    return found.get((name, ()), 0.0)


@pytest.fixture
def pricing(platform: Platform) -> Platform:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")},
                 schemas={"1.0.0": json.loads((DATA / "schema_quote_v1.json").read_text())})
    return platform


def test_the_audit_writer_reports_its_batches(pricing: Platform, payload) -> None:
    client = pricing.app().test_client()
    for _ in range(3):
        assert client.post(PINNED, json=payload("quote_valid.json")).status_code == 200
    assert client.post(PINNED, json={"vehicle": 3}).status_code == 422  # recorded too
    found = samples(client)
    assert value(found, "modelplatform_audit_rows_committed_total") == 4 == len(pricing.rows())
    assert 1 <= value(found, "modelplatform_audit_batches_total") <= 4
    assert value(found, "modelplatform_audit_rows_rejected_total") == 0
    assert value(found, "modelplatform_audit_spool_depth") == 0


def test_spool_depth_and_traffic_are_exported(pricing: Platform, payload, tmp_path: Path) -> None:
    # Postgres unreachable, a spool on disk: the records wait there, and an operator sees how many
    client = pricing.app(DATABASE_URL=UNREACHABLE, AUDIT_SPOOL_DIR=str(tmp_path / "spool")).test_client()
    for _ in range(2):
        assert client.post(PINNED, json=payload("quote_valid.json")).status_code == 200
    found = samples(client)
    assert value(found, "modelplatform_audit_spool_depth") == 2
    assert value(found, "modelplatform_audit_spooled_total") == 2
    assert value(found, "modelplatform_audit_spool_replayed_total") == 0
    assert value(found, "modelplatform_audit_batches_total") == 0
