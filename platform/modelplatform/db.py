"""Schema migrations: Alembic is the only way the database schema changes."""
from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from modelplatform.settings import normalize_database_url


def project_root() -> Path:
    """The checkout holding ``alembic.ini`` and ``migrations/``: ``$MODELPLATFORM_HOME``, the current
    directory, or the one this source tree sits in."""
    candidates = [os.environ.get("MODELPLATFORM_HOME"), os.getcwd(), Path(__file__).resolve().parents[2]]
    for candidate in candidates:
        if candidate and (Path(candidate) / "alembic.ini").is_file() and (Path(candidate) / "migrations").is_dir():
            return Path(candidate)
    raise FileNotFoundError("cannot find alembic.ini and migrations/; run from the project checkout "
                            "or set MODELPLATFORM_HOME")


def alembic_config(database_url: str) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
