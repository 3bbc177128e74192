"""Benchmark: the audit table at 1M, 5M, 20M rows, partitioned (UUIDv7) vs the old unpartitioned layout (UUIDv4).

    make bench-scale                                   # = .venv/bin/python benchmarks/audit_scale.py --sizes 1m
    .venv/bin/python benchmarks/audit_scale.py --sizes 1m,5m,20m [--layouts partitioned] [--insert-seconds 15] [--keep]

Starts its own embedded Postgres (pgserver, default settings) in ``--pgdata`` unless ``--admin-url`` names a
server, and builds, in the same run, ``partitioned`` (Alembic head: daily partitions, key ``(id, created_at)``,
UUIDv7 ids, migration 0007's A/B index) and ``unpartitioned`` (Alembic 0003: the old table, UUIDv4 ids, with
0005's analyst views added); ``--layouts partitioned`` builds the first only (half the disk: 20M rows take
~23 GB per layout). Both receive the same synthetic rows by ``COPY``: 30 days ending now, realistic pricing
payloads, three models, an A/B test with a shadow version, pinned and default traffic, ~4 % non-ok, ~5 % of
A/B quotes sold (an analyst's ``policy_sales`` table). Sizes are reached by appending, smallest first.

At each size, for each layout it prints:
- table and index bytes per row;
- the latency (median of 3, warm) of every SQL statement of README.md and docs/ab-testing.md, read from the
  docs: those with psql variables (``:'since'``, ``:'until'``) over 1 day and 7 days, the others as written;
  and of ``ab-report`` (``build_report``) over 1 day, 7 days and all time;
- on the partitioned layout, ab-report's query under each design (no index as before 0007; no index with
  parallel workers; design A, a covering ``(experiment, created_at)`` index; 0007's index, shipped), each
  index dropped and built for real (build times and sizes printed), and whether every design answers the same;
- the group-commit writer's insert throughput (``GroupCommitAuditLog``, ``--threads`` threads recording for
  ``--insert-seconds``, 61 % of rows A/B as in the loaded data) and our Postgres' CPU per record: on the
  partitioned layout without an A/B index, with design A's, with 0007's (as shipped) and unprepared (the
  PgBouncer transaction-mode INSERT); on the old table with main's statement; interleaved over
  ``--insert-rounds`` rounds, median reported, every run printed with the load average.
Before the sizes: the cost per id of UUIDv7 vs the old ``uuid4()`` + ``datetime.now()``, and the
partition-granularity comparison (daily/weekly/monthly over 400 days: planning and insert routing).
Finally the issue's goals against the largest size, and a line extrapolating to a billion rows.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import random
import re
import statistics
import sys
import threading
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]

from modelplatform import db  # noqa: E402
from modelplatform.ab_report import (  # noqa: E402
    ARM_STATS,
    REPORT_WORK_MEM,
    arm_stats_params,
    build_report,
    find_test,
    report_transaction,
)
from modelplatform.audit import InferenceRecord, partitions  # noqa: E402
from modelplatform.audit.group_commit import GroupCommitAuditLog  # noqa: E402
from modelplatform.audit.ids import new_inference_id, uuid7  # noqa: E402
from modelplatform.audit.rows import COLUMNS, psycopg2_dsn  # noqa: E402
from modelplatform.config import load_config  # noqa: E402
from modelplatform.metrics import Metrics  # noqa: E402
from modelplatform.routing import assign  # noqa: E402
from modelplatform.settings import normalize_database_url  # noqa: E402
from run import cpu_seconds, cpu_used, postgres_processes  # noqa: E402  (benchmarks/run.py, next to this file)

LAYOUTS = {"partitioned": "head", "unpartitioned": "0003"}
EXPERIMENT = "pricing-2.1.1-rollout"
WEIGHTS = {"2.1.0": 50, "2.1.1": 50}
DAYS = 30
SHA = {v: uuid.uuid5(uuid.NAMESPACE_URL, v).hex * 2 for v in ("2.0.3", "2.1.0", "2.1.1", "2.2.0", "1.4.0", "3.0.1")}

# the analyst queries are read from the docs themselves, so what is measured is what they say; a statement
# with psql variables (:'since', :'until') runs over each window, the others once, as written
DOCS = (ROOT / "README.md", ROOT / "docs" / "ab-testing.md")
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
PSQL_VARIABLE = re.compile(r":'(\w+)'")
WINDOWS = {"1d": timedelta(days=1), "7d": timedelta(days=7)}
# the granularity comparison plans README-like queries on empty tables
PREMIUMS = """
    select version, count(*), avg((output->>'premium')::numeric) as avg_premium from inferences
    where model = 'auto_pricing' and status = 'ok' {w} group by version order by version"""
FAILURES = """
    select created_at, version, status, error from inferences
    where model = 'auto_pricing' and status <> 'ok' order by created_at desc limit 20"""

# designs for `ab-report --since 7d` measured beside the shipped one (migration 0007's index): the brief's
# covering index on (experiment, created_at), and no index at all with parallel workers (no write cost)
DESIGN_A_INDEX = "bench_ab_experiment_created_at"
DESIGN_A = (f"create index {DESIGN_A_INDEX} on inferences (experiment, created_at) "
            "include (model, version, routed_by, status, latency_ms) where experiment is not null")
# ab_arm_stats_since's body written out: the function is not marked parallel safe, which forbids workers
ARM_STATS_INLINE = sa.text("""
    select model, version, routed_by, count(*) as calls, count(*) filter (where status = 'ok') as ok,
           count(*) filter (where status = 'invalid_input') as invalid_input,
           count(*) filter (where status = 'rejected') as rejected, count(*) filter (where status = 'error') as error,
           percentile_cont(0.5) within group (order by latency_ms) as latency_p50_ms,
           percentile_cont(0.95) within group (order by latency_ms) as latency_p95_ms,
           min(created_at) as first_seen, max(created_at) as last_seen
    from inferences
    where experiment is not null and created_at >= :since and experiment = :experiment
      and (cast(:model as text) is null or model = :model)
    group by model, experiment, version, routed_by
    order by model, routed_by, version
""")
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
                model, version, routed_by = "auto_pricing", self.arm[customer], "ab_test"
                experiment, key = EXPERIMENT, customer
                shadow = rng.random() < 0.3
            elif pick < 0.70:
                model, version, routed_by, experiment, key = "auto_pricing", "2.0.3", "pinned", None, None
            elif pick < 0.90:
                model, version, routed_by, experiment, key = "home_pricing", "1.4.0", "default", None, None
            else:
                model, version, routed_by, experiment, key = "travel_pricing", "3.0.1", "default", None, None
            request_id = f"{rng.getrandbits(128):032x}"
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
        unix_ms = (created - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
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

        pending = 0
        for lines in generator.lines(count, end):
            for name, line in zip(LAYOUTS, lines, strict=True):  # one line per layout
                if name in buffers:
                    buffers[name].append(line)
            pending += 1
            if pending >= 200_000:
                flush()
                pending = 0
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
    old = min(timeit.repeat(lambda: (str(uuid.uuid4()), datetime.now(UTC)), number=number, repeat=5)) / number * 1e6
    return {"uuid7_plus_created_at_us": new, "uuid4_plus_now_us": old}


# the writer's traffic in the same proportions as the loaded rows: per call 55 % A/B (30 % of those with a
# shadow row), 15 % pinned, 30 % default, so 61 % of rows carry an experiment (what 0007's index holds)
INSERT_MIX = (("ab_test", "2.1.1", EXPERIMENT, 0.55), ("shadow", "2.2.0", EXPERIMENT, 0.165),
              ("pinned", "2.0.3", None, 0.15), ("default", "2.1.1", None, 0.30))


def postgres_cpu_seconds(postmaster: int | None) -> dict[int, float] | None:
    """CPU seconds so far of each process of our Postgres (postmaster and backends), by pid; None when the
    server is not ours. Between two readings :func:`run.cpu_used` counts a new backend from zero and loses
    one that ended (the writer's backend stays connected until after the second reading)."""
    return None if postmaster is None else cpu_seconds(postgres_processes(postmaster))


def insert_throughput(url: str, layout: str, seconds: float, threads: int, prepare: bool, generator: Generator,
                      postmaster: int | None = None) -> dict:
    """Records/s through GroupCommitAuditLog with ``threads`` concurrent recorders (each like a request thread),
    rows in :data:`INSERT_MIX`, and the CPU our Postgres spent per record meanwhile."""
    metrics = Metrics()  # the writer's batch count is read from its own metrics, as /metrics would show it
    audit = GroupCommitAuditLog(url, spool_dir=None, prepare=prepare, wait_timeout=30, meter=metrics)
    payloads = list(generator.inputs.values())[:1000]
    output = generator._output("suv", "2.1.1")
    kinds = [kind[:3] for kind in INSERT_MIX]
    weights = [kind[3] for kind in INSERT_MIX]
    stop = time.monotonic() + seconds
    counts = [0] * threads
    failures: list[BaseException] = []

    def recorder(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < stop:
            if layout == "partitioned":
                inference_id, created_at = new_inference_id()
            else:
                inference_id, created_at = str(uuid.uuid4()), datetime.now(UTC)
            routed_by, version, experiment = rng.choices(kinds, weights)[0]
            try:
                audit.record(InferenceRecord(
                    id=inference_id, created_at=created_at, model="auto_pricing", version=version,
                    routed_by=routed_by, experiment=experiment,
                    routing_key="c-0000001" if experiment else None, status="ok",
                    input_json=rng.choice(payloads)[1], output_json=output, error_json=None,
                    latency_ms=rng.lognormvariate(0.7, 0.5), request_id=f"{rng.getrandbits(128):032x}",
                    artifact_sha256=SHA[version], api_key_id=INSERT_MARK))
            except BaseException as exc:  # counted, shown: a failed record is a failed measurement
                failures.append(exc)
                return
            counts[index] += 1

    workers = [threading.Thread(target=recorder, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    cpu = time.process_time()
    db_cpu = postgres_cpu_seconds(postmaster)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    client_cpu = time.process_time() - cpu
    db_cpu_after = postgres_cpu_seconds(postmaster)  # before close(): the writer's backend is still there
    audit.close()
    total = sum(counts)
    batches = metrics.registry.get_sample_value("modelplatform_audit_batches_total") or 0
    return {"records": total, "per_second": total / elapsed, "batches": int(batches),
            "client_cpu_us_per_record": client_cpu / max(total, 1) * 1e6,
            "db_cpu_us_per_record": None if db_cpu is None or db_cpu_after is None
            else cpu_used(db_cpu, db_cpu_after) / max(total, 1) * 1e6,
            "failures": len(failures), "load": os.getloadavg()[0]}


def remove_inserted(url: str) -> None:
    conn = psycopg2.connect(psycopg2_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("delete from inferences where api_key_id = %s", (INSERT_MARK,))
            cursor.execute("vacuum analyze inferences")
    finally:
        conn.close()


def timed(run: Callable[[], object], repeat: int = 3) -> dict:
    """Median of ``repeat`` runs of ``run`` (the first one included: the data is warm from the load), and
    the load average when they ended."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "first_s": times[0], "load": os.getloadavg()[0]}


def run_sql(engine: sa.Engine, sql: str, params: dict | None = None, settings: tuple[str, ...] = ()) -> list:
    """All rows of ``sql`` in one transaction, after ``set local`` of each of ``settings``."""
    with engine.begin() as conn:
        conn.exec_driver_sql("set local statement_timeout = '300s'")
        for setting in settings:
            conn.exec_driver_sql(f"set local {setting}")
        if params is None:  # a docs statement with its window already written in: sent as it is
            return conn.exec_driver_sql(sql).all()
        return conn.execute(sa.text(sql) if isinstance(sql, str) else sql, params).all()


def docs_queries() -> dict[str, str]:
    """Every statement of the ``sql`` blocks of README.md and docs/ab-testing.md, labelled by file, number
    and its comment or first words."""
    queries = {}
    for path in DOCS:
        statements = [s.strip() for block in SQL_BLOCK.findall(path.read_text()) for s in block.split(";\n")
                      if s.strip()]
        for number, statement in enumerate(statements, 1):
            first = statement.splitlines()[0]
            label = first.lstrip("- ") if first.startswith("--") else " ".join(statement.split())
            queries[f"{path.stem} {number}: {label[:40]}"] = statement
    return queries


def bind(sql: str, **variables: datetime) -> str:
    """What psql sends for ``:'name'``: the variable's value as a quoted literal."""
    return PSQL_VARIABLE.sub(lambda m: f"'{variables[m.group(1)].isoformat()}'", sql)


def query_latencies(engine: sa.Engine, now: datetime, config_path: Path) -> dict[str, dict]:
    """Every docs query over each window (or once, as written), and ``ab-report`` as shipped."""
    results: dict[str, dict] = {}
    for name, sql in docs_queries().items():
        if PSQL_VARIABLE.search(sql):
            for window, span in WINDOWS.items():
                bound = bind(sql, since=now - span, until=now + timedelta(hours=1))
                results[f"{name} [{window}]"] = timed(lambda bound=bound: run_sql(engine, bound))
        else:
            results[f"{name} [as written]"] = timed(lambda sql=sql: run_sql(engine, sql))
    config = load_config(config_path)
    for window, since in {**{w: now - span for w, span in WINDOWS.items()}, "all": None}.items():
        results[f"ab-report --since {window}"] = timed(
            lambda since=since: build_report(engine, config, EXPERIMENT, since))
    return results


def load_migration(filename: str):
    """A revision module of migrations/versions (its constants: what the benchmark builds is what ships)."""
    path = ROOT / "migrations" / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_analyst_views(url: str) -> None:
    """Migration 0005's views on the old table too (they are plain SQL over its columns), so the docs'
    queries run unchanged on both layouts."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    engine = sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        load_migration("0005_analyst_views.py").upgrade()
    engine.dispose()


def index_bytes(engine: sa.Engine, name: str) -> int:
    """Size of a partitioned index: every partition's index attached to it."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "select coalesce(sum(pg_relation_size(inhrelid)), 0) from pg_inherits "
            "where inhparent = to_regclass(%(name)s)", {"name": name}).scalar())


class IndexState:
    """Which A/B index the partitioned table has: ``shipped`` (migration 0007's, as migrated), ``A`` (the
    (experiment, created_at) covering design) or ``none`` (0006). Each change drops and builds for real,
    timing every build (what the migration costs on a table of this size) and measuring its size."""

    def __init__(self, engine: sa.Engine) -> None:
        shipped = load_migration("0007_ab_arm_stats_index.py")
        self.engine = engine
        self.names = {"shipped": shipped.INDEX, "A": DESIGN_A_INDEX}
        self.create = {"shipped": f"create index {shipped.INDEX} on inferences {shipped.DEFINITION}", "A": DESIGN_A}
        self.current = "shipped"
        self.build_seconds: dict[str, list[float]] = {"shipped": [], "A": []}
        self.bytes = {"shipped": index_bytes(engine, shipped.INDEX)}

    def set(self, state: str) -> None:
        if state == self.current:
            return
        with self.engine.begin() as conn:
            for name in self.names.values():
                conn.exec_driver_sql(f"drop index if exists {name}")
        if state != "none":
            started = time.perf_counter()
            with self.engine.begin() as conn:
                conn.exec_driver_sql(self.create[state])
            self.build_seconds[state].append(time.perf_counter() - started)
            self.bytes[state] = index_bytes(self.engine, self.names[state])
        self.current = state


def ab_report_designs(engine: sa.Engine, state: IndexState, now: datetime, model: str | None) -> dict[str, dict]:
    """ab-report's query (``ARM_STATS``, as ``fetch_arms`` sends it) under each design, over each window, and
    whether every design answered exactly what the shipped one did."""
    def arm_stats(since: datetime, sql: sa.TextClause = ARM_STATS, settings: tuple[str, ...] = (),
                  shipped: bool = False) -> list:
        params = arm_stats_params(EXPERIMENT, since, model)
        if shipped:  # fetch_arms' own transaction: read only, work_mem raised to REPORT_WORK_MEM
            with report_transaction(engine) as conn:
                return conn.execute(sql, params).all()
        return run_sql(engine, sql, params, settings)

    designs: list[tuple[str, str, Callable[[datetime], list]]] = [
        ("none", "before: no index, default work_mem (0006)", lambda since: arm_stats(since)),
        ("none", "C: no index, parallel workers, work_mem 256MB",
         lambda since: arm_stats(since, ARM_STATS_INLINE, ("work_mem = '256MB'", "parallel_setup_cost = 0",
                                                             "parallel_tuple_cost = 0"))),
        ("A", f"A: (experiment, created_at) covering, {REPORT_WORK_MEM}",
         lambda since: arm_stats(since, shipped=True)),
        ("A", "A: (experiment, created_at) covering, 1GB",
         lambda since: arm_stats(since, settings=("work_mem = '1GB'",))),
        ("shipped", f"B, shipped: 0007's index, {REPORT_WORK_MEM}", lambda since: arm_stats(since, shipped=True)),
    ]
    results: dict[str, dict] = {}
    answers = {}
    for index_state, label, fetch in designs:
        state.set(index_state)
        for window, span in WINDOWS.items():
            timing = timed(lambda fetch=fetch, span=span: fetch(now - span))
            results[f"{label} [{window}]"] = {**timing, "index": index_state}
        answers[label] = fetch(now - WINDOWS["7d"])
    shipped_answer = answers[designs[-1][1]]
    results["same answer as shipped [7d]"] = {label: answer == shipped_answer for label, answer in answers.items()}
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
               or i.indrelid in (select inhrelid from pg_inherits where inhparent = 'inferences'::regclass))
            """).scalar()
        rows = conn.exec_driver_sql("select count(*) from inferences").scalar()
    return {"rows": int(rows), "table_bytes": int(row[0]), "index_bytes": int(row[1]), "pk_bytes": int(pk),
            "relations": int(row[2])}


def granularity(admin_url: str, make_db: Callable[[str], str]) -> dict[str, dict]:
    """Planning time and insert routing with 400 days of daily / weekly / monthly partitions (empty)."""
    from modelplatform.audit import rows as audit_rows

    results = {}
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=8)
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
            day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
            for label, sql in (("one-day query", PREMIUMS.format(w="and created_at >= now() - interval '1 day'")),
                               ("one-day query, literal bound", PREMIUMS.format(w=f"and created_at >= '{day_ago}'")),
                               ("no time filter", FAILURES)):
                samples = []
                for _ in range(20):
                    plan = conn.exec_driver_sql("explain (summary, format json) " + sql).scalar()
                    samples.append(plan[0]["Planning Time"])
                plan_times[label] = statistics.median(samples)
        gen = Generator(seed=1, customers=2000)
        conn = audit_rows.connect(url)
        # the same lines COPY loads into COLUMNS, so one field per column
        rows = [dict(zip(COLUMNS, [*line[0].rstrip("\n").split("\t")], strict=True))
                for line in gen.lines(64, datetime.now(UTC))][:64]
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
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help="which layouts to build (default both; 'partitioned' alone halves disk and time)")
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
    layouts = {name: LAYOUTS[name] for name in LAYOUTS if name in args.layouts.split(",")}
    if not layouts:
        parser.error(f"--layouts: one or more of {', '.join(LAYOUTS)}")

    server = None
    if args.admin_url is None:
        import pgserver

        Path(args.pgdata).mkdir(parents=True, exist_ok=True)
        os.chmod(args.pgdata, 0o755)  # pgserver runs postgres as an unprivileged user when we are root
        server = pgserver.get_server(args.pgdata, cleanup_mode=None if args.keep else "delete")
        admin_url = server.get_uri()
        postmaster = int((Path(server.pgdata) / "postmaster.pid").read_text().split()[0])
    else:
        admin_url, postmaster = args.admin_url, None  # its CPU is not ours to measure
    admin = sa.create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    made: list[str] = []

    def make_db(name: str, revision: str = "head") -> str:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            conn.exec_driver_sql(f'create database "{name}"')
        made.append(name)
        url = (sa.engine.make_url(normalize_database_url(admin_url)).set(database=name)
               .render_as_string(hide_password=False))
        db.upgrade(url, revision)
        return url

    report: dict = {"load_average": os.getloadavg(), "started": datetime.now(UTC).isoformat(),
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
        urls = {layout: make_db(f"scale_{layout}", revision) for layout, revision in layouts.items()}
        if "unpartitioned" in urls:
            add_analyst_views(urls["unpartitioned"])
        engines = {layout: sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
                   for layout, url in urls.items()}
        generator = Generator()
        now = datetime.now(UTC)
        index_state = None
        if "partitioned" in engines:
            # the 30 days of history get their daily partitions, as `db maintain` would have made them day by day
            partitions.maintain(engines["partitioned"], now=now - timedelta(days=DAYS + 1), days_ahead=DAYS + 8)
            index_state = IndexState(engines["partitioned"])
        loaded = 0
        config_path = ROOT / "config" / "models.json"
        model = find_test(load_config(config_path), EXPERIMENT)[0]
        for target in targets:
            calls = int((target - loaded) / 1.165)  # 55 % of calls are A/B, 30 % of those get a shadow row
            seconds = load(urls, generator, calls, now)
            for url in urls.values():
                prepare_analyst_tables(url)
            size_report: dict = {"load_seconds": seconds, "load_average_after_load": os.getloadavg()[0]}
            for layout, engine in engines.items():
                # queries first: the insert measurement adds rows to today
                size_report[layout] = {"sizes": sizes(engine),
                                       "queries": query_latencies(engine, datetime.now(UTC), config_path)}
            if index_state is not None:
                with engines["partitioned"].connect() as conn:
                    ab_rows = conn.exec_driver_sql(
                        "select count(*) from inferences where experiment is not null").scalar()
                size_report["partitioned"]["ab_rows"] = int(ab_rows)
                size_report["partitioned"]["ab_designs"] = ab_report_designs(
                    engines["partitioned"], index_state, datetime.now(UTC), model)
            # the insert variants interleaved, round after round, so a noisy neighbour hits them alike; on the
            # partitioned table with each A/B index (none, design A, shipped): what each costs the writer
            variants = [("partitioned", "insert_no_index", True, "none"),
                        ("partitioned", "insert_design_a", True, "A"),
                        ("partitioned", "insert", True, "shipped"),
                        ("partitioned", "insert_unprepared", False, "shipped"),
                        ("unpartitioned", "insert", True, None)]
            variants = [v for v in variants if v[0] in urls]
            runs: dict[tuple[str, str], list[dict]] = {(layout, key): [] for layout, key, _, _ in variants}
            for _ in range(args.insert_rounds):
                for layout, key, prepare, index in variants:
                    if index is not None:
                        index_state.set(index)
                    with (main_statement() if layout == "unpartitioned" else nullcontext()):
                        runs[(layout, key)].append(insert_throughput(urls[layout], layout, args.insert_seconds,
                                                                     args.threads, prepare, generator, postmaster))
            if index_state is not None:
                index_state.set("shipped")  # as migrated, for the next size
                size_report["partitioned"]["index"] = {"build_seconds": index_state.build_seconds,
                                                       "bytes": dict(index_state.bytes)}
            for url in urls.values():  # the next size starts from the same synthetic data in every layout
                remove_inserted(url)
            for (layout, key), results in runs.items():
                if results:
                    median = sorted(results, key=lambda r: r["per_second"])[len(results) // 2]
                    size_report[layout][key] = {**median, "runs": results}
            loaded = next(iter(size_report[layout]["sizes"]["rows"] for layout in urls))
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


def db_cpu(f: dict) -> list[float]:
    """Postgres CPU µs per record of every run of an insert variant (none when the server is not ours)."""
    return [r["db_cpu_us_per_record"] for r in f["runs"] if r["db_cpu_us_per_record"] is not None]


def insert_line(label: str, f: dict) -> str:
    runs = f["runs"]
    db = db_cpu(f)
    return (f"{'':14} {label:44} {f['per_second']:7,.0f} records/s, median of "
            + " / ".join(f"{r['per_second']:,.0f} (load {r['load']:.1f})" for r in runs)
            + (f"; Postgres CPU {statistics.median(db):.0f} µs/record (runs " + " / ".join(f"{x:.0f}" for x in db) + ")"
               if db else "")
            + f"; client CPU {f['client_cpu_us_per_record']:.0f} µs/record, failures {f['failures']}")


def print_size(target: int, r: dict) -> None:
    layouts = [layout for layout in LAYOUTS if layout in r]
    print(f"\n== {target:,} rows target (COPY of this step: {r['load_seconds']:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f})")
    for layout in layouts:
        f = r[layout]
        s = f["sizes"]
        print(f"{layout:14} rows {s['rows']:,}  table {fmt_bytes(s['table_bytes'])} "
              f"({s['table_bytes'] / s['rows']:.0f} B/row)"
              f"  indexes {fmt_bytes(s['index_bytes'])} ({s['index_bytes'] / s['rows']:.0f} B/row, primary key "
              f"{s['pk_bytes'] / s['rows']:.0f} B/row)  relations {s['relations']}")
        for key, label in (("insert", "insert (as shipped)"),
                           ("insert_unprepared", "unprepared (PgBouncer transaction mode)"),
                           ("insert_no_index", "without an A/B index (0006)"),
                           ("insert_design_a", "with design A's index instead")):
            if key in f:
                print(insert_line(label, f[key]))
        if "index" in f:
            i = f["index"]
            for state, label in (("shipped", "0007's index (shipped)"), ("A", "design A's index")):
                if state in i["bytes"]:
                    builds = i["build_seconds"][state]
                    print(f"{'':14} {label}: {fmt_bytes(i['bytes'][state])} ({i['bytes'][state] / f['ab_rows']:.0f} B "
                          f"per A/B row, {f['ab_rows']:,} A/B rows); built in "
                          + (" / ".join(f"{b:.1f}" for b in builds) + " s" if builds else "(not rebuilt)"))
    print(f"{'query (median of 3, seconds; load average at the end)':66}"
          + "".join(f"{layout:>20}" for layout in layouts))
    for name in r[layouts[0]]["queries"]:
        cells = [r[layout]["queries"][name] for layout in layouts]
        print(f"{name:66}" + "".join(f"{c['median_s']:12.3f} ({c['load']:4.1f})" for c in cells))
    if "ab_designs" in r.get("partitioned", {}):
        print("ab-report's query by design, partitioned (median of 3, seconds; load average at the end)")
        designs = r["partitioned"]["ab_designs"]
        for name, d in designs.items():
            if "median_s" in d:
                print(f"  {name:66} {d['median_s']:8.3f} ({d['load']:4.1f})")
        same = designs["same answer as shipped [7d]"]
        print("  every design's 7-day answer equal to the shipped one: "
              + ("yes" if all(same.values()) else "NO: " + ", ".join(k for k, v in same.items() if not v)))


def print_summary(report: dict) -> None:
    sizes_run = sorted(report["sizes"], key=int)
    if not sizes_run:
        return
    first, last = report["sizes"][sizes_run[0]], report["sizes"][sizes_run[-1]]
    layouts = [layout for layout in LAYOUTS if layout in last]
    print("\n== summary")
    for layout in layouts:
        if "insert" in first[layout]:
            a, b = first[layout]["insert"]["per_second"], last[layout]["insert"]["per_second"]
            print(f"{layout:14} insert throughput at {int(sizes_run[-1]):,} rows = {b / a:.2f}× of "
                  f"{int(sizes_run[0]):,} (goal: within 20 %)")
    main_layout = layouts[0]
    p = last[main_layout]
    s = p["sizes"]
    per_row = (s["table_bytes"] + s["index_bytes"]) / s["rows"]
    one_day = {k.split(": ")[0]: v["median_s"] for k, v in p["queries"].items()
               if k.startswith("README") and k.endswith("[1d]")}
    print(f"README queries over 1 day at {s['rows']:,} rows ({main_layout}; goal < 1 s each): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in one_day.items()))
    print(f"ab-report --since 7d: {p['queries']['ab-report --since 7d']['median_s']:.3f} s (goal < 2 s)")
    if "insert_no_index" in p and "insert" in p:
        with_index, without = p["insert"], p["insert_no_index"]
        cpu = db_cpu(with_index), db_cpu(without)
        print(f"0007's index costs the writer: {with_index['per_second']:,.0f} vs {without['per_second']:,.0f} "
              f"records/s without it ({with_index['per_second'] / without['per_second']:.2f}×)"
              + (f"; Postgres CPU {statistics.median(cpu[0]):.0f} vs {statistics.median(cpu[1]):.0f} µs/record "
                 "(medians of the runs)" if all(cpu) else ""))
    print(f"a billion rows ({main_layout}): ~{fmt_bytes(per_row * 1e9)} on disk at {per_row:.0f} B/row "
          f"(table {s['table_bytes'] / s['rows']:.0f} + indexes {s['index_bytes'] / s['rows']:.0f}); one-day "
          f"queries read one day's partition, so their time follows rows per day, not total rows")


if __name__ == "__main__":
    sys.exit(main())
