"""What the workers of one gunicorn master tell each other about booting, through small files.

The directory is the master's per-run ``PROMETHEUS_MULTIPROC_DIR`` (created and emptied by the master at start;
the worker hooks find it with :func:`modelplatform.forkenv.metrics_dir`, the app is given it as
``Settings.metrics_dir``), so nothing outlives the run and no new setting is needed. Every function here
takes the directory from its caller.

- ``worker-booted``: written by the first worker that finishes booting. Until it exists, a worker
  that cannot boot fails the deploy as gunicorn always did (a broken first start must stop); once
  it exists, a worker that cannot boot retries with backoff instead (see
  :mod:`modelplatform.gunicorn_worker`), because the master has healthy workers to protect.
- ``worker-boot-failure-<pid>.json``: one per worker currently retrying its boot (attempts, since,
  last error, next retry), removed when it boots or exits. ``/readyz`` on the healthy workers lists
  them (:func:`failing_workers`); a file whose process is gone (SIGKILL) is ignored.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

BOOTED = "worker-booted"
FAILURE_PREFIX = "worker-boot-failure-"
MAX_ERROR_CHARS = 500


def clear(directory: Path) -> None:
    """Forget a previous run's state (the master, at start)."""
    for path in directory.glob("worker-*"):
        path.unlink(missing_ok=True)


def mark_booted(directory: Path) -> None:
    (directory / BOOTED).touch()


def has_booted(directory: Path) -> bool:
    """True once any worker of this master has booted."""
    return (directory / BOOTED).exists()


def record_failure(directory: Path, pid: int, *, attempts: int, since: float, error: str,
                   next_retry_in: float) -> None:
    """Write (atomically) that worker ``pid`` is retrying its boot."""
    text = error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + "…"
    document = {"pid": pid, "attempts": attempts, "since": since, "last_error": text,
                "next_retry_in_s": round(next_retry_in, 1)}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-boot-")
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    os.replace(tmp, directory / f"{FAILURE_PREFIX}{pid}.json")


def clear_failure(directory: Path, pid: int) -> None:
    (directory / f"{FAILURE_PREFIX}{pid}.json").unlink(missing_ok=True)


def failing_workers(directory: Path | None) -> list[dict[str, Any]]:
    """Workers of the master whose metrics directory is ``directory`` (``Settings.metrics_dir``) retrying
    their boot right now (oldest pid first); [] when there is none (outside gunicorn)."""
    if directory is None:
        return []
    found = []
    for path in sorted(directory.glob(f"{FAILURE_PREFIX}*.json")):
        try:
            document = json.loads(path.read_text())
            os.kill(int(document["pid"]), 0)  # gone (SIGKILL, or replaced): not failing any more
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(document)
    return found
