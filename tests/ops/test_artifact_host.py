"""Artifacts once per host, under real gunicorn, through an S3 endpoint the test counts and takes down.

- one GET per version per host and deploy, none on a warm start or an unchanged reload;
- the store unreachable (or refusing expired credentials): a worker SIGKILLed and HUP reloads, with zero
  failed predicts; a reload that needs the store is refused and the host serves on;
- a cold start with the store unreachable serves from the cache, and fails clearly for a version it lacks;
- an object changed in S3 is never loaded (a model that leaves a trace when unpickled) and never halts the host.

Marked slow: each test boots gunicorn masters; all are bounded by timeouts and always stopped.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from modelplatform.artifacts import sha256_hex
from modelplatform.authoring import dumps_by_value
from ops_support import QUOTE, Load
from support import Platform, publish
from support.models import LeavesTrace, Pricer
from support.s3 import S3Gate

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data"


def schema() -> dict:
    return json.loads((DATA / "schema_quote_v1.json").read_text())


@pytest.fixture
def gate(s3_endpoint: str) -> Iterator[S3Gate]:
    gate = S3Gate().up()
    yield gate
    gate.down()


def serving(line: dict) -> bool:
    return line["message"].startswith("serving ") and line["logger"] == "modelplatform.app"


def readyz(url: str, revision: str | None = None, timeout: float = 30) -> dict:
    """``/readyz`` (200), from a worker serving ``revision`` when given (old workers may answer for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url + "/readyz", timeout=10)
        assert response.status_code == 200, response.text
        doc = response.json()
        if revision is None or doc["config_revision"] == revision or time.monotonic() > deadline:
            return doc
        time.sleep(0.2)


def kill_worker(pid: int, timeout: float = 10) -> None:
    """SIGKILL a worker and return once its master has reaped it. Not earlier: a thread group's leader shows as
    dead (zombie, no open files) while its other threads still hold the sockets open."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"worker {pid} not reaped {timeout}s after SIGKILL"
        time.sleep(0.01)


def replace_a_worker(server, load: Load, pid: int, workers_booted: int) -> None:
    """SIGKILL worker ``pid`` while no request is in flight, and wait for its replacement to serve."""
    with load.paused():
        kill_worker(pid)
        load.mark(f"worker {pid} killed")
    server.wait_for_count(serving, workers_booted)
    load.mark("worker replaced")
    load.wait_for_more(20)


def hup(server, load: Load, why: str, outcome: str, nth: int, workers_booted: int) -> dict:
    """HUP; wait for the ``nth`` ``reload <outcome>`` log line, for the new workers, and for more answers."""
    load.mark(f"HUP, {why}")
    server.signal(signal.SIGHUP)
    line = server.wait_for_count(lambda entry: entry["message"].startswith(f"reload {outcome}"), nth)[nth - 1]
    server.wait_for_count(serving, workers_booted)  # gunicorn replaces its workers either way
    load.wait_for_more(20)
    return line


def revision(path: Path) -> str:
    return sha256_hex(path.read_bytes())[:12]


def add_version(platform: Platform, version: str, sha: str, *, default: bool = True) -> Path:
    entry = platform.config["auto_pricing"]
    entry["active_model_versions"].append(version)
    entry["sha256"][version] = sha
    if default:
        entry["default"] = version
    return platform.write_config()


def overwrite(platform: Platform, version: str, data: bytes) -> None:
    """Replace a published object behind the config's back (what publish's conditional write prevents)."""
    platform.store.client.put_object(Bucket=platform.store.location.bucket,
                                     Key=platform.store.location.key("auto_pricing", version), Body=data)


def test_one_get_per_version_per_host_and_none_from_a_warm_cache(platform: Platform, gunicorn, gate: S3Gate) -> None:
    versions = ["1.0.0", "1.1.0", "1.2.0"]
    platform.add("auto_pricing", {v: Pricer("300.00", v) for v in versions}, schemas={"1.X.X": schema()})

    first = gunicorn(platform, workers=2, **gate.env())
    first.wait_for_count(serving, 2)
    assert gate.object_gets() == 3  # not 2 workers × 3
    assert readyz(first.url)["models_source"] == {"auto_pricing": {v: "store" for v in versions}}
    first.stop()

    # workers that load for themselves (no preload) read the host's cache, never the store
    gate.reset()
    second = gunicorn(platform, workers=2, PRELOAD_MODELS="0", **gate.env())
    second.wait_for_count(serving, 2)
    assert gate.object_gets() == 0
    assert all(entry["message"].endswith(f"models loaded from {platform.cache_dir}")
               for entry in second.json_lines() if serving(entry))
    assert readyz(second.url)["models_source"] == {"auto_pricing": {v: "cache" for v in versions}}

    second.signal(signal.SIGHUP)  # the same file: nothing to fetch
    second.wait_for_log(lambda entry: entry["message"].startswith("reload accepted"))
    second.wait_for_count(serving, 4)
    assert gate.object_gets() == 0

    sha = publish(platform.store, "auto_pricing", "1.3.0", Pricer("330.00", "1.3.0"))
    path = add_version(platform, "1.3.0", sha)
    second.signal(signal.SIGHUP)  # one new version: one GET
    second.wait_for_count(lambda entry: entry["message"].startswith("reload accepted"), 2)
    second.wait_for_count(serving, 6)
    assert gate.object_gets() == 1
    doc = readyz(second.url, revision(path))
    assert doc["models_source"] == {"auto_pricing": {**{v: "cache" for v in versions}, "1.3.0": "store"}}
    assert gate.object_gets() == 1
    assert not [r for r in gate.requests if r[0] not in ("GET", "HEAD")]  # a host only ever reads the store


def test_store_unreachable_then_a_worker_killed_and_reloads_zero_failed(platform: Platform, gunicorn,
                                                                        gate: S3Gate) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.X.X": schema()})
    server = gunicorn(platform, workers=2, **gate.env())
    booted = server.wait_for_count(serving, 2)

    with Load(server.url) as load:
        load.wait_for_more(20)
        gate.down()
        load.mark("store down")

        # a worker dies: its replacement takes the master's models, no store needed
        replace_a_worker(server, load, booted[0]["pid"], 3)
        # a reload with unchanged artifacts needs nothing from the store: accepted
        hup(server, load, "unchanged", "accepted", 1, 5)

        # a reload that needs a new file from the unreachable store: refused, the last good config serves on
        sha = publish(platform.store, "auto_pricing", "1.1.0", Pricer("310.00", "v2"))
        add_version(platform, "1.1.0", sha)
        unreachable = hup(server, load, "needs the store", "refused", 1, 7)

        # the store answers again but the credentials have expired: refused too
        gate.up()
        gate.expire()
        expired = hup(server, load, "expired credentials", "refused", 2, 9)

        # credentials renewed: the same reload goes through
        gate.expire(False)
        hup(server, load, "store back", "accepted", 2, 11)
        load.wait_for_version("1.1.0")

    assert load.failures() == [], load.timeline()
    assert len(load.results) > 100
    assert server.proc.poll() is None
    (problem,) = unreachable["problems"]
    assert problem.startswith("[store] auto_pricing 1.1.0: cannot reach the model store"), problem
    (problem,) = expired["problems"]
    assert "auto_pricing 1.1.0" in problem and "ExpiredToken" in problem, problem
    assert readyz(server.url)["status"] == "ready"


def test_cold_start_with_the_store_unreachable_serves_from_the_cache(platform: Platform, gunicorn,
                                                                     gate: S3Gate) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
                 schemas={"1.X.X": schema()})
    first = gunicorn(platform, workers=1, **gate.env())
    first.stop()
    gate.down()

    second = gunicorn(platform, workers=2, wait="/readyz", **gate.env())
    for version, premium in (("1.0.0", 405.0), ("1.1.0", 418.5)):
        response = requests.post(f"{second.url}/models/auto_pricing/versions/{version}/predict", json=QUOTE, timeout=10)
        assert response.status_code == 200 and response.json()["output"]["premium"] == premium
    assert readyz(second.url)["models_source"] == {"auto_pricing": {"1.0.0": "cache", "1.1.0": "cache"}}
    ready = second.wait_for_log(lambda entry: entry["message"].startswith("artifacts ready"))
    assert "0 downloaded from the store, 2 from the artifact cache" in ready["message"]
    second.stop()

    # a version that is neither cached nor reachable: the start fails, naming it and why
    sha = publish(platform.store, "auto_pricing", "2.0.0", Pricer("400.00", "v3"))
    platform.config["auto_pricing"]["schemas"]["2.X.X"] = schema()
    add_version(platform, "2.0.0", sha)
    third = gunicorn(platform, workers=2, wait=None, **gate.env())
    assert third.wait_exit(timeout=90) == 1
    refused = third.wait_for_log(lambda entry: entry["message"].startswith("startup refused"), timeout=1)
    (problem,) = refused["problems"]
    assert problem.startswith("[store] auto_pricing 2.0.0: cannot reach the model store"), problem
    assert "no verified copy in the artifact cache" in problem
    assert "Booting worker" not in third.log()  # no worker ever existed


def test_a_changed_object_is_never_loaded_and_never_halts_the_host(platform: Platform, gunicorn, gate: S3Gate,
                                                                   tmp_path: Path) -> None:
    trace = tmp_path / "forged-bytes-were-unpickled"
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.X.X": schema()})
    server = gunicorn(platform, workers=2, **gate.env())
    booted = server.wait_for_count(serving, 2)
    overwrite(platform, "1.0.0", dumps_by_value(LeavesTrace(str(trace))))

    with Load(server.url) as load:
        load.wait_for_more(20)
        replace_a_worker(server, load, booted[1]["pid"], 3)
        hup(server, load, "unchanged", "accepted", 1, 5)

        # a reload that needs an object someone replaced after publishing: refused, naming both digests
        published = publish(platform.store, "auto_pricing", "1.1.0", Pricer("310.00", "v2"))
        forged = dumps_by_value(LeavesTrace(str(trace)))
        overwrite(platform, "1.1.0", forged)
        add_version(platform, "1.1.0", published)
        refused = hup(server, load, "needs a changed object", "refused", 1, 7)

    assert load.failures() == [], load.timeline()
    assert {got for _, _, got in load.results} == {"1.0.0"}
    (problem,) = refused["problems"]
    assert problem.startswith("[store] auto_pricing 1.1.0: sha256 mismatch"), problem
    assert f"config expects {published}" in problem and f"the store holds {sha256_hex(forged)}" in problem
    response = requests.post(server.url + "/models/auto_pricing/predict", json=QUOTE, timeout=10)
    assert response.json()["output"]["tag"] == "v1"
    assert server.proc.poll() is None
    assert not trace.exists(), "forged bytes were unpickled"

    # a host that never cached 1.0.0 refuses to start on the changed object, before unpickling it
    platform.config["auto_pricing"].update(active_model_versions=["1.0.0"], default="1.0.0")
    platform.config["auto_pricing"]["sha256"].pop("1.1.0")
    fresh = gunicorn(platform, workers=1, wait=None, ARTIFACT_CACHE_DIR=str(tmp_path / "fresh-host"), **gate.env())
    assert fresh.wait_exit(timeout=90) == 1
    assert "auto_pricing 1.0.0: sha256 mismatch" in fresh.log()
    assert not trace.exists(), "forged bytes were unpickled"


def test_a_stopped_master_leaves_no_temporary_directories_and_metrics_name_the_operators_file(
        platform: Platform, gunicorn, tmp_path: Path) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")}, schemas={"1.X.X": schema()})
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()

    killed = gunicorn(platform, workers=1, TMPDIR=str(private_tmp))
    assert [p.name[:len("modelplatform-run-")] for p in private_tmp.iterdir()] == ["modelplatform-run-"]
    os.killpg(killed.proc.pid, signal.SIGKILL)  # no on_exit: its directory stays behind…
    killed.wait_exit(timeout=30)
    (left,) = private_tmp.iterdir()

    server = gunicorn(platform, workers=2, TMPDIR=str(private_tmp))
    assert not left.exists()  # …until the next master starts
    text = requests.get(server.url + "/metrics", timeout=10).text
    sources = {s.labels["source"] for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "modelplatform_config_info"}
    assert sources == {str(platform.write_config())}
    server.signal(signal.SIGHUP)
    server.wait_for_log(lambda entry: entry["message"].startswith("reload accepted"))
    server.stop()
    assert server.proc.returncode == 0
    assert list(private_tmp.iterdir()) == []
