"""In-memory parts for the unit tier: an audit log that keeps its records in a list, and a real
:class:`~modelplatform.registry.Registry` built from Python objects (no S3, no dill, no artifact cache, no
Postgres), so the data plane, the router and the HTTP mapping are tested in milliseconds.

The real adapters (S3 store, artifact cache, group-commit writer, spool) keep their own tests against real
infrastructure; these parts stand in for them only where a test is about the logic in between.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson
from flask import Flask

from modelplatform.app import create_app
from modelplatform.artifacts import ArtifactRejected, sha256_hex
from modelplatform.audit import InferenceRecord
from modelplatform.audit.base import AuditHealth
from modelplatform.audit.bounds import DEFAULT_MAX_INVALID_INPUT_BYTES
from modelplatform.config import ModelsConfig, parse_config
from modelplatform.dataplane import DataPlane
from modelplatform.errors import AuditUnavailable
from modelplatform.registry import LoadedVersion, RegisteredModel, Registry
from modelplatform.routing import ABRouter
from modelplatform.settings import Settings
from modelplatform.shadow import DEFAULT_MAX_BYTES, DEFAULT_MAX_QUEUE
from modelplatform.validation import CompiledSchema
from support import model_entry

# what the settings must hold to be valid; nothing ever connects to them in the unit tier
UNIT_ENV = {"DATABASE_URL": "postgresql://unit@127.0.0.1:1/never-connected",
            "MODEL_STORE_URL": "s3://unit-tier/models", "MODELS_CONFIG": "unit-tier/models.json"}
SOURCE = "memory://"
WAIT_S = 20.0


class MemoryAuditLog:
    """An :class:`~modelplatform.audit.AuditLog` keeping every record in memory, thread-safe (shadow calls
    record from the dispatcher's threads).

    It answers like the group-commit writer: while the database is reachable a record is stored; while it is
    not, a record goes to the outage spool when there is one (``spool=True``), else :meth:`record` raises
    :class:`AuditUnavailable` (503 ``audit-unavailable``); :meth:`health` says which, for ``/readyz``.
    """

    def __init__(self, *, reachable: bool = True, spool: bool = False) -> None:
        self.reachable = reachable
        self.spool = spool
        self.records: list[InferenceRecord] = []  # stored in the database
        self.spooled: list[InferenceRecord] = []  # held in the outage spool
        self.refused = 0
        self.closed = False
        self._changed = threading.Condition()

    def go_down(self, *, spool: bool | None = None) -> None:
        """The database becomes unreachable (and the spool, if ``spool`` is given, usable or not)."""
        self.reachable = False
        if spool is not None:
            self.spool = spool

    def record(self, record: InferenceRecord) -> None:
        with self._changed:
            if self.reachable:
                self.records.append(record)
            elif self.spool:
                self.spooled.append(record)
            else:
                self.refused += 1
                raise AuditUnavailable("the inference could not be recorded, so it was not answered; retry")
            self._changed.notify_all()

    def health(self) -> AuditHealth:
        return AuditHealth(database=self.reachable, spool_depth=len(self.spooled),
                           can_record=self.reachable or self.spool)

    def close(self) -> None:
        self.closed = True

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        """Stored and spooled records as the ``inferences`` table returns them (JSON columns decoded), in
        the order they were recorded; ``where`` keeps the rows whose columns equal the given values."""
        with self._changed:
            records = sorted(self.records + self.spooled, key=lambda r: r.created_at)
        found = [_row(r) for r in records]
        return [row for row in found if all(row[column] == value for column, value in where.items())]

    def wait_rows(self, count: int, timeout: float = WAIT_S, **where: Any) -> list[dict[str, Any]]:
        """The rows matching ``where`` once there are at least ``count`` (or whatever there is after
        ``timeout`` seconds): for records written off the response path, by shadow calls."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := self.rows(**where)) < count and time.monotonic() < deadline:
                self._changed.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        return found


def _row(record: InferenceRecord) -> dict[str, Any]:
    row = record.as_params()
    for column in ("input", "output", "error"):
        text = row[column]
        row[column] = None if text is None else orjson.loads(text)
    return row


class MemoryFiles:
    """A :class:`~modelplatform.registry.VersionSource` holding model files in memory, for testing
    :func:`~modelplatform.registry.load_registry` itself (which unpickles: use it with dill bytes). It counts what it
    is asked to read and says the bytes came from ``origin`` (the host's artifact cache says ``store`` or ``cache``);
    a file it lacks is refused as the cache refuses one the store lacks."""

    def __init__(self, origin: str = "store") -> None:
        self.origin = origin
        self.files: dict[tuple[str, str], bytes] = {}
        self.reads: list[tuple[str, str]] = []

    def put(self, model: str, version: str, data: bytes) -> str:
        """Hold ``data`` as the file of ``model`` ``version``; returns its sha256."""
        self.files[(model, version)] = data
        return sha256_hex(data)

    def read(self, model: str, version: str, sha256: str) -> tuple[bytes, str]:
        self.reads.append((model, version))
        try:
            return self.files[(model, version)], self.origin
        except KeyError:
            raise ArtifactRejected(f"{model} {version}: no model file") from None


def digest(model: str, version: str) -> str:
    """The sha256 a version is pinned to in the unit tier: it stands for a file that is never built."""
    return hashlib.sha256(f"{model} {version}".encode()).hexdigest()


def build_registry(document: Mapping[str, Any], predictors: Mapping[str, Mapping[str, Any]]) -> Registry:
    """A real registry for a config ``document`` (checked by the real parser: a broken one raises
    ``ConfigError``) whose active versions are served by ``predictors[model][version]`` as they are."""
    config = parse_config(dict(document), source=SOURCE + "models.json")
    return Registry(config, {spec.name: _registered(config, spec.name, predictors[spec.name]) for spec in config})


def _registered(config: ModelsConfig, name: str, predictors: Mapping[str, Any]) -> RegisteredModel:
    spec = config.models[name]
    loaded_at = datetime.now(UTC)
    versions = {
        version: LoadedVersion(
            model=name, version=version, predictor=predictors[version], sha256=spec.sha256[version],
            schema_key=spec.schema_key(version), validator=CompiledSchema(spec.schema_for(version)),
            examples=spec.examples_for(version), loaded_at=loaded_at, source=f"{SOURCE}{name}/{version}",
        )
        for version in spec.active_versions
    }
    return RegisteredModel(spec=spec, versions=MappingProxyType(versions))


class MemoryPlatform:
    """The in-memory twin of :class:`support.Platform`: the same ``add``/``config``/``app``/``rows``, with
    models served as the Python objects they are and records kept by a :class:`MemoryAuditLog`."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.audit = MemoryAuditLog()
        self._predictors: dict[str, dict[str, Any]] = {}
        self._planes: list[DataPlane] = []

    def add(self, name: str, models: dict[str, Any], **entry: Any) -> dict[str, Any]:
        """Serve each ``version → model`` object under ``name``; ``entry`` as for :func:`support.model_entry`."""
        self._predictors[name] = dict(models)
        self.config[name] = model_entry({version: digest(name, version) for version in models}, **entry)
        return self.config[name]

    def registry(self) -> Registry:
        return build_registry(self.config, self._predictors)

    def settings(self, **overrides: Any) -> Settings:
        return Settings.from_env({**UNIT_ENV, **{k: str(v) for k, v in overrides.items()}})

    def app(self, *, audit: MemoryAuditLog | None = None, **overrides: Any) -> Flask:
        """An app from the real factory, serving the models added so far, recording into ``audit`` (this
        platform's own log by default); ``overrides`` are settings, as environment variables."""
        app = create_app(self.settings(**overrides), audit=self.audit if audit is None else audit,
                         registry=self.registry())
        self._planes.append(app.extensions["modelplatform.dataplane"])
        return app

    def dataplane(self, *, audit: MemoryAuditLog | None = None, predict_timeout: float | None = None,
                  max_invalid_input_bytes: int = DEFAULT_MAX_INVALID_INPUT_BYTES,
                  shadow_queue: int = DEFAULT_MAX_QUEUE, shadow_bytes: int = DEFAULT_MAX_BYTES) -> DataPlane:
        """A data plane wired as ``create_app`` wires it (A/B router; a shadow dispatcher, with a queue of
        ``shadow_queue`` calls and ``shadow_bytes`` bytes, when a model has shadows), recording into ``audit``
        (this platform's own log by default). Its shadow workers stop at teardown.

        The one place the unit tier builds a data plane by hand: when its constructor changes, change this.
        """
        registry = self.registry()
        plane = DataPlane(registry, self.audit if audit is None else audit, ABRouter.from_registry(registry),
                          max_invalid_input_bytes=max_invalid_input_bytes, predict_timeout=predict_timeout,
                          shadow_max_queue=shadow_queue, shadow_max_bytes=shadow_bytes)
        self._planes.append(plane)
        return plane

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        return self.audit.rows(**where)

    def wait_rows(self, count: int, **where: Any) -> list[dict[str, Any]]:
        return self.audit.wait_rows(count, **where)

    def close(self) -> None:
        """Stop the shadow workers of every data plane (and app) built here, so none runs on after the test."""
        for plane in self._planes:
            if plane.shadows is not None:
                plane.shadows.close(timeout=10)
