"""``modelplatform db upgrade`` (the Procfile release command) and the migrations' downgrade path."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from modelplatform import db
from modelplatform.settings import normalize_database_url
from support.processes import ROOT, procfile_command


@pytest.fixture
def empty_database(engine: sa.Engine, database_url: str):
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = make_url(normalize_database_url(database_url)).set(database=name)
    yield url.render_as_string(hide_password=False)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'drop database "{name}" with (force)'))


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_release_command_migrates_an_empty_database(empty_database: str) -> None:
    result = subprocess.run(procfile_command("release"), cwd=ROOT, env={**os.environ, "DATABASE_URL": empty_database},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "database upgraded to head" in result.stdout
    assert "inferences" in _tables(empty_database)

    engine = sa.create_engine(empty_database)
    try:
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("inferences")}
        indexes = {i["name"] for i in sa.inspect(engine).get_indexes("inferences")}
    finally:
        engine.dispose()
    for name in ("id", "created_at", "model", "version", "routed_by", "experiment", "routing_key", "status",
                 "input", "output", "error", "latency_ms", "request_id", "artifact_sha256"):
        assert name in columns
    assert str(columns["input"]["type"]) == "JSONB"
    assert {"inferences_created_at", "inferences_model_version_created_at"} <= indexes


def test_every_revision_downgrades_cleanly(empty_database: str) -> None:
    db.upgrade(empty_database)
    db.downgrade(empty_database, "base")
    assert "inferences" not in _tables(empty_database)
    db.upgrade(empty_database)  # and back up again
    assert "inferences" in _tables(empty_database)


@pytest.mark.slow
def test_upgrade_without_database_url_fails_clearly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(procfile_command("release"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr


@pytest.mark.slow
def test_platform_directory_is_never_a_package() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()
    result = subprocess.run([sys.executable, "-c", "import platform, boto3, uuid; print(platform.python_version())"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _db_upgrade(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelplatform.cli", "db", "upgrade", *args], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_unreachable_database_fails_the_release_with_the_reason_not_a_traceback() -> None:
    result = _db_upgrade("postgresql://postgres@127.0.0.1:1/postgres")
    assert result.returncode == 2
    # (Alembic's own INFO lines come first)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("modelplatform db upgrade: cannot migrate the database (OperationalError: ")
    assert "Traceback" not in result.stderr


def test_unknown_revision_is_refused_with_its_name(empty_database: str) -> None:
    result = _db_upgrade(empty_database, "9999")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "modelplatform db upgrade: Can't locate revision identified by '9999'")
    assert "Traceback" not in result.stderr
    assert "inferences" not in _tables(empty_database)
