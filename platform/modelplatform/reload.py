"""Zero-downtime config reload under gunicorn: ``kill -HUP <master>``.

On HUP gunicorn forks new workers (each calls ``create_app()``) and gracefully stops the old ones;
the listening socket never closes, so no request is refused. Without preload, a new worker that
cannot boot (broken config, missing or tampered artifact) would make the arbiter halt, taking the
service down. So workers never read the operator's file directly: the master keeps a *snapshot* of
the last config that was checked, and points ``MODELS_CONFIG`` (inherited by every worker it forks)
at it. On HUP the master checks the operator's file in a child process (everything ``modelplatform
check-config`` checks: config rules, every artifact fetched, its sha256 verified, loaded, its examples
run; a superset of what a worker does at boot) and only then moves
``MODELS_CONFIG`` to the new snapshot; a broken config is refused with every problem logged, and new
workers keep booting from the last good one.

``python -m modelplatform.reload PATH`` is that check (exit 0, or 1 with the problems on stdout, one a line).
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from modelplatform.settings import DEFAULT_CONFIG_PATH

log = logging.getLogger("modelplatform.reload")

SOURCE_ENV = "MODELPLATFORM_CONFIG_SOURCE"  # the operator's file, re-read on every HUP
SNAPSHOT_DIR_ENV = "MODELPLATFORM_CONFIG_SNAPSHOTS"
CHECK_TIMEOUT_SECONDS = 300


def _snapshot_dir() -> Path:
    existing = os.environ.get(SNAPSHOT_DIR_ENV)
    if existing:
        return Path(existing)
    path = Path(tempfile.mkdtemp(prefix="modelplatform-config-"))
    os.environ[SNAPSHOT_DIR_ENV] = str(path)
    return path


def _write_snapshot(raw: bytes) -> Path:
    path = _snapshot_dir() / f"models-{hashlib.sha256(raw).hexdigest()[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path


def check(path: Path) -> list[str]:
    """Every problem that would stop a worker from booting on ``path`` (empty when it would boot).

    Runs in a child process so the master never imports model code or opens connections it would
    then hand to forked workers.
    """
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    try:
        result = subprocess.run([sys.executable, "-m", "modelplatform.reload", str(path)], env=env,
                                capture_output=True, text=True, timeout=CHECK_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return [f"checking the config took longer than {CHECK_TIMEOUT_SECONDS}s"]
    if result.returncode == 0:
        return []
    problems = [line for line in result.stdout.splitlines() if line.strip()]
    return problems or [f"config check exited with {result.returncode}: {result.stderr.strip()[-2000:]}"]


def on_starting() -> None:
    """Master start: remember the operator's file and serve a snapshot of it.

    Not checked here: the first workers check it themselves, and a broken first config must stop
    the deploy (gunicorn halts when its first workers cannot boot).
    """
    source = Path(os.environ.get(SOURCE_ENV) or os.environ.get("MODELS_CONFIG") or DEFAULT_CONFIG_PATH)
    os.environ[SOURCE_ENV] = str(source)
    try:
        snapshot = _write_snapshot(source.read_bytes())
    except OSError as exc:
        log.error("cannot read config %s: %s", source, exc)  # the workers will fail and say why
        return
    os.environ["MODELS_CONFIG"] = str(snapshot)
    log.info("serving config %s from snapshot %s", source, snapshot, extra={"config": str(source)})


def on_reload() -> bool:
    """HUP: check the operator's file; switch new workers to it only when it is good. True if switched."""
    source = Path(os.environ.get(SOURCE_ENV) or DEFAULT_CONFIG_PATH)
    current = os.environ.get("MODELS_CONFIG")
    try:
        raw = source.read_bytes()
    except OSError as exc:
        log.error("reload refused: cannot read %s: %s; still serving %s", source, exc, current,
                  extra={"config": str(source), "problems": [str(exc)]})
        return False
    candidate = _write_snapshot(raw)
    problems = check(candidate)
    if problems:
        if str(candidate) != current:
            candidate.unlink(missing_ok=True)
        log.error("reload refused: %s has %d problem(s); new workers keep the last good config %s",
                  source, len(problems), current, extra={"config": str(source), "problems": problems})
        for problem in problems:
            log.error("reload problem: %s", problem, extra={"config": str(source)})
        return False
    os.environ["MODELS_CONFIG"] = str(candidate)
    log.info("reload accepted: %s checked, new workers serve snapshot %s", source, candidate,
             extra={"config": str(source), "snapshot": str(candidate)})
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Print every problem ``modelplatform check-config`` finds (config, store, model load, examples)."""
    logging.getLogger("botocore").setLevel(logging.WARNING)
    from modelplatform.checks import check_config
    from modelplatform.settings import StoreLocation
    from modelplatform.store import S3ModelStore

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m modelplatform.reload CONFIG_PATH", file=sys.stderr)
        return 2
    try:
        store = S3ModelStore(StoreLocation.parse(os.environ.get("MODEL_STORE_URL", "")))
    except ValueError as exc:
        print(exc)
        return 1
    problems = check_config(args[0], store)
    for problem in problems:
        print(f"[{problem.check}] {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
