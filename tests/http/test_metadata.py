"""Metadata endpoints: what a caller needs to know to call a model."""
from __future__ import annotations

from datetime import datetime

from flask.testing import FlaskClient

from support.memory import MemoryPlatform
from support.models import Echo


def test_list_models(client: FlaskClient) -> None:
    response = client.get("/models")
    assert response.status_code == 200
    (model,) = response.get_json()["models"]
    assert model == {
        "name": "auto_pricing", "description": "test model", "default": "1.1.0",
        "active_versions": ["1.0.0", "1.1.0"], "ab_test": None, "shadow": [],
    }
    assert client.get("/models/auto_pricing").get_json() == model


def test_version_metadata_has_digest_schema_and_load_time(client: FlaskClient, pricing: MemoryPlatform) -> None:
    doc = client.get("/models/auto_pricing/versions/1.0.0").get_json()
    assert doc["sha256"] == pricing.config["auto_pricing"]["sha256"]["1.0.0"]
    assert doc["schema"] == pricing.config["auto_pricing"]["schemas"]["1.0.X"]
    assert doc["schema_key"] == "1.0.X"
    assert doc["is_default"] is False
    assert datetime.fromisoformat(doc["loaded_at"]).tzinfo is not None
    assert doc["source"] == "memory://auto_pricing/1.0.0"  # where the file was published (test_registry.py)
    assert doc["examples"] == []


def test_examples_resolve_by_the_same_keys_as_schemas(memory: MemoryPlatform) -> None:
    memory.add("echo", {"3.1.4": Echo()}, examples={"3.X.X": [{"input": {"a": 1}, "output": {"echo": {"a": 1}}}]})
    doc = memory.app().test_client().get("/models/echo/versions/3.1.4").get_json()
    assert doc["examples"] == [{"input": {"a": 1}, "output": {"echo": {"a": 1}}}]
