"""The registry: model name → version → loaded predictor, with default resolution.

Built once per process by :func:`load_registry` (never at import time) and read-only afterwards,
so request threads share it without locks.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from modelplatform import artifacts, versions
from modelplatform.config import Example, ModelsConfig, ModelSpec
from modelplatform.errors import StartupError, UnknownModel, UnknownVersion, echo
from modelplatform.store import ArtifactError, S3ModelStore
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
    source: str

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


def load_registry(config: ModelsConfig, store: S3ModelStore, *, max_workers: int = 8) -> Registry:
    """Fetch every active version in parallel, verify its sha256, then unpickle it.

    Raises :class:`StartupError` listing every version that is missing, tampered or unloadable.
    """
    wanted = [(spec, version) for spec in config for version in spec.active_versions]
    problems: list[str] = []
    fetched: dict[tuple[str, str], bytes] = {}

    def fetch(item: tuple[ModelSpec, str]) -> tuple[tuple[str, str], bytes | Exception]:
        spec, version = item
        try:
            return (spec.name, version), store.fetch(spec.name, version)
        except ArtifactError as exc:
            return (spec.name, version), exc

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(wanted)))) as pool:
        for key, result in pool.map(fetch, wanted):
            if isinstance(result, Exception):
                problems.append(str(result))
            else:
                fetched[key] = result

    models: dict[str, RegisteredModel] = {}
    for spec in config:
        loaded: dict[str, LoadedVersion] = {}
        for version in sorted(spec.active_versions, key=versions.sort_key):
            data = fetched.get((spec.name, version))
            if data is None:
                continue
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
                validator=CompiledSchema(spec.schema_for(version)),
                examples=spec.examples_for(version),
                loaded_at=datetime.now(timezone.utc),
                source=store.url(spec.name, version),
            )
            log.info("loaded model", extra={"model": spec.name, "version": version,
                                            "source": store.url(spec.name, version), "bytes": len(data)})
        models[spec.name] = RegisteredModel(spec=spec, versions=MappingProxyType(loaded))
    if problems:
        raise StartupError(problems)
    return Registry(config, models)
