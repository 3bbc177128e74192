"""Two hosts: independent gunicorn masters (own working directory, spool, artifact cache) against one Postgres
and one S3. The same routing key gets the same version on both, every 200 from either has its row, once."""
from __future__ import annotations

import itertools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from modelplatform.audit.ids import uuid7_time
from modelplatform.routing import assign
from support import Platform
from support.models import Echo
from support.processes import gunicorn_web

WEIGHTS = {"1.0.0": 30, "2.0.0": 70}
KEYS = [f"customer-{i}" for i in range(60)]


@pytest.mark.slow
def test_two_hosts_route_alike_and_record_every_answer_once(platform: Platform, tmp_path: Path) -> None:
    platform.add("quote", {v: Echo() for v in WEIGHTS}, default="1.0.0",
                 ab_test={"name": "hosts-rollout", "weights": WEIGHTS, "sticky_key": "/customer_id"})
    hosts = {name: tmp_path / name for name in ("host-a", "host-b")}
    with ExitStack() as stack:
        bases = {}
        for name, home in hosts.items():
            home.mkdir()
            env = {**platform.env(), "AUDIT_SPOOL_DIR": str(home / "var" / "audit-spool"),
                   "ARTIFACT_CACHE_DIR": str(home / "var" / "artifacts")}
            bases[name] = stack.enter_context(gunicorn_web(env, workers=2, cwd=home))

        calls = list(itertools.product(range(3), KEYS, bases))

        def call(item: tuple[int, str, str]) -> tuple[str, str, int, dict]:
            _, key, host = item
            response = requests.post(f"{bases[host]}/models/quote/predict", json={"customer_id": key},
                                     headers={"Connection": "close"}, timeout=30)
            return host, key, response.status_code, response.json()

        with ThreadPoolExecutor(8) as pool:  # both hosts at once, the same keys interleaved
            answers = list(pool.map(call, calls))

    assert [status for _, _, status, _ in answers] == [200] * len(calls)
    versions: dict[str, set[str]] = defaultdict(set)
    for _host, key, _, doc in answers:
        versions[key].add(doc["version"])
    assert dict(versions) == {key: {assign("hosts-rollout", WEIGHTS, key)} for key in KEYS}
    assert {host for host, *_ in answers} == set(hosts)

    rows = {str(r["id"]): r for r in platform.rows()}
    assert len(rows) == len(platform.rows()) == len(calls)  # one row per answer, none twice
    for _host, key, _, doc in answers:
        row = rows[doc["inference_id"]]
        assert (row["routing_key"], row["version"], row["experiment"]) == (key, doc["version"], "hosts-rollout")
        assert abs((row["created_at"] - uuid7_time(doc["inference_id"])).total_seconds()) < 0.001
    for home in hosts.values():  # nothing waits in either host's own spool
        assert all(p.stat().st_size == 0 for p in (home / "var" / "audit-spool").glob("audit-*.jsonl"))
