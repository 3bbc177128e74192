"""Postgres stopped during a burst and started again: no failed request, then one row per 200.

Runs against its own embedded Postgres (not the session one), stopped with the ``pg_ctl`` that
pgserver ships and started again through pgserver.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit_support import Burst
from modelplatform import db
from modelplatform.settings import normalize_database_url
from support import OBJECT_SCHEMA, Platform
from support.models import Pricer

pytestmark = pytest.mark.slow


def metric(client, name: str) -> float:
    """One unlabelled sample of the app's ``/metrics`` (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").get_data(as_text=True)
    return next((s.value for family in text_string_to_metric_families(text) for s in family.samples
                 if s.name == name), 0.0)


class Postgres:
    """A private pgserver instance that can be stopped and started."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.url


@pytest.fixture
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    pg = Postgres(tmp_path_factory.mktemp("outage-pgdata"))
    db.upgrade(pg.url)
    yield pg
    pg.server.cleanup()


def test_postgres_stopped_mid_burst_loses_nothing_and_duplicates_nothing(private_postgres: Postgres, store,
                                                                        tmp_path: Path, payload) -> None:
    engine = sa.create_engine(normalize_database_url(private_postgres.url))
    platform = Platform(store=store, engine=engine, database_url=private_postgres.url, workdir=tmp_path)
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": OBJECT_SCHEMA})
    app = platform.app(AUDIT_SPOOL_DIR=tmp_path / "spool")
    body = payload("quote_valid.json")

    clients = threading.local()

    def send() -> tuple[int, str | None]:
        if not hasattr(clients, "client"):
            clients.client = app.test_client()
        response = clients.client.post("/models/auto_pricing/versions/1.0.0/predict", json=body)
        return response.status_code, response.get_json().get("inference_id")

    with Burst(send) as burst:
        time.sleep(0.5)
        private_postgres.stop()
        time.sleep(1.5)  # requests keep coming while Postgres is down
        with app.test_client() as probe:
            degraded = probe.get("/readyz")
            spooled_during_outage = metric(probe, "modelplatform_audit_spooled_total")
        private_postgres.start()
        time.sleep(1.0)
    statuses = [status for status, _ in burst.results]
    answered = [inference_id for status, inference_id in burst.results if status == 200]

    assert statuses and set(statuses) == {200}, Counter(statuses)  # zero failed valid requests
    assert spooled_during_outage > 0, "no request was served from the spool"
    assert degraded.status_code == 200 and degraded.get_json()["status"] == "degraded"

    with app.test_client() as probe:
        deadline = time.monotonic() + 30
        while probe.get("/readyz").get_json()["audit_spool_depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert probe.get("/readyz").get_json()["audit_spool_depth"] == 0, "spool not replayed within 30 s"
        assert metric(probe, "modelplatform_audit_spool_replayed_total") >= spooled_during_outage

    with engine.connect() as conn:
        ids = [str(i) for i in conn.execute(sa.text("select id from inferences")).scalars()]
    assert len(ids) == len(answered) == len(set(ids)), (len(ids), len(answered), len(set(ids)))
    assert set(ids) == set(answered)
    with app.test_client() as probe:
        assert probe.get("/readyz").get_json()["status"] == "ready"
    platform.close()
    engine.dispose()


def test_postgres_stopped_mid_burst_under_the_gevent_worker_loses_nothing(private_postgres: Postgres, store,
                                                                          tmp_path: Path, payload) -> None:
    """The same guarantee under real gunicorn with the default (gevent) worker: the writer is a greenlet,
    psycopg2 cooperative, and the outage is a real stopped server."""
    import requests

    from support.processes import gunicorn_web

    engine = sa.create_engine(normalize_database_url(private_postgres.url))
    platform = Platform(store=store, engine=engine, database_url=private_postgres.url, workdir=tmp_path)
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": OBJECT_SCHEMA})
    body = payload("quote_valid.json")
    sessions = threading.local()

    with gunicorn_web({**platform.env(), "AUDIT_SPOOL_DIR": str(tmp_path / "spool"), "WEB_WORKER": "gevent"}) as base:
        def send() -> tuple[int, str | None]:
            session = sessions.__dict__.setdefault("session", requests.Session())
            response = session.post(base + "/models/auto_pricing/versions/1.0.0/predict", json=body, timeout=20)
            return response.status_code, response.json().get("inference_id")

        with Burst(send) as burst:
            time.sleep(0.5)
            private_postgres.stop()
            time.sleep(2.0)  # requests keep coming while Postgres is down
            degraded = requests.get(base + "/readyz", timeout=10).json()
            private_postgres.start()
            time.sleep(1.5)
        statuses = [status for status, _ in burst.results]
        answered = {inference_id for status, inference_id in burst.results if status == 200}
        assert statuses and set(statuses) == {200}, Counter(statuses)
        assert degraded["status"] == "degraded"

        deadline = time.monotonic() + 30  # the spools are replayed once Postgres answers again
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                ids = [str(i) for i in conn.execute(sa.text("select id from inferences")).scalars()]
            if len(ids) >= len(answered):
                break
            time.sleep(0.3)
    assert len(ids) == len(set(ids)) and set(ids) == answered, (len(ids), len(answered))
    engine.dispose()
