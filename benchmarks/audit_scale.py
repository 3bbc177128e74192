"""Benchmark: the audit table at 1M, 5M, 20M rows, partitioned (UUIDv7) vs the old unpartitioned layout (UUIDv4).

    make bench-scale                                   # = .venv/bin/python benchmarks/audit_scale.py --sizes 1m
    .venv/bin/python benchmarks/audit_scale.py --sizes 1m,5m,20m [--insert-seconds 15] [--keep]

Starts its own embedded Postgres (pgserver, default settings) in ``--pgdata`` unless ``--admin-url`` names a
server, and builds two databases in the same run: ``partitioned`` (Alembic head: daily partitions, key
``(id, created_at)``, UUIDv7 ids) and ``unpartitioned`` (Alembic 0003: the old table, UUIDv4 ids). Both
receive the same synthetic rows by ``COPY``: 30 days ending now, realistic pricing payloads, three
models, an A/B test with a shadow version, pinned and default traffic, ~4 % non-ok, ~5 % of A/B quotes
sold (an analyst's ``policy_sales`` table). Sizes are reached by appending, smallest first.

At each size, for each layout it prints:
- the group-commit writer's insert throughput (``GroupCommitAuditLog``, ``--threads`` threads recording for
  ``--insert-seconds``; on the partitioned layout also unprepared, the PgBouncer transaction-mode INSERT);
- the latency (median of 3, warm) of every analyst query in README.md and docs/ab-testing.md over 1 day and
  7 days (and as written, all time, for the A/B ones), and of ``ab-report`` (``build_report``) over 1 and 7 days;
- table and index bytes per row.
Before the sizes: the cost per id of UUIDv7 vs the old ``uuid4()`` + ``datetime.now()``, and the
partition-granularity comparison (daily/weekly/monthly over 400 days: planning and insert routing).
Finally a line extrapolating to a billion rows from the measured bytes per row and slopes.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import threading
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]

from modelplatform import db  # noqa: E402
from modelplatform.ab_report import build_report  # noqa: E402
from modelplatform.audit import InferenceRecord, partitions  # noqa: E402
from modelplatform.audit.group_commit import GroupCommitAuditLog  # noqa: E402
from modelplatform.audit.ids import new_inference_id, uuid7  # noqa: E402
from modelplatform.metrics import Metrics  # noqa: E402
from modelplatform.audit.rows import COLUMNS, psycopg2_dsn  # noqa: E402
from modelplatform.config import load_config  # noqa: E402
from modelplatform.routing import assign  # noqa: E402
from modelplatform.settings import normalize_database_url  # noqa: E402

LAYOUTS = {"partitioned": "head", "unpartitioned": "0003"}
EXPERIMENT = "pricing-2.1.1-rollout"
WEIGHTS = {"2.1.0": 50, "2.1.1": 50}
DAYS = 30
SHA = {v: uuid.uuid5(uuid.NAMESPACE_URL, v).hex * 2 for v in ("2.0.3", "2.1.0", "2.1.1", "2.2.0", "1.4.0", "3.0.1")}

# every analyst query of README.md and docs/ab-testing.md; `{w}` is the time window added for the 1d/7d runs
# (empty for "as written"), `{wi}`/`{ws}` the same on an aliased table
QUERIES: dict[str, str] = {
    "README premiums by version": """
        select version, count(*), avg((output->>'premium')::numeric) as avg_premium
        from inferences
        where model = 'auto_pricing' and status = 'ok' {w}
        group by version order by version""",
    "README what failed": """
        select created_at, version, status, error from inferences
        where model = 'auto_pricing' and status <> 'ok' {w} order by created_at desc limit 20""",
    "ab 1 split (ab_arm_stats)": """
        select version, calls, ok, error, latency_p50_ms, latency_p95_ms, first_seen, last_seen
        from {stats}
        where experiment = 'pricing-2.1.1-rollout' and routed_by = 'ab_test'""",
    "ab 2 per-call outcomes": """
        select i.version as arm, count(*) as quotes, count(s.request_id) as sold,
               avg((s.request_id is not null)::int) as conversion,
               avg((i.output ->> 'premium')::numeric) as mean_quoted_premium
        from inferences i
        left join (select distinct request_id from policy_sales) s using (request_id)
        where i.experiment = 'pricing-2.1.1-rollout' and i.routed_by = 'ab_test' and i.status = 'ok' {wi}
        group by i.version order by i.version""",
    "ab 3 per-unit outcomes": """
        with exposure as (
            select routing_key, min(version) as arm, min(created_at) as first_seen
            from inferences
            where experiment = 'pricing-2.1.1-rollout' and routed_by = 'ab_test' and routing_key is not null {w}
            group by routing_key having count(distinct version) = 1),
        outcome as (
            select e.routing_key, e.arm, count(s.customer_id) as sales, coalesce(sum(s.premium), 0) as revenue
            from exposure e
            left join policy_sales s on s.customer_id = e.routing_key and s.sold_at >= e.first_seen
            group by e.routing_key, e.arm)
        select arm, count(*) as customers, avg((sales > 0)::int) as conversion,
               avg(revenue) as revenue_per_customer, stddev_samp(revenue) as revenue_sd
        from outcome group by arm order by arm""",
    "ab 4 z-test": """
        with exposure as (
            select routing_key, min(version) as arm, min(created_at) as first_seen
            from inferences
            where experiment = 'pricing-2.1.1-rollout' and routed_by = 'ab_test' and routing_key is not null {w}
            group by routing_key having count(distinct version) = 1),
        converted as (
            select e.arm, exists (select 1 from policy_sales s
                                  where s.customer_id = e.routing_key and s.sold_at >= e.first_seen) as sold
            from exposure e),
        arms as (select arm, count(*)::float as n, sum(sold::int)::float as x from converted group by arm)
        select a.arm, b.arm, a.x / a.n, b.x / b.n,
               (a.x / a.n - b.x / b.n) / nullif(sqrt(((a.x + b.x) / (a.n + b.n)) * (1 - (a.x + b.x) / (a.n + b.n))
                                                     * (1 / a.n + 1 / b.n)), 0) as z
        from arms a join arms b on a.arm < b.arm""",
    "ab 5 shadow vs live": """
        select s.version as shadow, count(*) as calls, avg((s.status = 'ok')::int) as ok_rate,
               avg(abs((s.output ->> 'premium')::numeric - (p.output ->> 'premium')::numeric)) as mean_abs_premium_diff,
               percentile_cont(0.95) within group (order by s.latency_ms) as shadow_p95_ms
        from inferences s
        join inferences p
          on p.request_id = s.request_id and p.model = s.model and p.routed_by <> 'shadow'
         and p.created_at between s.created_at - interval '1 minute' and s.created_at {wp}
        where s.routed_by = 'shadow' and s.model = 'auto_pricing' {ws}
        group by s.version""",
}
README_QUERIES = ("README premiums by version", "README what failed")
INSERT_MARK = "bench-insert"  # api_key_id of the insert measurement's rows, deleted after it


# -- synthetic rows -------------------------------------------------------------------------------------

class Generator:
    """Deterministic synthetic traffic. Each call of :meth:`lines` yields COPY text lines for both layouts."""

    VEHICLES = ["hatchback", "suv", "van", "estate", "coupe", "pickup"]
    FACTOR = {"hatchback": 1.0, "suv": 1.35, "van": 1.2, "estate": 1.05, "coupe": 1.4, "pickup": 1.25}

    def __init__(self, seed: int = 7, customers: int = 200_000) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.customers = [f"c-{i:07d}" for i in range(customers)]
        self.arm = {c: assign(EXPERIMENT, WEIGHTS, c) for c in self.customers}
        self.inputs = {}
        for c in self.customers[:50_000]:
            vehicle = rng.choice(self.VEHICLES)
            self.inputs[c] = (vehicle, json.dumps({
                "customer_id": c, "vehicle": vehicle, "driver_age": rng.randrange(18, 85),
                "annual_km": rng.randrange(2, 60) * 1000, "postcode": f"{rng.randrange(10000, 99999)}",
                "vehicle_value": rng.randrange(4000, 90000), "years_licensed": rng.randrange(0, 50),
                "claims_last_5y": rng.choice([0, 0, 0, 1, 2]), "garage": rng.choice([True, False]),
                "payment": rng.choice(["annual", "monthly"]), "channel": rng.choice(["web", "broker", "app"]),
                "coverage": {"type": rng.choice(["third_party", "comprehensive"]),
                             "excess": rng.choice([100, 250, 500])},
                "start_date": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            }, separators=(", ", ": ")))

    def _output(self, vehicle: str, version: str) -> str:
        premium = round(300 * self.FACTOR[vehicle] * self.rng.uniform(0.8, 1.6), 2)
        return json.dumps({"premium": premium, "currency": "EUR", "tariff": "2026-H2", "valid_until": "2027-06-30",
                           "factors": {"vehicle": self.FACTOR[vehicle], "driver_age": 1.0, "mileage": 1.0},
                           "model_version": version}, separators=(", ", ": "))

    def lines(self, count: int, end: datetime) -> Iterator[tuple[str, str]]:
        """``count`` primary calls (plus their shadow copies) spread over the 30 days before ``end``, in time order:
        (partitioned line with a UUIDv7 id, unpartitioned line with a UUIDv4 id)."""
        rng = self.rng
        start = end - timedelta(days=DAYS)
        span_us = DAYS * 86400 * 1_000_000
        offsets = sorted(rng.randrange(span_us) for _ in range(count))
        for offset in offsets:
            created = start + timedelta(microseconds=offset)
            index = rng.randrange(len(self.customers))
            customer = self.customers[index]
            vehicle, input_json = self.inputs[self.customers[index % 50_000]]
            pick = rng.random()
            shadow = False
            if pick < 0.55:
                model, version, routed_by, experiment, key = "auto_pricing", self.arm[customer], "ab_test", EXPERIMENT, customer
                shadow = rng.random() < 0.3
            elif pick < 0.70:
                model, version, routed_by, experiment, key = "auto_pricing", "2.0.3", "pinned", None, None
            elif pick < 0.90:
                model, version, routed_by, experiment, key = "home_pricing", "1.4.0", "default", None, None
            else:
                model, version, routed_by, experiment, key = "travel_pricing", "3.0.1", "default", None, None
            request_id = "%032x" % rng.getrandbits(128)
            yield self._line(created, model, version, routed_by, experiment, key, request_id, vehicle, input_json)
            if shadow:
                yield self._line(created + timedelta(milliseconds=2), model, "2.2.0", "shadow", experiment, key,
                                 request_id, vehicle, input_json)

    def _line(self, created: datetime, model: str, version: str, routed_by: str, experiment: str | None,
              key: str | None, request_id: str, vehicle: str, input_json: str) -> tuple[str, str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.96:
            status, output, error = "ok", self._output(vehicle, version), None
        elif roll < 0.98:
            status, output, error = "invalid_input", None, \
                '{"errors": [{"path": "/driver_age", "message": "15 is less than the minimum of 17"}]}'
        elif roll < 0.995:
            status, output, error = "rejected", None, '{"code": "unknown_vehicle", "message": "vehicle not priced"}'
        else:
            status, output, error = "error", None, '{"type": "ValueError", "message": "math domain error"}'
        latency = rng.lognormvariate(0.7, 0.5)
        unix_ms = (created - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
        rest = "\t".join([created.isoformat(), model, version, routed_by, experiment or r"\N", key or r"\N", status,
                          input_json, output or r"\N", error or r"\N", f"{latency:.3f}", request_id, SHA[version],
                          "key-pricing"])
        return f"{uuid7(unix_ms)}\t{rest}\n", f"{uuid.uuid4()}\t{rest}\n"


class LinesFile(io.RawIOBase):
    """A file-like view of an iterator of text lines, for ``COPY … FROM STDIN`` without holding the data."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.lines).encode()
            except StopIteration:
                break
        data, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size], self.buffer[size:])
        return data


def load(urls: dict[str, str], generator: Generator, count: int, end: datetime) -> float:
    """COPY ``count`` primary calls into both layouts at once (one pass of the generator). Returns seconds."""
    started = time.monotonic()
    conns = {name: psycopg2.connect(psycopg2_dsn(url)) for name, url in urls.items()}
    try:
        buffers: dict[str, list[str]] = {name: [] for name in urls}
        columns = ", ".join(COLUMNS)

        def flush() -> None:
            for name, conn in conns.items():
                with conn.cursor() as cursor:
                    cursor.copy_expert(f"copy inferences ({columns}) from stdin", LinesFile(iter(buffers[name])))
                conn.commit()
                buffers[name].clear()

        for partitioned, unpartitioned in generator.lines(count, end):
            buffers["partitioned"].append(partitioned)
            buffers["unpartitioned"].append(unpartitioned)
            if len(buffers["partitioned"]) >= 200_000:
                flush()
        flush()
    finally:
        for conn in conns.values():
            conn.close()
    return time.monotonic() - started


def prepare_analyst_tables(url: str) -> None:
    """The analyst's own outcomes table (docs/ab-testing.md): ~5 % of ok A/B quotes sold, an hour later."""
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cursor:
        cursor.execute("drop table if exists policy_sales")
        cursor.execute("""
            create table policy_sales as
            select request_id, routing_key as customer_id, created_at + interval '1 hour' as sold_at,
                   (output->>'premium')::numeric as premium
            from inferences
            where experiment is not null and routed_by = 'ab_test' and status = 'ok'
              and ('x' || substr(request_id, 1, 8))::bit(32)::int % 20 = 0""")
        cursor.execute("create index on policy_sales (request_id)")
        cursor.execute("create index on policy_sales (customer_id, sold_at)")
    conn = psycopg2.connect(psycopg2_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("vacuum analyze")
    finally:
        conn.close()


@contextmanager
def main_statement() -> Iterator[None]:
    """The writer's statement as it was before partitioning (``ON CONFLICT (id)``), for the old table, whose
    only unique key is ``id``: the baseline then runs exactly what main runs."""
    from modelplatform.audit import rows as audit_rows

    current = audit_rows.PREPARE_SQL
    audit_rows.PREPARE_SQL = current.replace("ON CONFLICT (id, created_at)", "ON CONFLICT (id)")
    try:
        yield
    finally:
        audit_rows.PREPARE_SQL = current


# -- measurements -----------------------------------------------------------------------------------------

def id_cost() -> dict[str, float]:
    """µs per id: UUIDv7 + created_at from one clock reading (now) vs uuid4() + datetime.now() (before)."""
    number = 200_000
    new = min(timeit.repeat(new_inference_id, number=number, repeat=5)) / number * 1e6
    old = min(timeit.repeat(lambda: (str(uuid.uuid4()), datetime.now(timezone.utc)), number=number, repeat=5)) / number * 1e6
    return {"uuid7_plus_created_at_us": new, "uuid4_plus_now_us": old}


def insert_throughput(url: str, layout: str, seconds: float, threads: int, prepare: bool, generator: Generator) -> dict:
    """Records/s through GroupCommitAuditLog with ``threads`` concurrent recorders (each like a request thread)."""
    metrics = Metrics()  # the writer reports its batches there
    audit = GroupCommitAuditLog(url, spool_dir=None, prepare=prepare, wait_timeout=30, meter=metrics)
    payloads = list(generator.inputs.values())[:1000]
    output = generator._output("suv", "2.1.1")
    stop = time.monotonic() + seconds
    counts = [0] * threads
    failures: list[BaseException] = []

    def recorder(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < stop:
            if layout == "partitioned":
                inference_id, created_at = new_inference_id()
            else:
                inference_id, created_at = str(uuid.uuid4()), datetime.now(timezone.utc)
            try:
                audit.record(InferenceRecord(
                    id=inference_id, created_at=created_at, model="auto_pricing", version="2.1.1",
                    routed_by="ab_test", experiment=EXPERIMENT, routing_key="c-0000001", status="ok",
                    input_json=rng.choice(payloads)[1], output_json=output, error_json=None,
                    latency_ms=1.2, request_id="%032x" % rng.getrandbits(128), artifact_sha256=SHA["2.1.1"],
                    api_key_id=INSERT_MARK))
            except BaseException as exc:  # counted, shown: a failed record is a failed measurement
                failures.append(exc)
                return
            counts[index] += 1

    workers = [threading.Thread(target=recorder, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    cpu = time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    client_cpu = time.process_time() - cpu
    audit.close()
    total = sum(counts)
    return {"records": total, "per_second": total / elapsed, "batches": int(metrics.registry.get_sample_value("modelplatform_audit_batches_total") or 0),
            "client_cpu_us_per_record": client_cpu / max(total, 1) * 1e6, "failures": len(failures)}


def remove_inserted(url: str) -> None:
    conn = psycopg2.connect(psycopg2_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("delete from inferences where api_key_id = %s", (INSERT_MARK,))
            cursor.execute("vacuum analyze inferences")
    finally:
        conn.close()


def timed(engine: sa.Engine, sql: str, params: dict, repeat: int = 3) -> dict:
    times = []
    with engine.connect() as conn:
        conn.exec_driver_sql("set statement_timeout = '180s'")
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(sa.text(sql), params).all()
            times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "first_s": times[0]}


def query_latencies(engine: sa.Engine, now: datetime, config_path: Path) -> dict[str, dict]:
    results: dict[str, dict] = {}
    windows = {"1d": now - timedelta(days=1), "7d": now - timedelta(days=7)}
    for name, template in QUERIES.items():
        variants = dict(windows)
        if not name.startswith("README"):
            variants["all"] = None
        for window, since in variants.items():
            if "{stats}" in template:
                sql = template.format(stats="ab_arm_stats" if since is None else "ab_arm_stats_since(:since)")
            else:
                cond = "" if since is None else "and {t}created_at >= :since"
                # a join's other side gets the bound too (`p` may start up to a minute before `s`), so both prune
                sql = template.format(w=cond.format(t=""), wi=cond.format(t="i."), ws=cond.format(t="s."),
                                      wp="" if since is None else "and p.created_at >= :since - interval '1 minute'")
            results[f"{name} [{window}]"] = timed(engine, sql, {} if since is None else {"since": since})
    config = load_config(config_path)
    for window, since in windows.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            build_report(engine, config, EXPERIMENT, since)
            times.append(time.perf_counter() - started)
        results[f"ab-report --since {window}"] = {"median_s": statistics.median(times), "first_s": times[0]}
    return results


def sizes(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        row = conn.exec_driver_sql("""
            with parts as (
                select inhrelid as oid from pg_inherits where inhparent = 'inferences'::regclass
                union all select 'inferences'::regclass::oid
                where not exists (select 1 from pg_inherits where inhparent = 'inferences'::regclass))
            select sum(pg_table_size(oid)), sum(pg_indexes_size(oid)), count(*) from parts""").one()
        pk = conn.exec_driver_sql("""
            select coalesce(sum(pg_relation_size(i.indexrelid)), 0) from pg_index i
            where i.indisprimary and (i.indrelid = 'inferences'::regclass
               or i.indrelid in (select inhrelid from pg_inherits where inhparent = 'inferences'::regclass))""").scalar()
        rows = conn.exec_driver_sql("select count(*) from inferences").scalar()
    return {"rows": int(rows), "table_bytes": int(row[0]), "index_bytes": int(row[1]), "pk_bytes": int(pk),
            "relations": int(row[2])}


def granularity(admin_url: str, make_db: Callable[[str], str]) -> dict[str, dict]:
    """Planning time and insert routing with 400 days of daily / weekly / monthly partitions (empty)."""
    from modelplatform.audit import rows as audit_rows

    results = {}
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=8)
    for name, step in (("daily", timedelta(days=1)), ("weekly", timedelta(days=7)), ("monthly", timedelta(days=31))):
        url = make_db(f"gran_{name}")
        engine = sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql("set timezone = 'UTC'")
            for part in conn.exec_driver_sql(
                    "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                    "where i.inhparent = 'inferences'::regclass and c.relname <> 'inferences_default'").scalars().all():
                conn.exec_driver_sql(f"drop table {part}")
            start, count = end - timedelta(days=400), 0
            while start < end:
                conn.exec_driver_sql(f"create table inferences_g{count} partition of inferences "
                                     f"for values from ('{start.isoformat()}') to ('{(start + step).isoformat()}')")
                start, count = start + step, count + 1
        plan_times = {}
        with engine.connect() as conn:
            day_ago = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
            for label, sql in (("one-day query", QUERIES["README premiums by version"].format(
                                   w="and created_at >= now() - interval '1 day'")),
                               ("one-day query, literal bound", QUERIES["README premiums by version"].format(
                                   w=f"and created_at >= '{day_ago}'")),
                               ("no time filter", QUERIES["README what failed"].format(w=""))):
                samples = []
                for _ in range(20):
                    plan = conn.exec_driver_sql("explain (summary, format json) " + sql).scalar()
                    samples.append(plan[0]["Planning Time"])
                plan_times[label] = statistics.median(samples)
        gen = Generator(seed=1, customers=2000)
        conn = audit_rows.connect(url)
        rows = [dict(zip(COLUMNS, [*line[0].rstrip("\n").split("\t")]))
                for line in gen.lines(64, datetime.now(timezone.utc))][:64]
        for row in rows:
            for key, value in row.items():
                row[key] = None if value == r"\N" else value
        started = time.perf_counter()
        for _ in range(100):
            for row in rows:
                row["id"] = str(uuid.uuid4())
            audit_rows.store(conn, rows)
        per_row = (time.perf_counter() - started) / (100 * len(rows)) * 1e6
        conn.close()
        results[name] = {"partitions": count, "planning_ms": plan_times, "insert_us_per_row": per_row,
                         "retention_precision_days": step.days}
        engine.dispose()
    return results


# -- orchestration ----------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "km" else text) * scale)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m", help="comma-separated row counts, e.g. 1m,5m,20m (default 1m)")
    parser.add_argument("--insert-seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=32, help="concurrent recorders for the insert measurement")
    parser.add_argument("--insert-rounds", type=int, default=3,
                        help="interleaved rounds of the insert variants; the median is reported")
    parser.add_argument("--admin-url", default=None, help="an existing server (its maintenance database); "
                        "default: an embedded pgserver in --pgdata")
    parser.add_argument("--pgdata", default=str(ROOT / "var" / "bench-scale-pg"))
    parser.add_argument("--skip-granularity", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the databases (and the embedded server's data)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    targets = sorted(parse_size(s) for s in args.sizes.split(","))

    server = None
    if args.admin_url is None:
        import pgserver

        Path(args.pgdata).mkdir(parents=True, exist_ok=True)
        os.chmod(args.pgdata, 0o755)  # pgserver runs postgres as an unprivileged user when we are root
        server = pgserver.get_server(args.pgdata, cleanup_mode=None if args.keep else "delete")
        admin_url = server.get_uri()
    else:
        admin_url = args.admin_url
    admin = sa.create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    made: list[str] = []

    def make_db(name: str, revision: str = "head") -> str:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            conn.exec_driver_sql(f'create database "{name}"')
        made.append(name)
        url = sa.engine.make_url(normalize_database_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        db.upgrade(url, revision)
        return url

    report: dict = {"load_average": os.getloadavg(), "started": datetime.now(timezone.utc).isoformat(),
                    "nproc": os.cpu_count(), "sizes": {}}
    try:
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
              f"{os.cpu_count()} cores, server {admin_url.split('@')[-1]}")
        report["ids"] = id_cost()
        print(f"ids: UUIDv7 + created_at {report['ids']['uuid7_plus_created_at_us']:.2f} µs, "
              f"uuid4() + datetime.now() {report['ids']['uuid4_plus_now_us']:.2f} µs per id")
        if not args.skip_granularity:
            report["granularity"] = granularity(admin_url, make_db)
            for name, g in report["granularity"].items():
                print(f"granularity {name:8} {g['partitions']:4} partitions over 400 days: planning ms: one-day query "
                      f"with now() {g['planning_ms']['one-day query']:.2f}, with a literal bound "
                      f"{g['planning_ms']['one-day query, literal bound']:.2f}, no time filter "
                      f"{g['planning_ms']['no time filter']:.2f}; "
                      f"insert {g['insert_us_per_row']:.1f} µs/row (64-row batches); retention precision "
                      f"{g['retention_precision_days']} day(s)")
        urls = {layout: make_db(f"scale_{layout}", revision) for layout, revision in LAYOUTS.items()}
        engines = {layout: sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
                   for layout, url in urls.items()}
        generator = Generator()
        now = datetime.now(timezone.utc)
        # the 30 days of history get their daily partitions, as `db maintain` would have made them day by day
        partitions.maintain(engines["partitioned"], now=now - timedelta(days=DAYS + 1), days_ahead=DAYS + 8)
        loaded = 0
        config_path = ROOT / "config" / "models.json"
        for target in targets:
            calls = int((target - loaded) / 1.165)  # 55 % of calls are A/B, 30 % of those get a shadow row
            seconds = load(urls, generator, calls, now)
            for layout, url in urls.items():
                prepare_analyst_tables(url)
            size_report: dict = {"load_seconds": seconds}
            for layout, engine in engines.items():
                # queries first: the insert measurement adds rows to today
                size_report[layout] = {"sizes": sizes(engine),
                                       "queries": query_latencies(engine, datetime.now(timezone.utc), config_path)}
            # the insert variants interleaved, round after round, so a noisy neighbour hits them alike
            variants = {("partitioned", "insert"): True, ("partitioned", "insert_unprepared"): False,
                        ("unpartitioned", "insert"): True}
            runs: dict[tuple[str, str], list[dict]] = {v: [] for v in variants}
            for _ in range(args.insert_rounds):
                for (layout, key), prepare in variants.items():
                    with (main_statement() if layout == "unpartitioned" else nullcontext()):
                        runs[(layout, key)].append(insert_throughput(urls[layout], layout, args.insert_seconds,
                                                                     args.threads, prepare, generator))
            for url in urls.values():  # the next size starts from the same synthetic data in both layouts
                remove_inserted(url)
            for (layout, key), results in runs.items():
                median = sorted(results, key=lambda r: r["per_second"])[len(results) // 2]
                size_report[layout][key] = {**median, "runs_per_second": [r["per_second"] for r in results]}
            loaded = size_report["partitioned"]["sizes"]["rows"]
            report["sizes"][str(target)] = size_report
            print_size(target, size_report)
        print_summary(report)
        for engine in engines.values():
            engine.dispose()
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        if not args.keep:
            with admin.connect() as conn:
                for name in made:
                    conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
        admin.dispose()
        if server is not None:
            server.cleanup()
    return 0


def print_size(target: int, r: dict) -> None:
    print(f"\n== {target:,} rows target (COPY of this step: {r['load_seconds']:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f})")
    for layout in LAYOUTS:
        f = r[layout]
        s = f["sizes"]
        print(f"{layout:14} rows {s['rows']:,}  table {fmt_bytes(s['table_bytes'])} ({s['table_bytes'] / s['rows']:.0f} B/row)"
              f"  indexes {fmt_bytes(s['index_bytes'])} ({s['index_bytes'] / s['rows']:.0f} B/row, primary key "
              f"{s['pk_bytes'] / s['rows']:.0f} B/row)  relations {s['relations']}")
        ins = f["insert"]
        runs = "/".join(f"{x:,.0f}" for x in ins["runs_per_second"])
        print(f"{'':14} insert {ins['per_second']:,.0f} records/s median of {runs} ({ins['batches']} batches, client "
              f"CPU {ins['client_cpu_us_per_record']:.0f} µs/record, failures {ins['failures']})")
        if "insert_unprepared" in f:
            un = f["insert_unprepared"]
            print(f"{'':14} unprepared (PgBouncer transaction mode) {un['per_second']:,.0f} records/s median of "
                  + "/".join(f"{x:,.0f}" for x in un["runs_per_second"]))
    print(f"{'query':52} {'partitioned':>12} {'unpartitioned':>14}   (median of 3, seconds)")
    for name in r["partitioned"]["queries"]:
        p, u = r["partitioned"]["queries"][name]["median_s"], r["unpartitioned"]["queries"][name]["median_s"]
        print(f"{name:52} {p:12.3f} {u:14.3f}")


def print_summary(report: dict) -> None:
    sizes_run = sorted(report["sizes"], key=int)
    if not sizes_run:
        return
    first, last = report["sizes"][sizes_run[0]], report["sizes"][sizes_run[-1]]
    print("\n== summary")
    for layout in LAYOUTS:
        a, b = first[layout]["insert"]["per_second"], last[layout]["insert"]["per_second"]
        print(f"{layout:14} insert throughput at {int(sizes_run[-1]):,} rows = {b / a:.2f}× of {int(sizes_run[0]):,}")
    p = last["partitioned"]
    s = p["sizes"]
    per_row = (s["table_bytes"] + s["index_bytes"]) / s["rows"]
    slow = {k: v["median_s"] for k, v in p["queries"].items() if "[1d]" in k and k.split(" [")[0] in README_QUERIES}
    print(f"README queries over 1 day at {s['rows']:,} rows: " + ", ".join(f"{k} {v:.3f} s" for k, v in slow.items()))
    print(f"ab-report --since 7d: {p['queries']['ab-report --since 7d']['median_s']:.3f} s")
    print(f"a billion rows (partitioned): ~{fmt_bytes(per_row * 1e9)} on disk at {per_row:.0f} B/row "
          f"(table {s['table_bytes'] / s['rows']:.0f} + indexes {s['index_bytes'] / s['rows']:.0f}); one-day "
          f"queries read one day's partition, so their time follows rows per day, not total rows")


if __name__ == "__main__":
    sys.exit(main())
