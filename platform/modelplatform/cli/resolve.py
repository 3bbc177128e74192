"""What a command runs against, resolved once for every command: a flag, else the environment, else a running
demo, else the default.

=================== ========================== ===================== ========================= =====================
setting             flag                       environment           running demo              default
=================== ========================== ===================== ========================= =====================
database            (none)                     ``DATABASE_URL``      its Postgres              none: exit 2
store               ``--store``                ``MODEL_STORE_URL``   its bucket                none: exit 2
config              ``--config`` / ``PATH``    ``MODELS_CONFIG``     its config file           ``config/models.json``
checkout            (none)                     ``MODELPLATFORM_HOME`` (none)                   the working directory
retention floor     (none)                     ``AUDIT_RETENTION_FLOOR`` (none)                ``90d``
=================== ========================== ===================== ========================= =====================

A running demo (``.demo/demo.json``, :mod:`modelplatform.demostate`) is used only when nothing points elsewhere:
none of ``DATABASE_URL``, ``MODEL_STORE_URL``, ``AWS_ENDPOINT_URL`` set and no ``--store``, so a demo's parts are
never mixed with the user's; its S3 clients then talk to the demo's endpoint with its dummy credentials, never a
profile's. The database URL goes through the one normaliser and the store URL through the one parser of
:mod:`modelplatform.settings`. Nothing is written back to the environment.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplatform import demostate
from modelplatform.settings import DEFAULT_CONFIG_PATH, StoreLocation, database_url_problem, normalize_database_url

if TYPE_CHECKING:  # boto3 is imported by the commands that talk to S3, when they do
    from modelplatform.store import S3ModelStore

DEFAULT_RETENTION_FLOOR = "90d"
# any of these set means the user configured the command: a demo is never mixed in
EXPLICIT_SETTINGS = ("DATABASE_URL", "MODEL_STORE_URL", "AWS_ENDPOINT_URL")
NO_STORE = "no store; set MODEL_STORE_URL or pass --store s3://bucket/prefix"


class CannotRun(Exception):
    """The command cannot run with these settings (exit 2); the message says why and what to do."""


@dataclass(frozen=True)
class CommandSettings:
    """The settings one command runs with (see the module docstring for where each comes from)."""

    database_url: str | None = None
    store_url: str | None = None
    config_path: Path = Path(DEFAULT_CONFIG_PATH)
    home: Path | None = None
    retention_floor: str = DEFAULT_RETENTION_FLOOR
    demo: demostate.DemoState | None = None

    def database(self) -> str:
        """The database URL, normalized. Raises :class:`CannotRun` when it is missing or not PostgreSQL."""
        problem = database_url_problem(self.database_url or "")
        if problem:
            raise CannotRun(problem)
        assert self.database_url is not None
        return normalize_database_url(self.database_url)

    def store(self, missing: str = NO_STORE) -> StoreLocation:
        """Where model files are. Raises :class:`CannotRun` with ``missing`` when none is given, or saying what
        is wrong with the URL."""
        if not self.store_url:
            raise CannotRun(missing)
        try:
            return StoreLocation.parse(self.store_url)
        except ValueError as exc:
            raise CannotRun(str(exc)) from None

    def model_store(self, missing: str = NO_STORE) -> S3ModelStore:
        """The model store, through :meth:`s3_client`. Raises :class:`CannotRun` as :meth:`store`."""
        from modelplatform.store import S3ModelStore

        return S3ModelStore(self.store(missing), client=self.s3_client())

    def s3_client(self) -> Any:
        """A boto3 S3 client: boto3's usual settings (credentials, region, ``AWS_ENDPOINT_URL``), or the running
        demo's endpoint and dummy credentials."""
        from modelplatform.store import make_client

        return make_client() if self.demo is None else demostate.s3_client(self.demo.aws_endpoint_url)


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> CommandSettings:
    """The settings of the command ``args`` describe (its ``store`` and ``config`` flags, when it has them)."""
    env = os.environ if environ is None else environ

    def variable(name: str) -> str | None:
        return env.get(name, "").strip() or None

    store_flag: str | None = getattr(args, "store", None)
    config_flag: str | Path | None = getattr(args, "config", None)
    home = Path(home_dir) if (home_dir := variable("MODELPLATFORM_HOME")) else None
    demo = None
    if args.command != "demo" and not store_flag and not any(variable(name) for name in EXPLICIT_SETTINGS):
        demo = demostate.find_running(home=home)
    config = config_flag or variable("MODELS_CONFIG") or \
        (str(demostate.shown_path(Path(demo.models_config))) if demo is not None else DEFAULT_CONFIG_PATH)
    return CommandSettings(
        database_url=variable("DATABASE_URL") or (demo.database_url if demo is not None else None),
        store_url=store_flag or variable("MODEL_STORE_URL") or (demo.model_store_url if demo is not None else None),
        config_path=Path(config),
        home=home,
        retention_floor=variable("AUDIT_RETENTION_FLOOR") or DEFAULT_RETENTION_FLOOR,
        demo=demo,
    )
