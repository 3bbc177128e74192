"""Settings read from the environment once, validated with every problem reported together."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from modelplatform.audit.bounds import DEFAULT_MAX_INVALID_INPUT_BYTES
from modelplatform.auth import ApiKeys
from modelplatform.errors import StartupError

DEFAULT_CONFIG_PATH = "config/models.json"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_AUDIT_SPOOL_DIR = "var/audit-spool"
AUDIT_SPOOL_OFF = "off"
DEFAULT_ARTIFACT_CACHE_DIR = "var/artifacts"
# set by the gunicorn master (modelplatform.reload): the operator's config file, while workers read a snapshot of it
CONFIG_SOURCE_ENV = "MODELPLATFORM_CONFIG_SOURCE"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
DEFAULT_PREDICT_TIMEOUT = 10.0
# DATABASE_POOL_MODE: `session` (direct to Postgres, or PgBouncer pool_mode=session) or `transaction`
# (PgBouncer pool_mode=transaction: no statement prepared per connection; docs/operations.md)
POOL_MODE_SESSION, POOL_MODE_TRANSACTION = "session", "transaction"


@dataclass(frozen=True)
class StoreLocation:
    """Where model files live: ``s3://bucket/prefix`` → ``<prefix>/<name>/<version>.dill``."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "StoreLocation":
        """Parse ``s3://bucket[/prefix]``; raises ``ValueError`` with a readable reason."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"MODEL_STORE_URL must look like s3://bucket/prefix, got {url!r}")
        return cls(bucket=parsed.netloc, prefix=parsed.path.strip("/"))

    def key(self, model: str, version: str) -> str:
        return "/".join(p for p in (self.prefix, model, f"{version}.dill") if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def normalize_database_url(url: str) -> str:
    """Accept ``postgres://`` (Heroku style) and pin the psycopg2 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Settings:
    """Validated runtime settings. See the README's settings table for each variable.

    :meth:`from_env` reads them from the environment (the server's way). They can also be built directly in
    code, with no environment at all: every field has a default, and ``database_url``/``store`` are needed
    only by the parts that use them (the audit writer, a store to fill the artifact cache from), so
    ``create_app(Settings(), audit=..., registry=...)`` builds an app from in-memory parts.
    """

    # None: no database configured (create_app then needs an ``audit`` passed in)
    database_url: str | None = None
    # None: no store (create_app then needs a ``registry``, or a complete artifact cache)
    store: StoreLocation | None = None
    config_path: Path = Path(DEFAULT_CONFIG_PATH)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # None: no outage spool (an unreachable database answers 503)
    audit_spool_dir: Path | None = Path(DEFAULT_AUDIT_SPOOL_DIR)
    # an invalid input (never seen by the model) larger than this is recorded as a stand-in (audit/bounds.py)
    audit_max_invalid_input_bytes: int = DEFAULT_MAX_INVALID_INPUT_BYTES
    artifact_cache_dir: Path = Path(DEFAULT_ARTIFACT_CACHE_DIR)
    # under gunicorn: load every model once in the master, before forking (see modelplatform.reload)
    preload_models: bool = True
    # what config_path stands for: the operator's file when config_path is the master's snapshot of it
    config_source: str | None = None
    # seconds a model's predict may take before the call is answered 504 deadline-exceeded
    predict_timeout: float = DEFAULT_PREDICT_TIMEOUT
    database_pool_mode: str = POOL_MODE_SESSION
    # None: the service is open; else predict and metadata need one of these keys (API_KEYS, API_KEYS_FILE)
    api_keys: ApiKeys | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read ``DATABASE_URL``, ``MODEL_STORE_URL``, ``MODELS_CONFIG``, ``MAX_BODY_BYTES``, ``AUDIT_SPOOL_DIR``,
        ``AUDIT_MAX_INVALID_INPUT_BYTES``, ``ARTIFACT_CACHE_DIR``, ``PRELOAD_MODELS``, ``PREDICT_TIMEOUT``,
        ``DATABASE_POOL_MODE``, ``API_KEYS``, ``API_KEYS_FILE`` (and ``MODELPLATFORM_CONFIG_SOURCE``, set by the
        master).

        Raises :class:`StartupError` listing every missing or malformed variable.
        """
        env = os.environ if env is None else env
        problems: list[str] = []

        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            problems.append("DATABASE_URL is not set (postgresql://user:pass@host/db)")
        elif not database_url.startswith(("postgres://", "postgresql://", "postgresql+psycopg2://")):
            problems.append(f"DATABASE_URL must be a postgresql:// URL, got scheme of {database_url.split(':', 1)[0]!r}")

        store: StoreLocation | None = None
        store_url = env.get("MODEL_STORE_URL", "").strip()
        if not store_url:
            problems.append("MODEL_STORE_URL is not set (s3://bucket/prefix)")
        else:
            try:
                store = StoreLocation.parse(store_url)
            except ValueError as exc:
                problems.append(str(exc))

        config_path = Path(env.get("MODELS_CONFIG", "").strip() or DEFAULT_CONFIG_PATH)

        max_body = DEFAULT_MAX_BODY_BYTES
        raw_max = env.get("MAX_BODY_BYTES", "").strip()
        if raw_max:
            try:
                max_body = int(raw_max)
                if max_body <= 0:
                    raise ValueError
            except ValueError:
                problems.append(f"MAX_BODY_BYTES must be a positive integer, got {raw_max!r}")

        max_invalid = DEFAULT_MAX_INVALID_INPUT_BYTES
        raw_max_invalid = env.get("AUDIT_MAX_INVALID_INPUT_BYTES", "").strip()
        if raw_max_invalid:
            try:
                max_invalid = int(raw_max_invalid)
                if max_invalid < 0:
                    raise ValueError
            except ValueError:
                problems.append(f"AUDIT_MAX_INVALID_INPUT_BYTES must be a whole number of bytes ≥ 0, "
                                f"got {raw_max_invalid!r}")

        raw_spool = env.get("AUDIT_SPOOL_DIR", "").strip() or DEFAULT_AUDIT_SPOOL_DIR
        audit_spool_dir = None if raw_spool.lower() == AUDIT_SPOOL_OFF else Path(raw_spool)

        cache_dir = artifact_cache_dir(env)
        raw_preload = env.get("PRELOAD_MODELS", "").strip().lower() or "1"
        if raw_preload not in _TRUE | _FALSE:
            problems.append(f"PRELOAD_MODELS must be 1 or 0 (true/false), got {raw_preload!r}")

        predict_timeout = DEFAULT_PREDICT_TIMEOUT
        raw_timeout = env.get("PREDICT_TIMEOUT", "").strip()
        if raw_timeout:
            try:
                predict_timeout = float(raw_timeout)
                if not 0 < predict_timeout < float("inf"):
                    raise ValueError
            except ValueError:
                problems.append(f"PREDICT_TIMEOUT must be a positive number of seconds, got {raw_timeout!r}")

        pool_mode = env.get("DATABASE_POOL_MODE", "").strip().lower() or POOL_MODE_SESSION
        if pool_mode not in (POOL_MODE_SESSION, POOL_MODE_TRANSACTION):
            problems.append(f"DATABASE_POOL_MODE must be {POOL_MODE_SESSION!r} or {POOL_MODE_TRANSACTION!r} "
                            f"(PgBouncer pool_mode=transaction), got {pool_mode!r}")

        api_keys = None
        try:
            api_keys = ApiKeys.from_env(env)
        except StartupError as exc:
            problems.extend(exc.problems)

        if problems:
            raise StartupError(problems)
        assert store is not None
        return cls(
            database_url=normalize_database_url(database_url),
            store=store,
            config_path=config_path,
            max_body_bytes=max_body,
            audit_spool_dir=audit_spool_dir,
            audit_max_invalid_input_bytes=max_invalid,
            artifact_cache_dir=cache_dir,
            preload_models=raw_preload in _TRUE,
            config_source=env.get(CONFIG_SOURCE_ENV, "").strip() or None,
            predict_timeout=predict_timeout,
            database_pool_mode=pool_mode,
            api_keys=api_keys,
        )

    @property
    def config_label(self) -> str:
        """The config file as the operator knows it (their file, not the master's snapshot of it)."""
        return self.config_source or str(self.config_path)


def artifact_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``ARTIFACT_CACHE_DIR``, or its default (relative to the working directory, like ``AUDIT_SPOOL_DIR``)."""
    env = os.environ if env is None else env
    return Path(env.get("ARTIFACT_CACHE_DIR", "").strip() or DEFAULT_ARTIFACT_CACHE_DIR)
