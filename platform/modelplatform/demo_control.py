"""Acting on a running demo from another terminal: ``modelplatform demo rows`` and ``demo reload``.

Both find the demo through its state file (:mod:`modelplatform.demostate`). A reload is what it is in
production, ``kill -HUP`` to the gunicorn master, which checks the config file (rules, every artifact
fetched and verified, each version loading, its examples) and logs ``reload accepted`` or ``reload
refused``; :func:`reload` sends the signal, reads that verdict from the server log and, when accepted,
waits until the old workers are gone, so the next call is answered with the new config.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelplatform import demostate

# the master's check loads every version and runs its examples (modelplatform.reload allows 300 s)
VERDICT_TIMEOUT_S = 330.0
WORKERS_TIMEOUT_S = 90.0
POLL_S = 0.2


class DemoNotRunning(Exception):
    """No running demo was found, or it cannot be reached; the message says what to do."""


def running_demo(data_dir: Path | None, home: Path | None = None) -> demostate.DemoState:
    """The running demo of ``data_dir`` (or the one found from here, or in the checkout ``home``). Raises
    :class:`DemoNotRunning`."""
    state = demostate.find_running(data_dir, home=home)
    if state is None:
        where = data_dir if data_dir is not None else " or ".join(str(d) for d in demostate.candidate_dirs(home))
        raise DemoNotRunning(f"no running demo uses {where} (start it with `make demo`, or "
                             "`modelplatform demo` in the checkout)")
    return state


def show_rows(data_dir: Path | None, limit: int = 10, out: Callable[[str], None] = print, *,
              home: Path | None = None) -> int:
    """Print the latest ``limit`` audit rows of the running demo. Raises :class:`DemoNotRunning`."""
    import sqlalchemy as sa

    from modelplatform.settings import normalize_database_url

    state = running_demo(data_dir, home)
    engine = sa.create_engine(normalize_database_url(state.database_url))
    query = sa.text("select created_at, model, version, routed_by, experiment, status, latency_ms, output, error "
                    "from inferences order by created_at desc limit :limit")
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"limit": limit}).mappings().all()
    except sa.exc.OperationalError as exc:
        raise DemoNotRunning(f"cannot reach the demo's Postgres: {exc.orig}") from None
    finally:
        engine.dispose()
    out(f"{len(rows)} latest inference(s), newest first:")
    for row in rows:
        result = row["output"] if row["status"] == "ok" else row["error"]
        out(f"{row['created_at']:%H:%M:%S} {row['model']} {row['version']:<7} {row['routed_by']:<8} "
            f"{row['status']:<13} {row['latency_ms']:7.2f} ms  {json.dumps(result)[:100]}")
    return 0


def _log_records(path: Path, offset: int) -> Iterator[dict[str, Any] | None]:
    """The JSON records appended to ``path`` after ``offset``, forever; None when nothing new has come."""
    pending = ""
    with path.open("r", encoding="utf-8", errors="replace") as log:
        log.seek(offset)
        while True:
            chunk = log.readline()
            if not chunk:
                yield None
                continue
            pending += chunk
            if not pending.endswith("\n"):
                continue
            line, pending = pending, ""
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                yield doc


def _verdict(log: Path, offset: int, timeout: float) -> tuple[bool, list[str]]:
    """Wait for the master's ``reload accepted``/``reload refused``; returns (accepted, problems)."""
    deadline = time.monotonic() + timeout
    refused: dict[str, Any] | None = None
    listed: list[str] = []  # the "reload problem: …" lines that follow a refusal
    for doc in _log_records(log, offset):
        if doc is None:
            if refused is not None:  # its problem lines were written with it: all read by now
                return False, list(refused.get("problems") or listed or [str(refused.get("message"))])
            if time.monotonic() > deadline:
                raise DemoNotRunning(f"the demo's web server did not accept or refuse the config within "
                                     f"{timeout:.0f}s; see its log {log}")
            time.sleep(POLL_S)
            continue
        message = str(doc.get("message", ""))  # the master's public words, whichever logger writes them
        if refused is not None:
            if message.startswith("reload problem: "):
                listed.append(message.removeprefix("reload problem: "))
        elif message.startswith("reload accepted"):
            return True, []
        elif message.startswith("reload refused"):
            refused = doc
    raise AssertionError("unreachable: the log is followed until a verdict or the deadline")


def _readyz(base_url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
            return json.loads(response.read()) if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def reload(data_dir: Path | None, out: Callable[[str], None] = print, *, home: Path | None = None,
           verdict_timeout: float = VERDICT_TIMEOUT_S) -> int:
    """Reload the running demo's config (``kill -HUP`` to its gunicorn master) and report the verdict.

    Returns 0 when the new config was accepted and the old workers are gone, 1 when it was refused (the
    demo keeps serving its last good config; every problem is printed). Raises :class:`DemoNotRunning`.
    """
    import psutil

    state = running_demo(data_dir, home)
    config = demostate.shown_path(Path(state.models_config))
    log = Path(state.server_log)
    try:
        master = psutil.Process(state.server_pid)
        old_workers = master.children()
        offset = log.stat().st_size
        revision = hashlib.sha256(config.read_bytes()).hexdigest()[:12]
    except (psutil.Error, OSError) as exc:
        raise DemoNotRunning(f"cannot reach the demo's web server (pid {state.server_pid}): {exc}") from None
    out(f"reloading {config}: the server checks it first (rules, every artifact, each version loading, "
        "its examples)…")
    os.kill(state.server_pid, signal.SIGHUP)
    accepted, problems = _verdict(log, offset, verdict_timeout)
    if not accepted:
        out(f"reload refused: the demo keeps serving its last good config. {len(problems)} problem(s):")
        for problem in problems:
            out(f"  - {problem}")
        out("fix them and run `modelplatform demo reload` again (`modelplatform check-config` lists the same)")
        return 1
    _, alive = psutil.wait_procs(old_workers, timeout=WORKERS_TIMEOUT_S)
    deadline = time.monotonic() + WORKERS_TIMEOUT_S
    ready = _readyz(state.base_url)
    while (alive or ready is None) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        alive = [w for w in alive if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
        ready = _readyz(state.base_url)
    if alive or ready is None:
        raise DemoNotRunning(f"the config was accepted but the new workers were not serving within "
                             f"{WORKERS_TIMEOUT_S:.0f}s; see the server log {log}")
    served = ready.get("config_revision")
    out(f"reload accepted: {state.base_url} now serves {config} (revision {served}: {ready.get('models')} "
        f"model(s), {ready.get('versions')} version(s))")
    if served != revision:
        out(f"note: the file's revision is now {revision}: it changed after the reload began; reload again")
    return 0
