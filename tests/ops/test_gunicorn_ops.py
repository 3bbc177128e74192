"""Under real gunicorn (2 workers): metrics summed across workers, JSON logs, chunked 413, HUP reload.

Marked slow: each test boots a gunicorn master; all are bounded by timeouts and always stopped.
"""
from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ops_support import QUOTE, Load
from support import Platform, publish
from support.models import Pricer

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data"


def schema() -> dict:
    return json.loads((DATA / "schema_quote_v1.json").read_text())


def predictions_total(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "modelplatform_predictions_total")


def test_metrics_add_up_across_workers_and_logs_are_json(platform: Platform, gunicorn) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.X": schema()})
    server = gunicorn(platform, workers=2)

    # both workers up before the load, so the kernel can hand connections to either
    server.wait_for_count(lambda entry: entry["message"].startswith("serving 1 model(s)"), 2)

    statuses: list[int] = []

    def burst(first: int) -> None:
        for i in range(first, first + 25):  # a new connection each time
            response = requests.post(server.url + "/models/auto_pricing/predict", json=QUOTE,
                                     headers={"X-Request-ID": f"load-{i}", "Connection": "close"}, timeout=10)
            statuses.append(response.status_code)

    sent = 0
    served_by: set[int] = set()
    while len(served_by) < 2 and sent < 400:  # until both workers have served some (bounded)
        threads = [threading.Thread(target=burst, args=(sent + 25 * n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        sent += 100
        server.wait_for_log(lambda entry, last=f"load-{sent - 1}": entry.get("request_id") == last)
        lines = server.json_lines()
        served_by = {entry["pid"] for entry in lines if str(entry.get("request_id", "")).startswith("load-")}
    assert len(served_by) == 2, "both workers should have served some requests"
    assert statuses == [200] * sent
    # every scrape, whichever worker answers it, reports the sum over both workers
    assert [predictions_total(server.url) for _ in range(6)] == [sent] * 6

    requests_logged = [entry for entry in lines if entry.get("logger") == "modelplatform.request"
                       and str(entry.get("request_id", "")).startswith("load-")]
    assert len(requests_logged) == sent
    line = requests_logged[0]
    assert ((line["model"], line["version"], line["routed_by"], line["status"])
            == ("auto_pricing", "1.0.0", "default", 200))
    assert line["latency_ms"] > 0
    startup = [entry for entry in lines if entry["message"].startswith("serving 1 model(s)")]
    assert len(startup) == 2 and str(platform.store.location) in startup[0]["message"]
    loaded = [entry for entry in lines if entry["message"] == "loaded model"]
    assert loaded and loaded[0]["source"].endswith("auto_pricing/1.0.0.dill")


def test_chunked_body_over_the_limit_is_413_under_gunicorn(platform: Platform, gunicorn) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.X": schema()})
    server = gunicorn(platform, workers=1, MAX_BODY_BYTES="2048")

    def chunks():
        yield b'{"vehicle": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'", "driver_age": 40}'

    response = requests.post(server.url + "/models/auto_pricing/predict", data=chunks(),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:modelplatform:problem:payload-too-large"
    small = requests.post(server.url + "/models/auto_pricing/predict", data=iter([json.dumps(QUOTE).encode()]),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert small.status_code == 200


@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_requests_gunicorn_refuses_itself_get_problem_json_too(platform: Platform, gunicorn, worker: str) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.0.X": schema()})
    server = gunicorn(platform, workers=1, WEB_WORKER=worker)

    for headers, status in (({"X-Request-ID": "r" * 10_000}, 431), ({"X-Routing-Key": "k" * 10_000}, 431)):
        response = requests.post(server.url + "/models/auto_pricing/predict", json=QUOTE, headers=headers, timeout=10)
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == status and response.json()["type"] == "about:blank"
    long_url = requests.get(server.url + "/models/" + "m" * 10_000, timeout=10)
    assert long_url.status_code == 414 and long_url.json()["status"] == 414
    assert long_url.json()["type"] == "about:blank"

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/problem+json" in head
    assert json.loads(body)["status"] == 400 and json.loads(body)["type"] == "about:blank"
    # and the service is unharmed
    assert requests.post(server.url + "/models/auto_pricing/predict", json=QUOTE, timeout=10).status_code == 200


def test_hup_reload_serves_the_new_config_with_zero_failures_and_refuses_a_broken_one(
        platform: Platform, gunicorn) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.X.X": schema()})
    server = gunicorn(platform, workers=2)

    with Load(server.url) as load:
        time.sleep(1.0)
        # new version with new weights, made the default
        sha = publish(platform.store, "auto_pricing", "1.1.0", Pricer("310.00", "v2"))
        entry = platform.config["auto_pricing"]
        entry["active_model_versions"] = ["1.0.0", "1.1.0"]
        entry["sha256"]["1.1.0"] = sha
        entry["default"] = "1.1.0"
        platform.write_config()
        server.signal(signal.SIGHUP)
        switched_at = load.wait_for_version("1.1.0")
        time.sleep(1.5)

        # a broken config: a version whose file does not match its sha256
        publish(platform.store, "auto_pricing", "1.2.0", Pricer("999.00", "v3"))
        entry["active_model_versions"] = ["1.0.0", "1.1.0", "1.2.0"]
        entry["sha256"]["1.2.0"] = "0" * 64
        entry["default"] = "1.2.0"
        platform.write_config()
        server.signal(signal.SIGHUP)
        refused = server.wait_for_log(lambda entry: entry["message"].startswith("reload refused"))
        # one more worker, forked after the refusal: it must boot from the last good config
        server.signal(signal.SIGTTIN)
        # 2 workers after the good reload, 2 more after the refused one, 1 from TTIN: all on 2 versions
        server.wait_for_count(lambda entry: entry["message"].startswith("serving 1 model(s), 2 version(s)"), 5)
        time.sleep(2.0)

    assert load.failures() == []
    assert len(load.results) > 50
    after = [got for at, status, got in load.results if at > switched_at + 1.0]
    assert after and set(after) == {"1.1.0"}, Counter(after)
    assert any("1.2.0" in p and "0" * 64 in p for p in refused["problems"]), refused
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert server.proc.poll() is None
    # dead workers' gauges are gone: only the reloaded revision is reported as live
    text = requests.get(server.url + "/metrics", timeout=10).text
    revisions = {s.labels["revision"] for family in text_string_to_metric_families(text) for s in family.samples
                 if s.name == "modelplatform_config_info" and s.value == 1}
    assert revisions == {requests.get(server.url + "/readyz", timeout=5).json()["config_revision"]}
    print(f"\nreload under load: {len(load.results)} requests, 0 failed; slowest answer "
          f"{max(load.latencies):.3f}s, median {sorted(load.latencies)[len(load.latencies) // 2]:.3f}s")
