"""Settings read from the environment once, validated with every problem reported together."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from modelplatform.errors import StartupError

DEFAULT_CONFIG_PATH = "config/models.json"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_AUDIT_SPOOL_DIR = "var/audit-spool"
AUDIT_SPOOL_OFF = "off"
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
    """Validated runtime settings. See the README's settings table for each variable."""

    database_url: str
    store: StoreLocation
    config_path: Path
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # None: no outage spool (an unreachable database answers 503)
    audit_spool_dir: Path | None = Path(DEFAULT_AUDIT_SPOOL_DIR)
    database_pool_mode: str = POOL_MODE_SESSION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read ``DATABASE_URL``, ``MODEL_STORE_URL``, ``MODELS_CONFIG``, ``MAX_BODY_BYTES``, ``AUDIT_SPOOL_DIR``,
        ``DATABASE_POOL_MODE``.

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

        raw_spool = env.get("AUDIT_SPOOL_DIR", "").strip() or DEFAULT_AUDIT_SPOOL_DIR
        audit_spool_dir = None if raw_spool.lower() == AUDIT_SPOOL_OFF else Path(raw_spool)

        pool_mode = env.get("DATABASE_POOL_MODE", "").strip().lower() or POOL_MODE_SESSION
        if pool_mode not in (POOL_MODE_SESSION, POOL_MODE_TRANSACTION):
            problems.append(f"DATABASE_POOL_MODE must be {POOL_MODE_SESSION!r} or {POOL_MODE_TRANSACTION!r} "
                            f"(PgBouncer pool_mode=transaction), got {pool_mode!r}")

        if problems:
            raise StartupError(problems)
        assert store is not None
        return cls(
            database_url=normalize_database_url(database_url),
            store=store,
            config_path=config_path,
            max_body_bytes=max_body,
            audit_spool_dir=audit_spool_dir,
            database_pool_mode=pool_mode,
        )
