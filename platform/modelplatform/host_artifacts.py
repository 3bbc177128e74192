"""Model files on this host: fill the artifact cache from the store, and hand verified bytes to the loader.

Two halves, so that the process that talks to S3 never unpickles and the process that unpickles never needs S3:

- :func:`fill_cache` downloads every active version the cache lacks (one GET per missing version), verifying
  each download's sha256 before it is renamed into the cache. It never loads a model. ``python -m
  modelplatform.host_artifacts CONFIG --store URL --cache DIR`` runs it as the gunicorn master's *fetch step* (a
  child process, so the master never imports boto3) and prints a JSON report.
- :class:`CachedArtifacts` gives the registry the verified bytes of a version from the cache, filling a miss
  from the store when it was given one (``create_app()`` outside gunicorn), and says where they came from.

An artifact already in the cache is never downloaded again, so an object changed or deleted in the store
after it was cached is never seen, let alone loaded; a version the cache lacks is fetched and must match its
pinned sha256 or it is refused, naming model, version, expected and found digests.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelplatform import artifacts
from modelplatform.artifact_cache import CACHE, STORE, ArtifactCache, CacheDigestMismatch
from modelplatform.config import ConfigError, ModelsConfig, load_config

if TYPE_CHECKING:  # importing boto3 is what the gunicorn master must not do
    from modelplatform.store import S3ModelStore

log = logging.getLogger(__name__)

MAX_PARALLEL_DOWNLOADS = 8


class ArtifactUnavailable(artifacts.ArtifactRejected):
    """No verified copy of a version on this host, and the store could not provide one."""


@dataclass(frozen=True)
class Fetched:
    """One active version in the cache: ``origin`` is ``store`` (downloaded now) or ``cache`` (already there)."""

    model: str
    version: str
    sha256: str
    origin: str


@dataclass(frozen=True)
class FetchReport:
    fetched: tuple[Fetched, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    # False: the config itself does not load, so nothing was fetched (its problems are the check step's to list)
    config_ok: bool = True

    @property
    def downloads(self) -> int:
        return sum(1 for f in self.fetched if f.origin == STORE)

    def origins(self) -> dict[tuple[str, str, str], str]:
        """``(model, version, sha256) → origin``."""
        return {(f.model, f.version, f.sha256): f.origin for f in self.fetched}

    def to_json(self) -> str:
        return json.dumps({"fetched": [asdict(f) for f in self.fetched], "problems": list(self.problems),
                           "config_ok": self.config_ok})

    @classmethod
    def from_json(cls, text: str) -> FetchReport:
        doc = json.loads(text)
        return cls(tuple(Fetched(**f) for f in doc["fetched"]), tuple(doc["problems"]), doc["config_ok"])


class CachedArtifacts:
    """Verified bytes of model versions, from ``cache``; a miss is downloaded through ``store()`` when given
    (called at most once, so a process whose cache is complete never builds an S3 client).

    ``origins`` (``(model, version, sha256) → origin``) overrides what :meth:`read` reports for versions that
    another process, the master's fetch step, put in the cache for this start.
    """

    def __init__(self, cache: ArtifactCache, store: Callable[[], S3ModelStore] | None = None,
                 origins: dict[tuple[str, str, str], str] | None = None) -> None:
        self.cache = cache
        self._store_factory = store
        self._store: S3ModelStore | None = None
        self.origins = dict(origins or {})

    def _the_store(self) -> S3ModelStore:
        if self._store is None:
            assert self._store_factory is not None
            self._store = self._store_factory()
        return self._store

    def read(self, model: str, version: str, sha256: str) -> tuple[bytes, str]:
        """``(bytes, origin)`` of ``model`` ``version`` pinned to ``sha256``, hashed and matching.

        Raises :class:`~modelplatform.artifacts.ArtifactRejected` naming model, version and reason: a download
        that does not match (expected and found digests), or no copy here and none from the store.
        """
        data = self.cache.read(sha256)
        if data is not None:
            return data, self.origins.get((model, version, sha256), CACHE)
        if self._store_factory is None:
            raise ArtifactUnavailable(f"{model} {version}: no verified copy in the artifact cache "
                                      f"{self.cache.directory}")
        origin = ensure(self.cache, self._the_store(), model, version, sha256)
        data = self.cache.read(sha256)
        if data is None:  # removed or damaged between the two calls: rare enough to report, not retry
            raise ArtifactUnavailable(f"{model} {version}: the artifact cache entry {sha256} vanished while loading")
        return data, origin


def ensure(cache: ArtifactCache, store: S3ModelStore, model: str, version: str, sha256: str) -> str:
    """Put ``model`` ``version`` in the cache unless a verified copy is there; its origin (``store``/``cache``).

    Raises :class:`~modelplatform.artifacts.ArtifactRejected`: the downloaded bytes do not match ``sha256``
    (nothing cached), or the store has no such object or cannot be read.
    """
    from modelplatform.store import ArtifactError  # only a process that downloads pays for boto3

    try:
        return cache.ensure(sha256, lambda out: store.download(model, version, out))
    except CacheDigestMismatch as exc:
        raise artifacts.mismatch(model, version, sha256, exc.found) from None
    except ArtifactError as exc:
        if exc.missing:
            raise ArtifactUnavailable(str(exc)) from None
        raise ArtifactUnavailable(f"{exc}; and no verified copy in the artifact cache {cache.directory}") from None


def fill_cache(config: ModelsConfig, cache: ArtifactCache, store: Callable[[], S3ModelStore], *,
               max_workers: int = MAX_PARALLEL_DOWNLOADS) -> FetchReport:
    """Every active version of ``config`` into ``cache``, verified; downloads only what is missing or damaged.

    Never raises for a version: each one the cache lacks and the store cannot provide (unreachable, expired
    credentials, missing, different bytes) is a problem in the report, naming model, version and reason.
    """
    wanted = [(spec.name, version, spec.sha256[version]) for spec in config for version in spec.active_versions]
    missing = [item for item in wanted if not cache.has(item[2])]
    origins = {item: CACHE for item in wanted if item not in missing}
    problems: list[str] = []
    if missing:
        client = store()

        def one(item: tuple[str, str, str]) -> tuple[tuple[str, str, str], str | None, str | None]:
            try:
                return item, ensure(cache, client, *item), None
            except artifacts.ArtifactRejected as exc:
                return item, None, str(exc)

        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(missing)))) as pool:
            for item, origin, problem in pool.map(one, missing):
                if problem is not None:
                    problems.append(problem)
                else:
                    origins[item] = origin  # type: ignore[assignment]
    fetched = tuple(Fetched(m, v, s, origins[(m, v, s)]) for m, v, s in wanted if (m, v, s) in origins)
    return FetchReport(fetched, tuple(problems))


def _deploy_store(url: str) -> S3ModelStore:
    from botocore.config import Config

    from modelplatform.settings import StoreLocation
    from modelplatform.store import S3ModelStore, make_client

    # a store that cannot be reached must be reported in seconds: a deploy or a reload is waiting on it
    config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 3})
    return S3ModelStore(StoreLocation.parse(url), client=make_client(config))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modelplatform.host_artifacts CONFIG --store URL --cache DIR``: fill the artifact cache DIR for
    CONFIG from the store URL; print a :class:`FetchReport` as JSON on stdout. Exit 0 when the report was
    written."""
    logging.getLogger("botocore").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m modelplatform.host_artifacts",
                                     description="The gunicorn master's fetch step (prints a JSON report).")
    parser.add_argument("config")
    parser.add_argument("--store", required=True, help="s3://bucket/prefix")
    parser.add_argument("--cache", type=Path, required=True, help="the host's artifact cache directory")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError:
        print(FetchReport(config_ok=False).to_json())
        return 0
    try:
        report = fill_cache(config, ArtifactCache(args.cache), lambda: _deploy_store(args.store))
    except ValueError as exc:  # the store URL unusable, and something had to be downloaded
        report = FetchReport(problems=(str(exc),))
    print(report.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
