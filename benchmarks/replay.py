"""Benchmark: ``modelplatform replay`` end to end on the demo's pricing model, at two table sizes.

    .venv/bin/python benchmarks/replay.py [--rows 100000,1000000] [--batch-sizes 1000]

Starts an embedded Postgres (pgserver, migrated with Alembic) and moto's S3 server on loopback,
publishes the demo's ``auto_pricing`` 2.1.0 and 2.1.1 (``examples/models``, pinned in
``config/models.json``), and fills ``inferences`` with recorded A/B traffic between them (COPY, as the
audit writer would have stored it: 98% ok, 1% unknown vehicles rejected, 1% invalid inputs). Then, for
each size, it replays the live traffic against candidate 2.1.1 with the real CLI in a subprocess
(read, validate, predict in the child, compare, COPY the results, summarise) and prints:

- rows/s end to end (wall clock of the whole command, start-up and summary queries included);
- two baselines measured in the same run: reading the same rows through the same server-side cursor
  and nothing else, and validate + predict + encode in one process with no database;
- CPU per 1000 rows of the CLI with its child (``wait4``) and of Postgres (psutil over its processes);
- peak RSS of the CLI and of the child (each measures itself; the CLI reports both in ``--json``),
  which must not grow from the small to the large size (the memory is flat);
- the load average before and after, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dill
import psutil
import psycopg2

from modelplatform import db, encoding
from modelplatform.artifacts import verify
from modelplatform.audit.rows import psycopg2_dsn
from modelplatform.config import load_config
from modelplatform.replay import source
from modelplatform.validation import CompiledSchema

ROOT = Path(__file__).resolve().parent.parent
MODEL = "auto_pricing"
ARMS = ("2.1.0", "2.1.1")
CANDIDATE = "2.1.1"
VEHICLES = ("hatchback", "sedan", "suv", "van")
SEED_CHUNK = 50_000


def load_models() -> tuple[dict[str, object], object]:
    """The demo's two A/B versions, verified against the committed config, and the 2.1.X schema."""
    config = load_config(ROOT / "config" / "models.json")
    spec = config.models[MODEL]
    models = {}
    for version in ARMS:
        data = (ROOT / "examples" / "models" / MODEL / f"{version}.dill").read_bytes()
        verify(MODEL, version, data, spec.sha256[version])
        models[version] = dill.loads(data)
    return models, spec.schema_for(CANDIDATE)


def traffic(rng: random.Random, n: int) -> list[dict]:
    quotes = []
    for _ in range(n):
        quote = {"customer_id": f"c-{rng.randrange(10**7)}", "vehicle": rng.choice(VEHICLES),
                 "driver_age": rng.randint(17, 90), "annual_km": rng.randrange(0, 60_000, 500)}
        roll = rng.random()
        if roll < 0.01:
            quote["vehicle"] = "tractor"  # rejected: unknown_vehicle
        elif roll < 0.02:
            del quote["annual_km"]  # invalid_input
        quotes.append(quote)
    return quotes


def seed(url: str, models: dict, schema: object, n: int, rng: random.Random) -> None:
    """Append ``n`` recorded inferences (A/B between 2.1.0 and 2.1.1), COPYed in chunks."""
    validator = CompiledSchema(schema)
    cache: dict[tuple, tuple[str, str | None, str | None]] = {}
    now = datetime.now(UTC)
    columns = ("id", "created_at", "model", "version", "routed_by", "experiment", "routing_key", "status",
               "input", "output", "error", "latency_ms", "request_id", "artifact_sha256")
    with psycopg2.connect(psycopg2_dsn(url)) as conn:
        for start in range(0, n, SEED_CHUNK):
            buffer = io.StringIO()
            for quote in traffic(rng, min(SEED_CHUNK, n - start)):
                version = ARMS[hash(quote["customer_id"]) & 1]
                key = (version, quote["vehicle"], quote["driver_age"], quote.get("annual_km", -1) // 500)
                if key not in cache:
                    if validator.violations(quote):
                        cache[key] = ("invalid_input", None, json.dumps({"errors": [{"path": "", "message": "x"}]}))
                    else:
                        try:
                            cache[key] = ("ok", encoding.encode_output(models[version].predict(quote)).decode(), None)
                        except Exception as exc:  # noqa: BLE001 - ModelRejected for the tractors
                            cache[key] = ("rejected", None, json.dumps({"code": getattr(exc, "code", "x"),
                                                                        "message": str(exc)}))
                status, output, error = cache[key]
                created = now - timedelta(seconds=rng.uniform(60, 6 * 86400))
                row = (str(uuid.uuid4()), created.isoformat(), MODEL, version, "ab_test", "pricing-2.1.1-rollout",
                       quote["customer_id"], status, json.dumps(quote), output, error, "0.4",
                       f"req-{uuid.uuid4().hex[:16]}", "0" * 64)
                buffer.write("\t".join("\\N" if v is None else v.replace("\\", "\\\\") for v in row) + "\n")
            buffer.seek(0)
            with conn.cursor() as cur:
                cur.copy_expert(f"copy inferences ({', '.join(columns)}) from stdin", buffer)
            conn.commit()
        with conn.cursor() as cur:
            cur.execute("analyze inferences")
    conn.close()


def read_only(url: str, fetch: int) -> tuple[int, float]:
    """Rows and seconds to read the replay's selection through the same server-side cursor, nothing else."""
    conn = psycopg2.connect(psycopg2_dsn(url))
    started = time.perf_counter()
    rows = sum(len(batch) for batch in source.read(conn, source.Selection(MODEL, since=_since()), fetch=fetch))
    elapsed = time.perf_counter() - started
    conn.close()
    return rows, elapsed


def in_process(models: dict, schema: object, n: int) -> float:
    """Rows/s of validate + predict + encode in one process (no database, no child, no comparison)."""
    validator = CompiledSchema(schema)
    quotes = [json.dumps(q).encode() for q in traffic(random.Random(7), n)]
    model = models[CANDIDATE]
    started = time.perf_counter()
    for raw in quotes:
        payload = encoding.loads(raw)
        if validator.violations(payload):
            continue
        try:
            encoding.encode_output(model.predict(payload))
        except Exception:  # noqa: BLE001
            pass
    return n / (time.perf_counter() - started)


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(days=7)


def postgres_cpu(pgdata: Path) -> float:
    """CPU seconds used so far by this benchmark's Postgres (other Postgres servers on a shared machine are
    not counted): its postmaster, its live children, and what its reaped children used (the CLI's backends
    end with its connections, before the run is measured)."""
    postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def run_replay(env: dict[str, str], batch_size: int, pgdata: Path) -> dict:
    """One CLI run; returns its report plus wall time and the CPU the CLI and its child used."""
    command = [str(Path(sys.executable).with_name("modelplatform")), "replay", MODEL, "--candidate", CANDIDATE,
               "--json", "--batch-size", str(batch_size)]  # the default window: 7d
    pg_before = postgres_cpu(pgdata)
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"replay failed ({proc.returncode}): {err.decode()[-2000:]}")
    report = json.loads(out)
    return {"report": report, "seconds": elapsed, "pg_cpu": postgres_cpu(pgdata) - pg_before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="table sizes to replay, ascending")
    parser.add_argument("--batch-sizes", default="1000", help="rows per batch sent to the child, comma-separated")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.rows.split(",")]
    batch_sizes = [int(s) for s in args.batch_sizes.split(",")]

    import pgserver
    from moto.server import ThreadedMotoServer

    models, schema = load_models()
    print(f"machine: nproc={os.cpu_count()}  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"in-process validate+predict+encode of {CANDIDATE}: {in_process(models, schema, 50_000):,.0f} rows/s "
          "(one core, no database, no child)", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="modelplatform-replay-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # pgserver runs postgres as an unprivileged user when we are root
        pg = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            url = pg.get_uri()
            db.upgrade(url)
            host, port = moto.get_host_and_port()
            aws = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                   "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
            s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
            s3.create_bucket(Bucket="bench-models")
            for version in ARMS:
                s3.put_object(Bucket="bench-models", Key=f"models/{MODEL}/{version}.dill",
                              Body=(ROOT / "examples" / "models" / MODEL / f"{version}.dill").read_bytes())
            env = {**os.environ, **aws, "DATABASE_URL": url, "MODEL_STORE_URL": "s3://bench-models/models",
                   "MODELS_CONFIG": str(ROOT / "config" / "models.json")}
            rng = random.Random(14)
            seeded = 0
            for size in sizes:
                started = time.perf_counter()
                seed(url, models, schema, size - seeded, rng)
                print(f"\nseeded {size - seeded:,} rows in {time.perf_counter() - started:.1f}s "
                      f"(table: {size:,})", flush=True)
                seeded = size
                rows, read_s = read_only(url, 1000)
                print(f"  read-only baseline (same server-side cursor): {rows:,} rows in {read_s:.1f}s = "
                      f"{rows / read_s:,.0f} rows/s", flush=True)
                for batch_size in batch_sizes:
                    load_before = os.getloadavg()[0]
                    cpu_before = os.times()
                    run = run_replay(env, batch_size, workdir / "pgdata")
                    cpu_after = os.times()
                    cli_cpu = (cpu_after.children_user - cpu_before.children_user
                               + cpu_after.children_system - cpu_before.children_system)
                    report = run["report"]
                    read = report["rows"]["read"]
                    perf = report["performance"]
                    result = {
                        "rows": read, "batch": batch_size, "seconds": run["seconds"], "rps": read / run["seconds"],
                        "vs_read": (read / run["seconds"]) / (rows / read_s),
                        "cli_cpu_ms_per_1k": cli_cpu / read * 1e6, "pg_cpu_ms_per_1k": run["pg_cpu"] / read * 1e6,
                        "cli_rss": perf["cli_max_rss_mib"], "child_rss": perf["child_max_rss_mib"],
                        "changed": report["rows"]["changed"], "load": (load_before, os.getloadavg()[0]),
                    }
                    results.append(result)
                    print(f"  replay batch={batch_size}: {read:,} rows in {run['seconds']:.1f}s = {result['rps']:,.0f} "
                          f"rows/s ({result['vs_read']:.2f}× read-only); CPU per 1000 rows: CLI+child "
                          f"{result['cli_cpu_ms_per_1k']:.0f} ms, Postgres {result['pg_cpu_ms_per_1k']:.0f} ms; "
                          f"peak RSS CLI {result['cli_rss']} MiB, child {result['child_rss']} MiB; "
                          f"changed {result['changed']:,}; load {result['load'][0]:.2f}→{result['load'][1]:.2f}",
                          flush=True)
        finally:
            moto.stop()
            pg.cleanup()
    print("\nsummary")
    print(f"  {'rows':>9}  {'batch':>5}  {'rows/s':>7}  {'×read':>5}  {'CLI+child ms/1k':>15}  {'PG ms/1k':>8}  "
          f"{'CLI RSS':>7}  {'child RSS':>9}  load")
    for r in results:
        print(f"  {r['rows']:>9,}  {r['batch']:>5}  {r['rps']:>7,.0f}  {r['vs_read']:>5.2f}  "
              f"{r['cli_cpu_ms_per_1k']:>15.0f}  "
              f"{r['pg_cpu_ms_per_1k']:>8.0f}  {r['cli_rss']:>7}  {r['child_rss']:>9}  "
              f"{r['load'][0]:.2f}→{r['load'][1]:.2f}")
    goal = all(r["rps"] >= 5000 for r in results)
    print(f"  goal ≥ 5,000 rows/s end to end: {'met' if goal else 'NOT met'} on this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
