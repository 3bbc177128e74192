"""Model files on a host: create_app() through the cache, the master's fetch step, the hand-off to forked
workers, and what the master process imports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelplatform import handoff
from modelplatform.artifact_cache import ArtifactCache
from modelplatform.artifacts import sha256_hex
from modelplatform.authoring import dumps_by_value
from modelplatform.config import load_config
from modelplatform.errors import StartupError
from modelplatform.host_artifacts import CachedArtifacts, FetchReport, fill_cache
from modelplatform.registry import load_registry
from modelplatform.runtime_dir import PREFIX, RuntimeDir, sweep_stale
from support import Platform, publish
from support.models import Echo, LeavesTrace, Pricer


def test_create_app_fills_the_cache_once_then_reads_only_the_cache(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Pricer(), "1.1.0": Echo()})
    app = platform.app()
    doc = app.test_client().get("/readyz").get_json()
    assert doc["models_source"] == {"echo": {"1.0.0": "store", "1.1.0": "store"}}
    cache = ArtifactCache(platform.cache_dir)
    assert all(cache.has(sha) for sha in platform.config["echo"]["sha256"].values())

    # the store's objects vanish: a second app on this host does not notice
    for version in ("1.0.0", "1.1.0"):
        platform.store.client.delete_object(Bucket=platform.store.location.bucket,
                                            Key=platform.store.location.key("echo", version))
    again = platform.app().test_client()
    assert again.get("/readyz").get_json()["models_source"] == {"echo": {"1.0.0": "cache", "1.1.0": "cache"}}
    assert again.post("/models/echo/predict", json={"a": 1}).get_json()["output"] == {"echo": {"a": 1}}


def test_a_mismatch_is_refused_before_anything_unpickles_the_bytes(platform: Platform, tmp_path: Path) -> None:
    trace = tmp_path / "unpickled"
    platform.add("pricer", {"1.0.0": Pricer()})
    publish(platform.store, "pricer", "1.0.0", LeavesTrace(str(trace)))  # replaced after the config pinned it
    with pytest.raises(StartupError) as raised:
        platform.app()
    (problem,) = raised.value.problems
    assert problem.startswith("pricer 1.0.0: sha256 mismatch")
    assert not trace.exists()
    assert list((platform.cache_dir / "sha256").rglob("*")) == []  # nothing cached either
    # the trace model does leave a trace when it is loaded: the check above can fail
    sha = publish(platform.store, "pricer", "2.0.0", LeavesTrace(str(trace)))
    platform.config["pricer"] = {**platform.config["pricer"], "active_model_versions": ["2.0.0"], "default": "2.0.0",
                                 "sha256": {"2.0.0": sha}, "schemas": {"2.0.0": {"type": "object"}}}
    platform.app()
    assert trace.exists()


def test_a_damaged_cache_entry_is_never_loaded_and_is_refetched(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    platform.app()
    path = ArtifactCache(platform.cache_dir).path(platform.config["echo"]["sha256"]["1.0.0"])
    path.chmod(0o644)
    path.write_bytes(dumps_by_value(Pricer()))  # valid dill, wrong bytes
    client = platform.app().test_client()
    assert client.get("/readyz").get_json()["models_source"] == {"echo": {"1.0.0": "store"}}
    assert client.post("/models/echo/predict", json={"x": 1}).get_json()["output"] == {"echo": {"x": 1}}


def test_the_fetch_step_reports_every_version_it_cannot_provide(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    platform.add("pricer", {"1.0.0": Pricer()})
    publish(platform.store, "pricer", "1.0.0", b"changed")
    platform.config["echo"]["active_model_versions"].append("1.1.0")
    platform.config["echo"]["sha256"]["1.1.0"] = "c" * 64
    platform.config["echo"]["schemas"]["1.1.0"] = {"type": "object"}
    config = load_config(platform.write_config())
    report = fill_cache(config, ArtifactCache(platform.cache_dir), lambda: platform.store)
    assert [(f.model, f.version, f.origin) for f in report.fetched] == [("echo", "1.0.0", "store")]
    problems = sorted(report.problems)
    assert problems[0].startswith("echo 1.1.0: no model file at s3://")
    assert problems[1].startswith("pricer 1.0.0: sha256 mismatch: config expects ")
    assert sha256_hex(b"changed") in problems[1]
    assert FetchReport.from_json(report.to_json()) == report


def test_the_fetch_step_never_builds_a_store_client_when_the_cache_is_complete(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    config = load_config(platform.write_config())
    cache = ArtifactCache(platform.cache_dir)
    fill_cache(config, cache, lambda: platform.store)

    def no_store():
        raise AssertionError("the store was asked for")

    report = fill_cache(config, cache, no_store)
    assert [f.origin for f in report.fetched] == ["cache"] and report.problems == ()


def test_forked_workers_take_the_masters_registry_and_nobody_else_does(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    path = platform.write_config()
    registry = load_registry(load_config(path), CachedArtifacts(ArtifactCache(platform.cache_dir),
                                                                store=lambda: platform.store))
    handoff.put(handoff.Prepared(master_pid=os.getpid(), config_sha256=handoff.file_sha256(path), registry=registry))
    try:
        assert handoff.for_worker(path) is None  # the master itself, or a test, never takes it
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "worker"
            try:
                got = handoff.for_worker(path)
                other = handoff.for_worker(platform.workdir / "absent.json")
                os.write(write, json.dumps([got is not None and got.registry is registry, other is None]).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as answer:
            assert json.loads(answer.read()) == [True, True]
    finally:
        handoff.put(None)


@pytest.mark.slow
def test_runtime_directories_of_dead_masters_are_swept(tmp_path: Path) -> None:
    live = RuntimeDir.create(tmp_path)
    code = ("import sys; from modelplatform.runtime_dir import RuntimeDir; "
            "print(RuntimeDir.create(sys.argv[1]).path)")  # exits without remove(): a killed master
    dead = Path(subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                               check=True, timeout=60).stdout.strip())
    assert dead.is_dir() and dead.name.startswith(PREFIX)
    assert sweep_stale(tmp_path) == [dead]
    assert live.path.is_dir()
    live.remove()
    assert list(tmp_path.iterdir()) == []


MASTER = """
import json, os, ssl, sys
from modelplatform import reload
reload.on_starting()
prepared = reload.handoff.current()
# gevent warns about (and cannot patch) modules holding ssl.SSLContext itself, as urllib3 and botocore do
holders = sorted(name for name, module in list(sys.modules.items())
                 if any(value is ssl.SSLContext for value in list(vars(module).values())) and name != "ssl")
print(json.dumps({"holders": holders, "heavy": sorted(m for m in ("boto3", "botocore", "urllib3", "requests")
                                                      if m in sys.modules),
                  "versions": prepared.registry.count_versions()}))
reload.on_exit()
"""


@pytest.mark.slow
def test_the_master_loads_the_models_without_importing_the_s3_client(platform: Platform, tmp_path: Path) -> None:
    platform.add("echo", {"1.0.0": Echo(), "1.1.0": Pricer()})
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, **platform.env(), "TMPDIR": str(private_tmp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", MASTER], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc == {"holders": [], "heavy": [], "versions": 2}
    assert list(private_tmp.iterdir()) == []  # its runtime directory went with on_exit
