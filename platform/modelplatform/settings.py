"""Settings: the environment read once, each variable validated, every problem reported together, then passed
down as a frozen object. Nothing else in the package reads our variables from the environment.

- :class:`Settings` (:meth:`Settings.from_env`): the service, read by ``create_app()`` in each worker and by the
  gunicorn master before it checks and loads a config. Also built directly in code (every field has a default).
- :class:`ServerSettings` (:meth:`ServerSettings.from_env`): the gunicorn server, read by
  :mod:`modelplatform.gunicorn_conf` (``PORT``, ``HOST``, ``WEB_*``, ``LOG_LEVEL``).
- The command line resolves the few it needs with the same parsers (:mod:`modelplatform.cli.resolve`): one
  store-URL parser (:meth:`StoreLocation.parse`), one database-URL normaliser (:func:`normalize_database_url`).

What the gunicorn master hands its forked workers through the environment (the config snapshot, the metrics
directory) is process plumbing, not settings: :mod:`modelplatform.forkenv`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from modelplatform import forkenv
from modelplatform.audit.bounds import DEFAULT_MAX_INVALID_INPUT_BYTES
from modelplatform.auth import ApiKeys
from modelplatform.errors import StartupError

DEFAULT_CONFIG_PATH = "config/models.json"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_AUDIT_SPOOL_DIR = "var/audit-spool"
AUDIT_SPOOL_OFF = "off"
DEFAULT_ARTIFACT_CACHE_DIR = "var/artifacts"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
DEFAULT_PREDICT_TIMEOUT = 10.0
# DATABASE_POOL_MODE: `session` (direct to Postgres, or PgBouncer pool_mode=session) or `transaction`
# (PgBouncer pool_mode=transaction: no statement prepared per connection; docs/operations.md)
POOL_MODE_SESSION, POOL_MODE_TRANSACTION = "session", "transaction"
_DATABASE_SCHEMES = ("postgres://", "postgresql://", "postgresql+psycopg2://")

Env = Mapping[str, str]
T = TypeVar("T")


@dataclass(frozen=True)
class StoreLocation:
    """Where model files live: ``s3://bucket/prefix`` → ``<prefix>/<name>/<version>.dill``."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str, name: str = "MODEL_STORE_URL") -> StoreLocation:
        """Parse ``s3://bucket[/prefix]`` (the one store-URL parser); raises ``ValueError`` with a readable
        reason naming the setting or flag ``name`` it came from."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{name} must look like s3://bucket/prefix, got {url!r}")
        return cls(bucket=parsed.netloc, prefix=parsed.path.strip("/"))

    def key(self, model: str, version: str) -> str:
        return "/".join(p for p in (self.prefix, model, f"{version}.dill") if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def normalize_database_url(url: str) -> str:
    """The one form of a database URL kept and passed around: a SQLAlchemy URL with the psycopg2 driver pinned
    (``postgresql+psycopg2://…``; SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3, which is not installed).
    ``postgres://`` (Heroku style) and ``postgresql://`` are accepted; anything else is returned unchanged (see
    :func:`database_url_problem`). Code that talks to psycopg2 directly connects with
    :func:`psycopg2_dsn` of it."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def psycopg2_dsn(url: str) -> str:
    """The same URL as libpq (psycopg2) reads it: :func:`normalize_database_url`'s form without the SQLAlchemy
    driver suffix (``postgresql://…``; libpq takes the query options, ``sslmode``, ``host=/socket/dir``…, as is)."""
    return normalize_database_url(url).replace("postgresql+psycopg2://", "postgresql://", 1)


def database_url_problem(url: str, name: str = "DATABASE_URL") -> str | None:
    """Why ``url`` is not a usable database URL, or None."""
    if not url:
        return f"{name} is not set (postgresql://user:pass@host/db)"
    if not url.startswith(_DATABASE_SCHEMES):
        return f"{name} must be a postgresql:// URL, got scheme of {url.split(':', 1)[0]!r}"
    return None


def config_path_from(env: Env) -> Path:
    """``MODELS_CONFIG``, or the default ``config/models.json`` (relative to the working directory)."""
    return Path(env.get("MODELS_CONFIG", "").strip() or DEFAULT_CONFIG_PATH)


class _Reader:
    """Reads variables from one environment mapping, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str = "") -> str:
        return self.env.get(name, "").strip() or default

    def parsed(self, name: str, default: T, convert: Callable[[str], T], valid: Callable[[T], bool],
               problem: Callable[[str], str]) -> T:
        """``convert(value)`` when it converts and is ``valid``; else ``default``, noting ``problem(raw)``."""
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = convert(raw)
        except ValueError:
            value = None
        if value is None or not valid(value):
            self.problems.append(problem(raw))
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...], problem: Callable[[str], str]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            self.problems.append(problem(value))
        return value


@dataclass(frozen=True)
class Settings:
    """Validated runtime settings of the service. See the README's settings table for each variable.

    :meth:`from_env` reads them from the environment (the server's way). They can also be built directly in
    code, with no environment at all: every field has a default, and ``database_url``/``store`` are needed
    only by the parts that use them (the audit writer, a store to fill the artifact cache from), so
    ``create_app(Settings(), audit=..., registry=...)`` builds an app from in-memory parts.
    """

    # None: no database configured (create_app then needs an ``audit`` passed in); else normalized
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
    # PROMETHEUS_MULTIPROC_DIR, set by the gunicorn master (modelplatform.forkenv): where every worker's metric
    # values are summed; None outside gunicorn (the app's own registry is exposed)
    metrics_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        """Read ``DATABASE_URL``, ``MODEL_STORE_URL``, ``MODELS_CONFIG``, ``MAX_BODY_BYTES``, ``AUDIT_SPOOL_DIR``,
        ``AUDIT_MAX_INVALID_INPUT_BYTES``, ``ARTIFACT_CACHE_DIR``, ``PRELOAD_MODELS``, ``PREDICT_TIMEOUT``,
        ``DATABASE_POOL_MODE``, ``API_KEYS``, ``API_KEYS_FILE`` (and ``MODELPLATFORM_CONFIG_SOURCE`` and
        ``PROMETHEUS_MULTIPROC_DIR``, set by the master: :mod:`modelplatform.forkenv`).

        Raises :class:`StartupError` listing every missing or malformed variable.
        """
        read = _Reader(os.environ if env is None else env)

        database_url = read.text("DATABASE_URL")
        problem = database_url_problem(database_url)
        if problem:
            read.problems.append(problem)

        store: StoreLocation | None = None
        store_url = read.text("MODEL_STORE_URL")
        if not store_url:
            read.problems.append("MODEL_STORE_URL is not set (s3://bucket/prefix)")
        else:
            try:
                store = StoreLocation.parse(store_url)
            except ValueError as exc:
                read.problems.append(str(exc))

        max_body = read.parsed("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int, lambda v: v > 0,
                               lambda raw: f"MAX_BODY_BYTES must be a positive integer, got {raw!r}")
        max_invalid = read.parsed(
            "AUDIT_MAX_INVALID_INPUT_BYTES", DEFAULT_MAX_INVALID_INPUT_BYTES, int, lambda v: v >= 0,
            lambda raw: f"AUDIT_MAX_INVALID_INPUT_BYTES must be a whole number of bytes ≥ 0, got {raw!r}")
        raw_spool = read.text("AUDIT_SPOOL_DIR", DEFAULT_AUDIT_SPOOL_DIR)
        preload = read.choice("PRELOAD_MODELS", "1", tuple(_TRUE | _FALSE),
                              lambda raw: f"PRELOAD_MODELS must be 1 or 0 (true/false), got {raw!r}")
        predict_timeout = read.parsed(
            "PREDICT_TIMEOUT", DEFAULT_PREDICT_TIMEOUT, float, lambda v: 0 < v < float("inf"),
            lambda raw: f"PREDICT_TIMEOUT must be a positive number of seconds, got {raw!r}")
        pool_mode = read.choice(
            "DATABASE_POOL_MODE", POOL_MODE_SESSION, (POOL_MODE_SESSION, POOL_MODE_TRANSACTION),
            lambda raw: f"DATABASE_POOL_MODE must be {POOL_MODE_SESSION!r} or {POOL_MODE_TRANSACTION!r} "
                        f"(PgBouncer pool_mode=transaction), got {raw!r}")
        api_keys = None
        try:
            api_keys = ApiKeys.from_env(read.env)
        except StartupError as exc:
            read.problems.extend(exc.problems)

        if read.problems:
            raise StartupError(read.problems)
        return cls(
            database_url=normalize_database_url(database_url),
            store=store,
            config_path=config_path_from(read.env),
            max_body_bytes=max_body,
            audit_spool_dir=None if raw_spool.lower() == AUDIT_SPOOL_OFF else Path(raw_spool),
            audit_max_invalid_input_bytes=max_invalid,
            artifact_cache_dir=Path(read.text("ARTIFACT_CACHE_DIR", DEFAULT_ARTIFACT_CACHE_DIR)),
            preload_models=preload in _TRUE,
            config_source=read.text(forkenv.CONFIG_SOURCE) or None,
            predict_timeout=predict_timeout,
            database_pool_mode=pool_mode,
            api_keys=api_keys,
            metrics_dir=Path(metrics_dir) if (metrics_dir := read.text(forkenv.METRICS_DIR)) else None,
        )

    @property
    def config_label(self) -> str:
        """The config file as the operator knows it (their file, not the master's snapshot of it)."""
        return self.config_source or str(self.config_path)


# ---- the gunicorn server ---------------------------------------------------------------------------------------

WORKER_CLASSES = {"gevent": "modelplatform.gunicorn_worker.GeventWorker",
                  "gthread": "modelplatform.gunicorn_worker.ThreadWorker"}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Limits:
    """The worker's deadlines, seconds (README settings table)."""

    header: float = 10.0      # WEB_HEADER_TIMEOUT: request line + headers, from the first byte (or accept)
    body: float = 10.0        # WEB_BODY_TIMEOUT: the whole body, once the head is in; also each response write
    keepalive: float = 5.0    # WEB_KEEPALIVE: idle time allowed between requests on one connection
    boot_retry_max: float = 30.0  # WEB_BOOT_RETRY_MAX: longest pause between two boot attempts


@dataclass(frozen=True)
class ServerSettings:
    """How gunicorn serves: where, how many workers of which class, its timeouts and the worker's deadlines."""

    host: str = "0.0.0.0"
    port: int = 8000
    workers: int = 2
    worker: str = "gevent"
    connections: int = 1000
    threads: int = 8
    timeout: int = 30
    log_level: str = "INFO"
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: Env | None = None) -> ServerSettings:
        """Read ``HOST``, ``PORT``, ``WEB_CONCURRENCY``, ``WEB_WORKER``, ``WEB_CONNECTIONS``, ``WEB_THREADS``,
        ``WEB_TIMEOUT``, ``WEB_HEADER_TIMEOUT``, ``WEB_BODY_TIMEOUT``, ``WEB_KEEPALIVE``, ``WEB_BOOT_RETRY_MAX``
        and ``LOG_LEVEL``. Raises :class:`StartupError` listing every malformed one."""
        read = _Reader(os.environ if env is None else env)

        def whole(name: str, default: int, high: int | None = None) -> int:
            limits = f"1–{high}" if high else "≥ 1"
            return read.parsed(name, default, int, lambda v: v >= 1 and (high is None or v <= high),
                               lambda raw: f"{name}={raw!r}: must be a whole number {limits}")

        def seconds(name: str, default: float) -> float:
            return read.parsed(name, default, float, lambda v: 0 < v <= 3600,
                               lambda raw: f"{name}={raw!r}: must be a number of seconds, > 0 and ≤ 3600")

        port = whole("PORT", 8000, 65535)
        workers = whole("WEB_CONCURRENCY", 2)
        threads = whole("WEB_THREADS", 8)
        timeout = whole("WEB_TIMEOUT", 30)
        connections = whole("WEB_CONNECTIONS", 1000)
        log_level = read.text("LOG_LEVEL", "INFO").upper()
        if not isinstance(logging.getLevelName(log_level), int):
            read.problems.append(f"LOG_LEVEL={log_level!r}: must be one of {', '.join(_LOG_LEVELS)}")
        worker = read.choice("WEB_WORKER", "gevent", tuple(WORKER_CLASSES),
                             lambda raw: f"WEB_WORKER={raw!r}: must be one of {', '.join(WORKER_CLASSES)}")
        defaults = Limits()
        limits = Limits(header=seconds("WEB_HEADER_TIMEOUT", defaults.header),
                        body=seconds("WEB_BODY_TIMEOUT", defaults.body),
                        keepalive=seconds("WEB_KEEPALIVE", defaults.keepalive),
                        boot_retry_max=seconds("WEB_BOOT_RETRY_MAX", defaults.boot_retry_max))
        if read.problems:
            raise StartupError(read.problems)
        return cls(host=read.text("HOST", "0.0.0.0"), port=port, workers=workers, worker=worker,
                   connections=connections, threads=threads, timeout=timeout, log_level=log_level, limits=limits)
