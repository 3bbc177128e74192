"""Test support: publishing tiny real models and building apps through ``create_app``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from modelplatform.app import close_app, create_app
from modelplatform.artifacts import sha256_hex
from modelplatform.authoring import dumps_by_value
from modelplatform.settings import Settings
from modelplatform.store import S3ModelStore

OBJECT_SCHEMA = {"type": "object"}


def publish(store: S3ModelStore, model: str, version: str, obj: Any) -> str:
    """Upload ``obj`` serialized by value (or raw ``bytes``) to the store; return its sha256."""
    data = obj if isinstance(obj, bytes) else dumps_by_value(obj)
    store.client.put_object(Bucket=store.location.bucket, Key=store.location.key(model, version), Body=data)
    return sha256_hex(data)


def model_entry(shas: dict[str, str], *, default: str | None = None, schemas: dict[str, Any] | None = None,
                **extra: Any) -> dict[str, Any]:
    versions = list(shas)
    return {
        "description": extra.pop("description", "test model"),
        "active_model_versions": versions,
        "default": default or versions[-1],
        "sha256": shas,
        "schemas": schemas or {v: OBJECT_SCHEMA for v in versions},
        **extra,
    }


@dataclass
class Platform:
    store: S3ModelStore
    engine: sa.Engine
    database_url: str
    workdir: Path
    config: dict[str, Any] = field(default_factory=dict)
    apps: list[Flask] = field(default_factory=list)

    def add(self, name: str, models: dict[str, Any], **entry: Any) -> dict[str, Any]:
        """Publish each ``version → model`` and add the model to the config."""
        shas = {version: publish(self.store, name, version, obj) for version, obj in models.items()}
        self.config[name] = model_entry(shas, **entry)
        return self.config[name]

    @property
    def cache_dir(self) -> Path:
        """This test's own artifact cache (never the checkout's ``var/``)."""
        return self.workdir / "artifacts"

    def write_config(self, config: dict[str, Any] | None = None) -> Path:
        path = self.workdir / "models.json"
        path.write_text(json.dumps(self.config if config is None else config, indent=2))
        return path

    def settings(self, **overrides: Any) -> Settings:
        env = {
            "DATABASE_URL": self.database_url,
            "MODEL_STORE_URL": str(self.store.location),
            "MODELS_CONFIG": str(self.write_config()),
            "ARTIFACT_CACHE_DIR": str(self.cache_dir),
            **{k: str(v) for k, v in overrides.items()},
        }
        return Settings.from_env(env)

    def env(self) -> dict[str, str]:
        """Environment for a separate server process."""
        return {
            "DATABASE_URL": self.database_url,
            "MODEL_STORE_URL": str(self.store.location),
            "MODELS_CONFIG": str(self.write_config()),
            "ARTIFACT_CACHE_DIR": str(self.cache_dir),
        }

    def app(self, **overrides: Any) -> Flask:
        """An app built by the real factory; closed by :meth:`close` (the ``platform`` fixture's teardown)."""
        app = create_app(self.settings(**overrides), store=self.store)
        self.apps.append(app)
        return app

    def close(self) -> None:
        """Close every app built here: shadow workers and audit writers stopped, connections released."""
        while self.apps:
            close_app(self.apps.pop())

    def rows(self, where: str = "true", **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(f"select * from inferences where {where} order by created_at"), params)
            return [dict(r._mapping) for r in result]
