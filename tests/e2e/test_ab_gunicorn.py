"""End to end under the Procfile web command: two forked gunicorn workers route every unit alike, and each
runs its own shadow queue (threads started after the fork, in the worker that serves)."""
from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest
import requests

from modelplatform.routing import assign
from support import Platform
from support.processes import gunicorn_web

WEIGHTS = {"1.0.0": 50, "2.0.0": 50}
KEYS = [f"customer-{i}" for i in range(50)]
REPEATS = 4


class ReportsPid:
    """Answers with the process that ran it, so the test sees which worker served."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def predict(self, payload: dict) -> dict:
        return {"pid": os.getpid(), "tag": self.tag}


@pytest.mark.slow
def test_workers_agree_on_every_unit_and_each_runs_its_own_shadows(platform: Platform) -> None:
    platform.add("quote", {v: ReportsPid(v) for v in ("1.0.0", "2.0.0", "3.0.0")}, default="1.0.0",
                 ab_test={"name": "e2e-rollout", "weights": WEIGHTS, "sticky_key": "/customer_id"},
                 shadow=["3.0.0"])
    served: dict[str, set[str]] = defaultdict(set)
    pids: set[int] = set()
    with gunicorn_web(platform.env(), workers=2) as base:
        for _ in range(REPEATS):
            for key in KEYS:
                # a new connection per call, so the kernel hands calls to either worker
                doc = requests.post(f"{base}/models/quote/predict", json={"customer_id": key},
                                    headers={"Connection": "close"}, timeout=10).json()
                served[key].add(doc["version"])
                pids.add(doc["output"]["pid"])
        deadline = time.monotonic() + 30
        while len(platform.rows("routed_by = 'shadow'")) < len(KEYS) * REPEATS and time.monotonic() < deadline:
            time.sleep(0.1)

    assert len(pids) == 2, "both workers should have served some of the calls"
    assert {key: versions for key, versions in served.items()} == \
           {key: {assign("e2e-rollout", WEIGHTS, key)} for key in KEYS}

    shadows = platform.rows("routed_by = 'shadow'")
    assert len(shadows) == len(KEYS) * REPEATS
    assert {r["version"] for r in shadows} == {"3.0.0"}
    assert {r["output"]["pid"] for r in shadows} == pids  # every worker ran its own shadow queue
    assert {r["experiment"] for r in shadows} == {"e2e-rollout"}
