"""What a command runs against: flag, else environment, else default, through the one parser of each setting."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from modelplatform.cli.resolve import DEFAULT_RETENTION_FLOOR, CannotRun, resolve
from modelplatform.settings import DEFAULT_CONFIG_PATH, StoreLocation


def command(**flags: str | None) -> argparse.Namespace:
    return argparse.Namespace(command="publish", **flags)


@pytest.fixture(autouse=True)
def no_demo_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a demo running from the checkout must not answer for these commands


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    env = {"MODEL_STORE_URL": "s3://from-env/models", "MODELS_CONFIG": "env.json", "DATABASE_URL": "postgres://u@h/d"}
    flagged = resolve(command(store="s3://from-flag/p", config="flag.json"), env)
    assert flagged.store() == StoreLocation("from-flag", "p")
    assert flagged.config_path == Path("flag.json")

    from_env = resolve(command(store=None, config=None), env)
    assert from_env.store() == StoreLocation("from-env", "models")
    assert from_env.config_path == Path("env.json")
    assert from_env.database() == "postgresql+psycopg2://u@h/d"  # the one normaliser

    defaults = resolve(command(), {"DATABASE_URL": "postgresql://u@h/d"})
    assert defaults.config_path == Path(DEFAULT_CONFIG_PATH)
    assert defaults.retention_floor == DEFAULT_RETENTION_FLOOR
    assert defaults.home is None


@pytest.mark.parametrize(("env", "says"), [
    ({}, "DATABASE_URL is not set"),
    ({"DATABASE_URL": "   "}, "DATABASE_URL is not set"),
    ({"DATABASE_URL": "mysql://u@h/d"}, "must be a postgresql:// URL"),
])
def test_an_unusable_database_url_cannot_run_and_says_why(env: dict[str, str], says: str) -> None:
    with pytest.raises(CannotRun, match=says):
        resolve(command(), {"MODEL_STORE_URL": "s3://b/p", **env}).database()


def test_an_unusable_store_cannot_run_and_says_why() -> None:
    with pytest.raises(CannotRun, match="no store; set MODEL_STORE_URL"):
        resolve(command(store=None), {"DATABASE_URL": "postgresql://u@h/d"}).store()
    with pytest.raises(CannotRun, match="must look like s3://bucket/prefix, got 'http://x'"):
        resolve(command(store="http://x"), {}).store()
    with pytest.raises(CannotRun, match="pass --no-store"):
        resolve(command(store=None), {"DATABASE_URL": "postgresql://u@h/d"}).store("no store; pass --no-store")


def test_the_checkout_and_retention_floor_come_from_the_environment(tmp_path: Path) -> None:
    settings = resolve(command(), {"MODELPLATFORM_HOME": str(tmp_path), "AUDIT_RETENTION_FLOOR": "30d",
                                   "DATABASE_URL": "postgresql://u@h/d"})
    assert (settings.home, settings.retention_floor) == (tmp_path, "30d")
