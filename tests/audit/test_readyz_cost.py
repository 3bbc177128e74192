"""/readyz costs the database next to nothing however often it is polled, and still notices an outage.

The database is reached through a counting TCP proxy (``support.tcpproxy``), so "new connections" are
counted where they happen, and the proxy can cut every connection like a database host going away.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from modelplatform.app import close_app, create_app
from modelplatform.audit.group_commit import GroupCommitAuditLog
from modelplatform.audit.readiness import DEFAULT_PROBE_INTERVAL
from support import OBJECT_SCHEMA, Platform
from support.models import Pricer
from support.tcpproxy import PostgresProxy

PREDICT = "/models/auto_pricing/versions/1.0.0/predict"
QUOTE = {"vehicle": "suv", "driver_age": 40}


@pytest.fixture
def proxy(database_url: str) -> Iterator[PostgresProxy]:
    proxy = PostgresProxy(database_url)
    yield proxy
    proxy.close()


@pytest.fixture
def pricing(platform: Platform) -> Platform:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.0": OBJECT_SCHEMA})
    return platform


def _app(platform: Platform, proxy: PostgresProxy, audit: GroupCommitAuditLog | None = None, **settings) -> Flask:
    return create_app(platform.settings(DATABASE_URL=proxy.url, **settings), store=platform.store, audit=audit)


def _wait_for(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_polling_readyz_opens_at_most_one_connection_per_probe_interval(pricing: Platform, proxy: PostgresProxy,
                                                                        tmp_path: Path) -> None:
    app = _app(pricing, proxy, AUDIT_SPOOL_DIR=tmp_path / "spool")
    client = app.test_client()
    try:
        started = time.monotonic()
        answers = [client.get("/readyz") for _ in range(300)]
        elapsed = time.monotonic() - started
        assert {a.status_code for a in answers} == {200}
        assert {a.get_json()["status"] for a in answers} == {"ready"}
        # one probe when the first call finds nothing known, then one per interval at most
        assert proxy.connections_total <= 1 + int(elapsed / DEFAULT_PROBE_INTERVAL), (proxy.connections_total, elapsed)

        # what the audit writer learns from a committed batch counts as knowledge: no probe needed
        before = proxy.connections_total
        assert client.post(PREDICT, json=QUOTE).status_code == 200
        writer_connections = proxy.connections_total - before
        assert [client.get("/readyz").status_code for _ in range(100)] == [200] * 100
        assert proxy.connections_total - before == writer_connections
    finally:
        close_app(app)


def test_readiness_turns_degraded_when_the_database_goes_away_and_ready_when_it_is_back(
        pricing: Platform, proxy: PostgresProxy, tmp_path: Path) -> None:
    audit = GroupCommitAuditLog(proxy.url, spool_dir=tmp_path / "spool", readiness_interval=0.3)
    client = _app(pricing, proxy, audit=audit).test_client()
    try:
        assert client.get("/readyz").get_json()["status"] == "ready"
        assert client.post(PREDICT, json=QUOTE).status_code == 200

        proxy.cut()
        assert _wait_for(lambda: client.get("/readyz").get_json()["checks"]["database"] == "unreachable", 5)
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
        assert client.post(PREDICT, json=QUOTE).status_code == 200  # spooled
        assert client.get("/readyz").get_json()["audit_spool_depth"] == 1

        proxy.restore()
        assert _wait_for(lambda: client.get("/readyz").get_json()["status"] == "ready")
        assert client.get("/readyz").get_json()["checks"] == {"models": "ok", "database": "ok"}
        assert len(pricing.rows()) == 2  # the spooled row was replayed
    finally:
        audit.close()


def test_without_a_spool_readiness_turns_503_when_the_database_goes_away(pricing: Platform,
                                                                           proxy: PostgresProxy) -> None:
    audit = GroupCommitAuditLog(proxy.url, spool_dir=None, readiness_interval=0.3)
    client = _app(pricing, proxy, audit=audit).test_client()
    try:
        assert client.get("/readyz").status_code == 200
        proxy.cut()
        assert _wait_for(lambda: client.get("/readyz").status_code == 503, 5)
        assert client.get("/readyz").get_json()["type"] == "urn:modelplatform:problem:not-ready"
        proxy.restore()
        assert _wait_for(lambda: client.get("/readyz").status_code == 200)
    finally:
        audit.close()
