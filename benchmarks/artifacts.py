"""Benchmark: artifacts once per host — memory with and without preloading, startup from the cache, S3 GETs.

    .venv/bin/python benchmarks/artifacts.py                    # both parts, the sizes of issue 10
    .venv/bin/python benchmarks/artifacts.py --part memory --memory-versions 4 --model-mb 10   # a quick look

Starts everything itself: an embedded Postgres (pgserver), moto's S3 server on loopback behind a WSGI
middleware that counts every request it answers (so GETs are counted on the wire, independently of our code),
then gunicorn with the production settings (``modelplatform.gunicorn_conf``) on 127.0.0.1.

**memory**: ``--memory-versions`` versions of a model holding ``--model-mb`` MB of numpy weights (distinct bytes
per version), served by ``--workers`` workers, once with ``PRELOAD_MODELS=1`` (the master loads, workers share
the pages) and once with ``PRELOAD_MODELS=0`` (each worker loads from the cache), same cache, same run. After
every version has answered predicts through every worker, it reports the sum of PSS over master + workers and
each process's USS (``psutil.Process.memory_full_info()``; RSS counts shared pages once per process, so it
would hide exactly what is measured), against one copy: the PSS of a single process with the same imports
that loaded the same registry once. Target: ≤ 1.5× one copy.

**startup**: ``--startup-versions`` small versions, 2 workers: time from exec to the first ``/readyz`` 200 on
an empty cache (every version downloaded, checked and loaded), then again on the warm cache (target ≤ 5 s),
then a HUP with the same config (time to ``reload accepted``). S3 GETs of model files counted for each.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT / "tests"))  # the counting S3 endpoint is the tests' own (tests/support/s3.py)

import boto3  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402

from modelplatform import db  # noqa: E402
from modelplatform.artifacts import sha256_hex  # noqa: E402
from modelplatform.authoring import dumps_by_value  # noqa: E402
from pricing_model import BODY, SCHEMA, Pricer  # noqa: E402
from support.processes import GunicornWeb  # noqa: E402
from support.s3 import S3Gate  # noqa: E402

MB = 1024 * 1024
BUCKET = "bench-artifacts"


class Weights:
    """A tiny predictor carrying ``megabytes`` of weights (random, so every version's bytes differ)."""

    def __init__(self, megabytes: int, seed: int) -> None:
        import numpy

        self.weights = numpy.random.default_rng(seed).integers(0, 256, size=megabytes * MB, dtype=numpy.uint8)

    def predict(self, payload):
        return {"checksum": int(self.weights[::4096].sum()), "vehicle": payload.get("vehicle")}


def publish(s3, model: str, versions: dict[str, bytes], workdir: Path, name: str) -> Path:
    shas = {}
    for version, data in versions.items():
        s3.put_object(Bucket=BUCKET, Key=f"registry/{model}/{version}.dill", Body=data)
        shas[version] = sha256_hex(data)
    config = workdir / f"{name}.json"
    config.write_text(json.dumps({model: {
        "description": f"benchmark: {name}", "active_model_versions": list(versions), "default": list(versions)[-1],
        "sha256": shas, "schemas": {"X.X.X": SCHEMA},
    }}))
    return config


def start(env: dict[str, str], workdir: Path, name: str, workers: int) -> tuple[GunicornWeb, float]:
    """The Procfile web command (as the tests run it); seconds from exec to the first /readyz 200."""
    server = GunicornWeb(env, workers=workers, log_path=workdir / f"gunicorn-{name}.log")
    started = time.monotonic()
    server.start(timeout=1200, interval=0.05)
    return server, time.monotonic() - started


def phases(server: GunicornWeb) -> str:
    """When the master's steps ended, in seconds after its first log line (a breakdown of a start)."""
    lines = server.json_lines()
    first = datetime.fromisoformat(lines[0]["ts"])
    marks = {"artifacts ready": "fetch", "config checked": "check", "config already checked": "check skipped",
             "Listening at": "preloaded, listening"}
    found = []
    for line in lines:
        for prefix, name in marks.items():
            if line["message"].startswith(prefix) and name not in dict(found):
                found.append((name, (datetime.fromisoformat(line["ts"]) - first).total_seconds()))
    workers = [line for line in lines if serving(line)]
    if workers:
        found.append(("first worker serving", (datetime.fromisoformat(workers[0]["ts"]) - first).total_seconds()))
    return ", ".join(f"{name} {at:.2f}s" for name, at in found)


def serving(line: dict) -> bool:
    """A worker's startup line (the master's own "serving config…" line is not one)."""
    return line["logger"] == "modelplatform.app" and line["message"].startswith("serving ")


def memory(pid: int) -> tuple[float, float]:
    info = psutil.Process(pid).memory_full_info()
    return info.pss / MB, info.uss / MB


ONE_COPY = """
import json, sys, psutil
import modelplatform.app  # the imports a worker has
from modelplatform.artifact_cache import ArtifactCache
from modelplatform.config import load_config
from modelplatform.host_artifacts import CachedArtifacts
from modelplatform.registry import load_registry
before = psutil.Process().memory_full_info()
registry = load_registry(load_config(sys.argv[1]), CachedArtifacts(ArtifactCache(sys.argv[2])))
for model in registry:
    for version in model.versions.values():
        version.predictor.predict({"vehicle": "suv"})
after = psutil.Process().memory_full_info()
print(json.dumps({"pss": after.pss, "uss": after.uss, "pss_without_models": before.pss}))
"""


def bench_memory(args, env: dict[str, str], s3, gate: S3Gate, workdir: Path) -> dict:
    print(f"\n== memory: {args.workers} workers, {args.memory_versions} versions × {args.model_mb} MB of weights",
          flush=True)
    versions = {f"1.0.{n}": dumps_by_value(Weights(args.model_mb, n)) for n in range(args.memory_versions)}
    config = publish(s3, "weights", versions, workdir, "memory")
    del versions
    env = {**env, "MODELS_CONFIG": str(config)}
    out = {}
    for preload in ("1", "0"):
        gate.reset()
        server, seconds = start({**env, "PRELOAD_MODELS": preload}, workdir, f"memory-preload-{preload}", args.workers)
        try:
            server.wait_for_count(serving, args.workers, timeout=600)
            # every version answers, a new connection each time so that the requests spread over the workers
            for _ in range(args.workers * 3):
                for n in range(args.memory_versions):
                    r = requests.post(f"{server.url}/models/weights/versions/1.0.{n}/predict", data=BODY,
                                      headers={"Content-Type": "application/json", "Connection": "close"}, timeout=30)
                    assert r.status_code == 200, r.text
            master = psutil.Process(server.proc.pid)
            workers = master.children()
            rows = [("master", *memory(master.pid))] + [(f"worker {w.pid}", *memory(w.pid)) for w in workers]
            breakdown = phases(server)
        finally:
            server.stop()
        total = sum(pss for _, pss, _ in rows)
        label = "preload" if preload == "1" else "no preload"
        out[label] = {"pss_total_mb": total, "processes": rows, "ready_s": seconds, "gets": gate.object_gets(),
                      "phases": breakdown}
        print(f"{label:10s}: Σ PSS {total:8.0f} MB over {len(rows)} processes; USS "
              + ", ".join(f"{name} {uss:.0f}" for name, _, uss in rows) + f" MB; ready in {seconds:.1f} s; "
              f"S3 GETs {gate.object_gets()}  [{breakdown}]", flush=True)
    one = json.loads(subprocess.run([sys.executable, "-c", ONE_COPY, str(config), env["ARTIFACT_CACHE_DIR"]],
                                    capture_output=True, text=True, check=True, cwd=workdir).stdout)
    baseline = one["pss"] / MB
    print(f"one copy  : PSS {baseline:.0f} MB (one process, worker imports, registry loaded once; "
          f"{one['pss_without_models'] / MB:.0f} MB before loading)  "
          f"raw weights {args.memory_versions * args.model_mb} MB")
    for label in ("preload", "no preload"):
        ratio = out[label]["pss_total_mb"] / baseline
        out[label]["ratio"] = ratio
        verdict = "meets ≤ 1.5×" if ratio <= 1.5 else "above 1.5×"
        print(f"{label:10s}: {ratio:.2f}× one copy ({verdict})")
    out["one_copy_mb"] = baseline
    return out


def bench_startup(args, env: dict[str, str], s3, gate: S3Gate, workdir: Path) -> dict:
    print(f"\n== startup: {args.startup_versions} versions, 2 workers", flush=True)
    versions = {f"2.0.{n}": dumps_by_value(Pricer(f"{300 + n}.00")) for n in range(args.startup_versions)}
    config = publish(s3, "pricing", versions, workdir, "startup")
    env = {**env, "MODELS_CONFIG": str(config), "ARTIFACT_CACHE_DIR": str(workdir / "startup-cache")}
    out = {}
    for run in ("first start (empty cache)", "second start (warm cache)"):
        gate.reset()
        server, seconds = start(env, workdir, run.split()[0], 2)
        try:
            server.wait_for_count(serving, 2, timeout=600)
            gets = gate.object_gets()
            print(f"{run:28s}: /readyz 200 after {seconds:5.2f} s; S3 GETs {gets}  [{phases(server)}]", flush=True)
            out[run] = {"ready_s": seconds, "gets": gets, "phases": phases(server)}
            if run.startswith("second"):
                gate.reset()
                hup = time.monotonic()
                server.signal(signal.SIGHUP)
                server.wait_for_log(lambda line: line["message"].startswith("reload accepted"), timeout=600)
                accepted = time.monotonic()
                server.wait_for_count(serving, 4, timeout=600)
                print(f"{'HUP, same config':28s}: reload accepted after {accepted - hup:5.2f} s; "
                      f"S3 GETs {gate.object_gets()}", flush=True)
                out["hup"] = {"accepted_s": accepted - hup, "gets": gate.object_gets()}
        finally:
            server.stop()
    verdict = "meets ≤ 5 s" if out["second start (warm cache)"]["ready_s"] <= 5 else "above 5 s"
    print(f"second start: {verdict}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "memory", "startup"), default="all")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--memory-versions", type=int, default=20)
    parser.add_argument("--model-mb", type=int, default=50)
    parser.add_argument("--startup-versions", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    import logging

    import pgserver

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the S3 endpoint's line per request
    load = os.getloadavg()
    print(f"machine: nproc={os.cpu_count()}  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    results = {"load_average_before": load}
    with tempfile.TemporaryDirectory(prefix="modelplatform-bench-artifacts-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # pgserver runs postgres as an unprivileged user when we are root
        pg = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
        gate = None
        try:
            database_url = pg.get_uri()
            db.upgrade(database_url)
            gate = S3Gate().up()
            os.environ.update(gate.env())
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            env = {**{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, **gate.env(),
                   "DATABASE_URL": database_url, "MODEL_STORE_URL": f"s3://{BUCKET}/registry",
                   "ARTIFACT_CACHE_DIR": str(workdir / "cache"), "AUDIT_SPOOL_DIR": str(workdir / "spool"),
                   "LOG_LEVEL": "INFO"}
            if args.part in ("all", "memory"):
                results["memory"] = bench_memory(args, env, s3, gate, workdir)
            if args.part in ("all", "startup"):
                results["startup"] = bench_startup(args, env, s3, gate, workdir)
        finally:
            if gate is not None:
                gate.down()
            pg.cleanup()
    load = os.getloadavg()
    results["load_average_after"] = load
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
