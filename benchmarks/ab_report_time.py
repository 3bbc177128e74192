"""Benchmark: how long `modelplatform ab-report NAME` takes, as a user runs it (a fresh process).

    .venv/bin/python benchmarks/ab_report_time.py [--runs 9]

Starts an embedded Postgres (pgserver, migrated with Alembic), seeds 2 010 A/B calls of
``pricing-2.1.1-rollout`` and times, alternately in the same run:

- ``ab-report``: the command as shipped (its chi-square p-value in closed form, no statistics library);
- ``baseline``: the same command in a process that also imports ``scipy.stats`` first, which is what
  the command paid before issue 12 (it computed the p-value with ``scipy.stats.chisquare``).

Prints the median, min and max wall time of each, the ratio, and the CPU time of the child processes.
Needs the test extra (scipy). A figure from a shared machine is noisy: the lead re-runs it on a quiet one.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "analytics"))

TEST = "pricing-2.1.1-rollout"
COMMAND = f"from modelplatform.cli import main; raise SystemExit(main(['ab-report', {TEST!r}]))"
TARGETS = {"ab-report": COMMAND, "baseline": "import scipy.stats; " + COMMAND}


def seed(url: str) -> None:
    import sqlalchemy as sa

    from ab_seed_support import RECENT, SEED
    from modelplatform.settings import normalize_database_url

    engine = sa.create_engine(normalize_database_url(url))
    with engine.begin() as conn:
        for version, n in (("2.1.0", 1000), ("2.1.1", 1010)):
            conn.execute(SEED, {"experiment": TEST, "version": version, "n": n, "model": "auto_pricing",
                                "routed_by": "ab_test", "t0": RECENT})
    engine.dispose()


def timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"ab-report failed ({done.returncode}): {done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per target (default: 9)")
    args = parser.parse_args()

    import pgserver

    from modelplatform import db

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="ab-report-bench-")), cleanup_mode="stop")
    try:
        url = server.get_uri()
        db.upgrade(url)
        seed(url)
        env = {**os.environ, "DATABASE_URL": url, "MODELS_CONFIG": str(ROOT / "config" / "models.json")}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in TARGETS}
        timed(COMMAND, env)  # warm the page cache and Postgres
        for _ in range(args.runs):
            for name, code in TARGETS.items():  # alternate, so drifting load hits both alike
                results[name].append(timed(code, env))
    finally:
        server.cleanup()

    print(f"load average (1, 5, 15 min) after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    medians = {}
    for name, runs in results.items():
        walls = [w for w, _ in runs]
        medians[name] = statistics.median(walls)
        print(f"{name:10} wall median {medians[name]:.3f} s  min {min(walls):.3f}  max {max(walls):.3f}  "
              f"CPU median {statistics.median(c for _, c in runs):.3f} s  ({len(runs)} runs)")
    print(f"ab-report / baseline: {medians['ab-report'] / medians['baseline']:.2f}x")


if __name__ == "__main__":
    main()
