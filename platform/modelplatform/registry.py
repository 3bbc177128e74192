"""The registry: model name → version → loaded predictor, with default resolution.

Built by :func:`load_registry` (never at import time) and read-only afterwards, so request threads share it
without locks. Under gunicorn it is built once in the master from the verified artifact cache and inherited by
every worker at the fork (:mod:`modelplatform.handoff`). This module never imports boto3.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from modelplatform import artifacts, versions
from modelplatform.config import Example, ModelsConfig, ModelSpec
from modelplatform.errors import StartupError, UnknownModel, UnknownVersion, echo
from modelplatform.settings import StoreLocation
from modelplatform.validation import CompiledSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedVersion:
    model: str
    version: str
    predictor: Any
    sha256: str
    schema_key: str
    validator: CompiledSchema
    examples: tuple[Example, ...]
    loaded_at: datetime
    source: str  # the store URL the file was published to
    origin: str = "store"  # where this host got the verified bytes for this start: "store" or "cache"

    @property
    def schema(self) -> Any:
        return self.validator.schema


@dataclass(frozen=True)
class RegisteredModel:
    spec: ModelSpec
    versions: Mapping[str, LoadedVersion]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def default(self) -> LoadedVersion:
        return self.versions[self.spec.default]

    def version(self, version: str) -> LoadedVersion:
        """Raises :class:`UnknownVersion` for a version that is not active."""
        try:
            return self.versions[version]
        except KeyError:
            raise UnknownVersion(
                f"model {self.name!r} has no active version {echo(version)!r}; "
                f"active versions: {', '.join(self.spec.active_versions)}",
                model=self.name, version=echo(version),
            ) from None


class Registry:
    """Read-only lookup of loaded models."""

    def __init__(self, config: ModelsConfig, models: Mapping[str, RegisteredModel]) -> None:
        self.config = config
        self._models = MappingProxyType(dict(models))

    def __iter__(self) -> Iterator[RegisteredModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def model(self, name: str) -> RegisteredModel:
        """Raises :class:`UnknownModel`."""
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(f"no model named {echo(name)!r}", model=echo(name)) from None

    def get(self, name: str, version: str | None = None) -> LoadedVersion:
        """The pinned ``version`` of ``name``, or its default. Raises :class:`UnknownModel`/:class:`UnknownVersion`."""
        model = self.model(name)
        return model.default if version is None else model.version(version)

    def count_versions(self) -> int:
        return sum(len(m.versions) for m in self)

    def origins(self) -> dict[str, dict[str, str]]:
        """``model → version → origin``: where this host got each version's file (``store`` or ``cache``)."""
        return {m.name: {v.version: v.origin for v in m.versions.values()} for m in self}


class VersionSource(Protocol):
    """Where the loader gets a version's bytes: verified against ``sha256``, with their origin
    (:class:`modelplatform.host_artifacts.CachedArtifacts`). Raises ``ArtifactRejected`` naming model and version."""

    def read(self, model: str, version: str, sha256: str) -> tuple[bytes, str]: ...


def load_registry(config: ModelsConfig, source: VersionSource, *, location: str | StoreLocation = "",
                  reuse: Registry | None = None, max_workers: int = 8) -> Registry:
    """Read every active version's verified bytes from ``source`` (in parallel), then unpickle each.

    ``location`` is the store the files were published to (for the ``source`` URL shown in metadata).
    A version ``reuse`` already holds with the same sha256 is not read or unpickled again: its predictor is
    shared (and its compiled schema too when the schema is unchanged), so a reload costs only what changed.

    Raises :class:`StartupError` listing every version that is missing, tampered or unloadable.
    """
    where = location if isinstance(location, StoreLocation) else (StoreLocation.parse(location) if location else None)
    wanted = [(spec, version) for spec in config for version in spec.active_versions]
    problems: list[str] = []
    fetched: dict[tuple[str, str], tuple[bytes, str]] = {}

    def reusable(spec: ModelSpec, version: str) -> LoadedVersion | None:
        if reuse is None:
            return None
        try:
            previous = reuse.get(spec.name, version)
        except (UnknownModel, UnknownVersion):
            return None
        return previous if previous.sha256 == spec.sha256[version] else None

    def read(item: tuple[ModelSpec, str]) -> tuple[tuple[str, str], tuple[bytes, str] | Exception]:
        spec, version = item
        try:
            return (spec.name, version), source.read(spec.name, version, spec.sha256[version])
        except artifacts.ArtifactRejected as exc:
            return (spec.name, version), exc

    to_read = [item for item in wanted if reusable(*item) is None]
    if to_read:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(to_read)))) as pool:
            for key, result in pool.map(read, to_read):
                if isinstance(result, Exception):
                    problems.append(str(result))
                else:
                    fetched[key] = result

    models: dict[str, RegisteredModel] = {}
    for spec in config:
        loaded: dict[str, LoadedVersion] = {}
        for version in sorted(spec.active_versions, key=versions.sort_key):
            url = f"s3://{where.bucket}/{where.key(spec.name, version)}" if where else ""
            schema = spec.schema_for(version)
            previous = reusable(spec, version)
            if previous is not None:
                validator = previous.validator if previous.schema == schema else CompiledSchema(schema)
                loaded[version] = replace(previous, schema_key=spec.schema_key(version), validator=validator,
                                          examples=spec.examples_for(version), source=url or previous.source)
                continue
            if (spec.name, version) not in fetched:
                continue
            data, origin = fetched.pop((spec.name, version))
            log.info("loading model", extra={"model": spec.name, "version": version, "origin": origin})
            try:
                artifacts.verify(spec.name, version, data, spec.sha256[version])
                predictor = artifacts.load_predictor(spec.name, version, data)
            except artifacts.ArtifactRejected as exc:
                problems.append(str(exc))
                continue
            loaded[version] = LoadedVersion(
                model=spec.name,
                version=version,
                predictor=predictor,
                sha256=spec.sha256[version],
                schema_key=spec.schema_key(version),
                validator=CompiledSchema(schema),
                examples=spec.examples_for(version),
                loaded_at=datetime.now(UTC),
                source=url,
                origin=origin,
            )
            log.info("loaded model", extra={"model": spec.name, "version": version, "source": url,
                                            "origin": origin, "bytes": len(data)})
            del data
        models[spec.name] = RegisteredModel(spec=spec, versions=MappingProxyType(loaded))
    if problems:
        raise StartupError(problems)
    return Registry(config, models)
