"""Schema migrations: Alembic is the only way the database schema changes."""
from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from modelplatform.settings import normalize_database_url


def project_root(home: Path | None = None) -> Path:
    """The checkout holding ``alembic.ini`` and ``migrations/``: ``home`` (``MODELPLATFORM_HOME``), the current
    directory, or the one this source tree sits in."""
    for candidate in (home, Path(os.getcwd()), Path(__file__).resolve().parents[2]):
        if candidate is not None and (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("cannot find alembic.ini and migrations/; run from the project checkout "
                            "or set MODELPLATFORM_HOME")


def alembic_config(database_url: str, home: Path | None = None) -> Config:
    root = project_root(home)
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head", *, home: Path | None = None) -> None:
    command.upgrade(alembic_config(database_url, home), revision)


def downgrade(database_url: str, revision: str, *, home: Path | None = None) -> None:
    command.downgrade(alembic_config(database_url, home), revision)
