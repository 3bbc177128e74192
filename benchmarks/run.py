"""Benchmark: predict with durable audit vs the same platform without audit, vs a bare Flask JSON endpoint,
under the gevent worker (the default) and the gthread one, same run.

    make bench                     # or: .venv/bin/python benchmarks/run.py [--duration 20] [--repeat 3]

Starts everything itself: an embedded Postgres (pgserver, migrated with Alembic), moto's S3 server on
loopback, one published pricing model, then for each target gunicorn with the production settings
(``modelplatform.gunicorn_conf``: 2 workers, gevent unless the target says gthread, 8 threads then) on
127.0.0.1. Each target is warmed up, then driven for a fixed time at a fixed concurrency (closed loop)
by wrk (``apt-get install wrk``; the Makefile installs it) or, when wrk is missing, by a Python
generator (said in the output; it is far weaker than wrk and shares the CPU with the server).

Then the open-loop point (``--open-loop-rate``, 300 req/s by default) for ``--open-loop-targets``:
requests sent at a fixed rate whatever the answers do, latency measured from each request's
intended send time (``openloop.py``, aiohttp), so queueing is not hidden.

Prints req/s, p50, p99 per run, the CPU the gunicorn workers and Postgres used per request, the ratio to
the bare app of the same worker class, the issue's targets (met or missed), and checks that the audit
table holds one row per 200 (wrk counts only answers it read before the clock stopped; requests still
in flight at that moment are answered and recorded by the server but not counted, so rows may exceed
the 200s by at most the connection count; the Python generator waits for every answer, so there it
must be equal).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import boto3  # noqa: E402
import psutil  # noqa: E402
import psycopg2  # noqa: E402

from modelplatform import db  # noqa: E402
from modelplatform.artifacts import sha256_hex  # noqa: E402
from modelplatform.audit.rows import psycopg2_dsn  # noqa: E402
from modelplatform.authoring import dumps_by_value  # noqa: E402
from pricing_model import BODY, SCHEMA, Pricer  # noqa: E402

PREDICT = "/models/auto_pricing/versions/1.0.0/predict"
# target: (app, path). A "gthread-" target runs under WEB_WORKER=gthread, every other one under gevent
TARGETS = {
    "bare": ("bare_app:create_app()", "/predict"),
    "platform": ("modelplatform.app:create_app()", PREDICT),
    # diagnostic: the same platform with an audit log that discards records (not a valid deployment)
    "no-audit": ("no_audit_app:create_app()", PREDICT),
    # diagnostic: the audit writer in a real OS thread (gevent's pool) instead of a greenlet
    "writer-thread": ("writer_thread_app:create_app()", PREDICT),
    # diagnostic: the writer sends a batch as one orjson-encoded jsonb parameter instead of per-column arrays
    "jsonb-rows": ("jsonb_rows_app:create_app()", PREDICT),
    "per-row": ("per_row_app:create_app()", PREDICT),
    # diagnostic: each request waits 2 ms in its audit call and nothing is stored (not a valid deployment)
    "wait-2ms": ("no_audit_app:create_waiting_app()", PREDICT),
    # diagnostic prototype: group commit led by request threads, no writer thread (no spool: not deployable)
    "leader-follower": ("leader_follower_app:create_app()", PREDICT),
    # the previous default, kept to compare: 2 gthread workers × 8 threads
    "gthread-bare": ("bare_app:create_app()", "/predict"),
    "gthread-no-audit": ("no_audit_app:create_app()", PREDICT),
    "gthread-platform": ("modelplatform.app:create_app()", PREDICT),
}
AUDITED = {"platform", "writer-thread", "jsonb-rows", "per-row", "leader-follower", "gthread-platform"}


def worker_of(target: str) -> str:
    return "gthread" if target.startswith("gthread-") else "gevent"


@dataclass
class Result:
    target: str
    generator: str
    requests: int
    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rows: int | None = None
    # CPU seconds used during the measured run, per request: by the gunicorn workers, and by Postgres
    # (a steadier figure than req/s on a shared machine: it does not depend on who else has the cores)
    worker_cpu_us: float | None = None
    db_cpu_us: float | None = None
    generator_cpu_us: float | None = None  # wrk's own CPU (it shares the machine too); None for the Python one

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, path: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see its log")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", path, BODY, {"Content-Type": "application/json"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server on port {port} not ready in {timeout} s")


def run_wrk(port: int, path: str, seconds: int, connections: int, threads: int, workdir: Path) -> Result:
    body_file = workdir / "body.json"
    body_file.write_bytes(BODY)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(BENCH_DIR / "wrk_post.lua"), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 60, env={**os.environ, "WRK_BODY_FILE": str(body_file)},
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout}\n{out.stderr}")
    data = json.loads(line[len("WRK_JSON "):])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = data["non_2xx"] + data["connect"] + data["read"] + data["write"] + data["timeout"]
    generator_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Result("", "wrk", data["requests"], data["requests"] - data["non_2xx"], failed,
                  data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000,
                  generator_cpu_us=generator_cpu / max(data["requests"], 1) * 1e6)


def run_python(port: int, path: str, seconds: int, connections: int) -> Result:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[tuple[float, int]] = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                conn.request("POST", path, BODY, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status = 0
            mine.append((time.perf_counter() - started, status))
        with lock:
            latencies.extend(t for t, _ in mine)
            statuses.extend(s for _, s in mine)

    started = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.monotonic() - started
    quantiles = statistics.quantiles(latencies, n=100)
    ok = statuses.count(200)
    return Result("", "python", len(statuses), ok, len(statuses) - ok, elapsed,
                  quantiles[49] * 1000, quantiles[98] * 1000)


@dataclass
class OpenLoopResult:
    target: str
    rate: float
    sent: int
    ok: int
    failed: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    max_send_lag_ms: float
    worker_cpu_us: float
    db_cpu_us: float


def run_openloop(port: int, path: str, args: argparse.Namespace, workdir: Path) -> dict:
    body_file = workdir / "body.json"
    body_file.write_bytes(BODY)
    out = subprocess.run(
        [sys.executable, str(BENCH_DIR / "openloop.py"), f"http://127.0.0.1:{port}{path}", str(body_file),
         "--rate", str(args.open_loop_rate), "--seconds", str(args.open_loop_seconds), "--warmup", "2"],
        capture_output=True, text=True, timeout=args.open_loop_seconds + 90)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("OPENLOOP_JSON ")), None)
    if line is None:
        raise SystemExit(f"open-loop generator failed: {out.stdout}\n{out.stderr}")
    return json.loads(line[len("OPENLOOP_JSON "):])


def openloop_line(r: OpenLoopResult) -> str:
    return (f"{r.target:15s} [open loop {r.rate:.0f}/s] sent {r.sent}  ok {r.ok}  failed {r.failed}  "
            f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  p99.9 {r.p999_ms:6.2f} ms  max {r.max_ms:7.2f} ms  "
            f"sender lag ≤ {r.max_send_lag_ms:.1f} ms  cpu/req worker {r.worker_cpu_us:5.0f} db {r.db_cpu_us:4.0f} µs")


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each live process, by pid."""
    used = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        used[proc.pid] = times.user + times.system
    return used


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    # a process started during the run (a Postgres backend for a new connection) started from zero; one
    # that ended during it is not counted (its last seconds are lost, a small under-count)
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def postgres_processes(postmaster: int) -> list[psutil.Process]:
    """Our Postgres: the postmaster and its backends (not other Postgres servers sharing the machine)."""
    try:
        root = psutil.Process(postmaster)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def count_rows(url: str, truncate: bool = False) -> int:
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        if truncate:
            cur.execute("truncate inferences")
        cur.execute("select count(*), count(distinct id) from inferences")
        rows, distinct = cur.fetchone()
    conn.close()
    assert rows == distinct
    return rows


def publish(workdir: Path) -> dict[str, str]:
    bucket = "bench-models"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    data = dumps_by_value(Pricer())
    s3.put_object(Bucket=bucket, Key="registry/auto_pricing/1.0.0.dill", Body=data)
    config = workdir / "models.json"
    config.write_text(json.dumps({"auto_pricing": {
        "description": "benchmark pricing model", "active_model_versions": ["1.0.0"], "default": "1.0.0",
        "sha256": {"1.0.0": sha256_hex(data)}, "schemas": {"1.0.X": SCHEMA},
    }}))
    return {"MODEL_STORE_URL": f"s3://{bucket}/registry", "MODELS_CONFIG": str(config)}


def bench_target(name: str, env: dict[str, str], args: argparse.Namespace, workdir: Path,
                 database_url: str) -> tuple[list[Result], OpenLoopResult | None]:
    app, path = TARGETS[name]
    port = free_port()
    log = open(workdir / f"gunicorn-{name}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:modelplatform.gunicorn_conf",
         "--pythonpath", str(BENCH_DIR), app],
        env={**env, "HOST": "127.0.0.1", "PORT": str(port), "AUDIT_SPOOL_DIR": str(workdir / f"spool-{name}"),
             "WEB_WORKER": worker_of(name)},
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
    )
    results = []
    try:
        wait_ready(port, path, process)
        use_wrk = shutil.which("wrk") is not None and not args.python_generator
        for _ in range(args.repeat):
            if use_wrk:
                run_wrk(port, path, args.warmup, args.connections, args.wrk_threads, workdir)
            else:
                run_python(port, path, args.warmup, args.connections)
            audited = name in AUDITED
            if audited:
                time.sleep(1.0)  # the warm-up's requests in flight at its cut-off land before the truncate
                count_rows(database_url, truncate=True)
            workers = psutil.Process(process.pid).children()
            databases = postgres_processes(args.postmaster_pid)
            worker_cpu, db_cpu = cpu_seconds(workers), cpu_seconds(databases)
            result = (run_wrk(port, path, args.duration, args.connections, args.wrk_threads, workdir) if use_wrk
                      else run_python(port, path, args.duration, args.connections))
            result.target = name
            result.worker_cpu_us = cpu_used(worker_cpu, cpu_seconds(workers)) / result.requests * 1e6
            db_cpu_s = cpu_used(db_cpu, cpu_seconds(postgres_processes(args.postmaster_pid)))
            result.db_cpu_us = db_cpu_s / result.requests * 1e6
            if audited:
                time.sleep(1.0)  # let requests in flight at the cut-off finish
                result.rows = count_rows(database_url)
            results.append(result)
            print(report_line(result, args.connections), flush=True)
        openloop = None
        if args.open_loop_rate > 0 and name in args.open_loop_targets.split(","):
            workers = psutil.Process(process.pid).children()
            worker_cpu, db_cpu = cpu_seconds(workers), cpu_seconds(postgres_processes(args.postmaster_pid))
            data = run_openloop(port, path, args, workdir)
            sent_total = data["sent"] + int(2 * args.open_loop_rate)  # the warm-up's requests used CPU too
            openloop = OpenLoopResult(
                name, data["rate"], data["sent"], data["ok"], data["sent"] - data["ok"], data["p50_ms"],
                data["p99_ms"], data["p999_ms"], data["max_ms"], data["max_send_lag_ms"],
                cpu_used(worker_cpu, cpu_seconds(workers)) / sent_total * 1e6,
                cpu_used(db_cpu, cpu_seconds(postgres_processes(args.postmaster_pid))) / sent_total * 1e6)
            print(openloop_line(openloop), flush=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    return results, openloop


def rows_check(result: Result, connections: int) -> str:
    if result.rows is None:
        return ""
    extra = result.rows - result.ok
    if result.generator == "python":
        verdict = "OK" if extra == 0 else "MISMATCH"
    else:
        verdict = "OK" if 0 <= extra <= connections else "MISMATCH"
    return f"rows={result.rows} 200s={result.ok} (+{extra} in flight at cut-off) {verdict}"


def report_line(r: Result, connections: int) -> str:
    return (f"{r.target:15s} [{r.generator}] {r.rps:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
            f"cpu/req worker {r.worker_cpu_us:5.0f} db {r.db_cpu_us:4.0f} wrk {r.generator_cpu_us or 0:3.0f} µs  "
            f"failed {r.failed}  {rows_check(r, connections)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds of measured load per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="measured runs per target")
    parser.add_argument("--targets", default="bare,no-audit,platform,gthread-platform",
                        help=f"comma-separated, from {', '.join(TARGETS)}")
    parser.add_argument("--python-generator", action="store_true", help="use the Python load generator, not wrk")
    parser.add_argument("--open-loop-rate", type=float, default=300.0,
                        help="requests/s of the open-loop point; 0: none")
    parser.add_argument("--open-loop-seconds", type=int, default=20)
    parser.add_argument("--open-loop-targets", default="platform", help="comma-separated targets to drive open-loop")
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.open_loop_rate > 0:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            parser.error("the open-loop point needs aiohttp: pip install -e '.[bench]' (or --open-loop-rate 0)")

    import pgserver
    from moto.server import ThreadedMotoServer

    with tempfile.TemporaryDirectory(prefix="modelplatform-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # pgserver runs postgres as an unprivileged user when we are root
        pg = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
        database_url = pg.get_uri()
        db.upgrade(database_url)
        args.postmaster_pid = int((Path(pg.pgdata) / "postmaster.pid").read_text().split()[0])
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        aws = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(aws)
        env = {**os.environ, **aws, **publish(workdir), "DATABASE_URL": database_url}
        generator_name = "wrk" if shutil.which("wrk") and not args.python_generator else "python"
        print(f"machine: nproc={os.cpu_count()}  generator={generator_name}"
              f"  c={args.connections}  {args.duration}s per run", flush=True)
        results: dict[str, list[Result]] = {}
        openloops: dict[str, list[OpenLoopResult]] = {}
        try:
            # a target named several times runs several times, interleaved with the others in the order
            # given (on a shared machine, runs of A and B minutes apart are not comparable; ABAB is fairer)
            for target in targets:
                runs, openloop = bench_target(target, env, args, workdir, database_url)
                results.setdefault(target, []).extend(runs)
                if openloop is not None:
                    openloops.setdefault(target, []).append(openloop)
        finally:
            moto.stop()
            pg.cleanup()

    print("\nsummary (median of runs)")
    medians: dict[str, tuple[float, float]] = {}  # target: (req/s, p99 ms)
    failed = False
    for target, runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        p50 = statistics.median(r.p50_ms for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        medians[target] = (rps, p99)
        # compared with the bare app under the same worker class
        baseline = "gthread-bare" if worker_of(target) == "gthread" else "bare"
        ratio = f"{rps / medians[baseline][0]:.2f}× {baseline}" if baseline in medians else ""
        worker_cpu = statistics.median(r.worker_cpu_us for r in runs)
        db_cpu = statistics.median(r.db_cpu_us for r in runs)
        checks = [rows_check(r, args.connections) for r in runs if r.rows is not None]
        failed |= any("MISMATCH" in c for c in checks) or any(r.failed for r in runs)
        print(f"  {target:16s} {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"cpu/req worker {worker_cpu:5.0f} db {db_cpu:4.0f} µs  {ratio}")
    for runs in openloops.values():
        for openloop in runs:
            print("  " + openloop_line(openloop))
            failed |= openloop.failed > 0

    print("\nissue 10 targets (this run)")
    for line in target_lines(medians, openloops, args.connections):
        print("  " + line)
    return 1 if failed else 0


def target_lines(medians: dict[str, tuple[float, float]], openloops: dict[str, list[OpenLoopResult]],
                 connections: int) -> list[str]:
    """Each target of the issue that this run measured: the figure, the bound, met or missed."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    if "platform" in medians and "no-audit" in medians:
        ratio = medians["platform"][0] / medians["no-audit"][0]
        lines.append(f"durable platform / no-audit (gevent): {ratio:.2f}× (≥ 0.6×) {verdict(ratio >= 0.6)}")
    if "platform" in medians:
        p99 = medians["platform"][1]
        lines.append(f"durable platform p99 at {connections} connections: {p99:.1f} ms (≤ 25 ms) {verdict(p99 <= 25)}")
    if "platform" in medians and "gthread-platform" in medians:
        ratio = medians["platform"][0] / medians["gthread-platform"][0]
        lines.append(f"durable platform / gthread platform: {ratio:.2f}× (≥ 1.5×) {verdict(ratio >= 1.5)}")
    if "platform" in openloops:
        runs = openloops["platform"]
        p99 = statistics.median(r.p99_ms for r in runs)
        lines.append(f"durable platform open loop {runs[0].rate:.0f} req/s: p99 {p99:.1f} ms, median of "
                     f"{len(runs)} run(s) (≤ 20 ms) {verdict(p99 <= 20 and not any(r.failed for r in runs))}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
