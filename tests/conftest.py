"""The parts every test builds on.

Unit tier: ``memory``, models served from Python objects and records kept in memory (``support.memory``).
Real infrastructure, for the adapters and end to end: a Postgres migrated by Alembic (``TEST_DATABASE_URL``
when set, else an embedded server, pgserver, for the session) and an S3 endpoint over HTTP (moto's server
mode on loopback, reached by boto3 through ``AWS_ENDPOINT_URL`` exactly as a real S3-compatible store would be).
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from modelplatform import db
from modelplatform.settings import StoreLocation
from modelplatform.store import S3ModelStore
from support import Platform
from support.memory import MemoryPlatform

# The unit tier is every test not marked slow (`make test-fast`). Slow is marked for the author where it can be:
# a test is slow when it needs the session's Postgres or S3 endpoint (directly or through any fixture built on
# them: engine, store, platform...) or lives in a directory of end-to-end tests; and a test of the unit tier that
# starts a process fails, naming the process, until it is marked @pytest.mark.slow.
INFRASTRUCTURE_FIXTURES = frozenset({"database_url", "s3_endpoint"})
SLOW_DIRECTORIES = frozenset({"e2e", "ops", "docs"})
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.system", "os.exec"})
_unit_test_running = False  # True while a test of the unit tier sets up or runs (never at teardown)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m "not slow"`` (the unit tier) the directories of slow tests are not even imported."""
    if config.getoption("markexpr", "").strip() == "not slow" and collection_path.is_dir():
        tests = Path(__file__).parent
        return collection_path.parent == tests and collection_path.name in SLOW_DIRECTORIES or None
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        directory = item.path.relative_to(tests).parts[0]
        if INFRASTRUCTURE_FIXTURES & set(getattr(item, "fixturenames", ())) or directory in SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)


def _refuse_processes_in_the_unit_tier(event: str, args: tuple[Any, ...]) -> None:
    if _unit_test_running and event in PROCESS_EVENTS:
        raise RuntimeError(f"a test not marked slow started a process ({event} {str(args)[:200]}): mark it "
                           "@pytest.mark.slow, or keep it in the unit tier without the process")


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(_refuse_processes_in_the_unit_tier)  # audit hooks cannot be removed: it checks a flag


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _as_unit_test(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _as_unit_test(item)


def _as_unit_test(item: pytest.Item) -> Iterator[None]:
    # not teardown: the last test of a session tears down the session's Postgres, whatever its tier
    global _unit_test_running
    _unit_test_running = item.get_closest_marker("slow") is None
    try:
        yield
    finally:
        _unit_test_running = False


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    server = None
    if not url:
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
        url = server.get_uri()
    db.upgrade(url)
    yield url
    if server is not None:
        server.cleanup()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    from modelplatform.settings import normalize_database_url

    eng = sa.create_engine(normalize_database_url(database_url))
    yield eng
    eng.dispose()


@pytest.fixture
def scratch_databases(engine: sa.Engine, database_url: str) -> Iterator[Callable[..., str]]:
    """Make databases of their own (dropped at the end), migrated to ``revision`` (None: left empty), for
    tests that change the schema or the partitions, which ``truncate`` would not undo."""
    from sqlalchemy.engine import make_url

    from modelplatform.settings import normalize_database_url

    made: list[str] = []

    def make(revision: str | None = "head") -> str:
        name = f"scratch_{uuid.uuid4().hex[:10]}"
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'create database "{name}"'))
        made.append(name)
        url = make_url(normalize_database_url(database_url)).set(database=name).render_as_string(hide_password=False)
        if revision is not None:
            db.upgrade(url, revision)
        return url

    yield make
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in made:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))


@pytest.fixture
def clean_db(engine: sa.Engine) -> sa.Engine:
    """An empty ``inferences`` table for this test."""
    with engine.begin() as conn:
        conn.execute(sa.text("truncate inferences"))
    return engine


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        yield endpoint
    server.stop()


@pytest.fixture
def store(s3_endpoint: str) -> S3ModelStore:
    """A fresh bucket (and prefix) per test, so tests never see each other's models."""
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return S3ModelStore(StoreLocation(bucket=bucket, prefix="registry"))


@pytest.fixture
def platform(store: S3ModelStore, clean_db: sa.Engine, database_url: str, tmp_path: Path) -> Iterator[Platform]:
    """Publish models, write a config, build apps through the real factory (all closed at the end)."""
    built = Platform(store=store, engine=clean_db, database_url=database_url, workdir=tmp_path)
    yield built
    built.close()


@pytest.fixture
def memory() -> Iterator[MemoryPlatform]:
    """The unit tier's platform: ``add`` models as Python objects, build apps and data planes through the real
    code, read the records from memory. Shadow workers are stopped at teardown."""
    platform = MemoryPlatform()
    yield platform
    platform.close()


DATA = Path(__file__).parent / "data"


@pytest.fixture
def payload() -> Callable[[str], Any]:
    """Load a JSON payload from ``tests/data``."""
    def load(name: str) -> Any:
        return json.loads((DATA / name).read_text())
    return load
