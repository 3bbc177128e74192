"""The gunicorn master's side of serving: artifacts fetched and verified once per host, models loaded before the
fork, and zero-downtime config reloads (``kill -HUP <master>``) that can be refused.

Called from the server hooks in :mod:`modelplatform.gunicorn_conf`. Every step that touches S3 or runs model code
*for checking* runs in a child process; the master itself imports neither boto3 nor anything that imports ``ssl``
names, so an event-driven worker can monkey-patch ``ssl`` after the fork.

**Start** (``on_starting``, before gunicorn listens or forks):

1. settings checked (every problem listed);
2. a snapshot of the operator's config is written to the master's runtime directory; workers only ever read
   snapshots, never the operator's file (``MODELS_CONFIG`` points at the current one);
3. *fetch step*: ``python -m modelplatform.host_artifacts SNAPSHOT --store URL --cache DIR`` downloads into the
   artifact cache (``ARTIFACT_CACHE_DIR``) every active version the cache lacks (one GET each), verifying each
   sha256 before it is renamed into the cache; it never unpickles. Cached versions are not downloaded at all,
   so a start with the store unreachable serves from the cache;
4. *check step* (``python -m modelplatform.reload SNAPSHOT --cache DIR``): everything ``modelplatform check-config``
   checks, reading the artifacts from the cache (no S3), each version loaded in a child of its own, with the
   allow-listed environment of :func:`modelplatform.childenv.loading_env`. Skipped when this host already
   checked the same config bytes with the same interpreter (a marker in the cache directory);
5. *preload* (unless ``PRELOAD_MODELS=0``): the master loads the registry from the verified cache and puts it
   in :mod:`modelplatform.handoff`; workers inherit it at the fork.

Any problem in 1–5 stops the start, listing each problem (model, version, reason): a bad deploy never serves.

**Reload** (``on_reload``, before gunicorn replaces any worker): steps 2–5 for the operator's edited file.
Any problem refuses the reload (logged with every problem) and new workers keep the last good config and its
preloaded models: a store that is unreachable, an object that changed, a model that does not load, never stop
the host. Versions unchanged since the last config are neither downloaded nor unpickled again.

``python -m modelplatform.reload PATH --cache DIR`` is the check step (prints JSON problems; exit 0). Both
children get what they need on their command line (the master's :class:`~modelplatform.settings.Settings`),
never from our variables in their environment; the environment variables the master sets for its workers are
:mod:`modelplatform.forkenv`'s.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from modelplatform import encoding, forkenv, handoff
from modelplatform.childenv import loading_env
from modelplatform.errors import StartupError
from modelplatform.settings import Settings, config_path_from

if TYPE_CHECKING:
    from modelplatform.artifact_cache import Holder
    from modelplatform.host_artifacts import FetchReport
    from modelplatform.registry import Registry
    from modelplatform.runtime_dir import RuntimeDir

log = logging.getLogger("modelplatform.reload")

FETCH_TIMEOUT_SECONDS = 1800  # downloading every missing artifact of a config
CHECK_TIMEOUT_SECONDS = 300
_CHECKED_DIR = "checked"


@dataclass
class MasterState:
    """What the master keeps between hooks (in the :mod:`modelplatform.handoff` slot)."""

    runtime: RuntimeDir | None = None  # removed at exit
    cache_holder: Holder | None = None  # the artifact cache entries this master needs
    needed: frozenset[str] = frozenset()  # sha256s of the config being served
    previously_needed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Outcome:
    """The result of preparing one snapshot: problems, or what workers get."""

    problems: list[str] = field(default_factory=list)
    prepared: handoff.Prepared | None = None


# ---- hooks ------------------------------------------------------------------------------------------------------

def on_starting() -> None:
    """Master start: steps 1–5. Raises ``SystemExit(1)`` after logging every problem when it cannot serve."""
    from modelplatform.runtime_dir import RuntimeDir

    runtime = None if forkenv.snapshot_dir() and forkenv.metrics_dir() else RuntimeDir.create()
    state = MasterState(runtime=runtime)
    handoff.put(handoff.Prepared(master_pid=os.getpid(), config_sha256="", master=state))
    _metrics_dir(runtime)

    source = forkenv.config_source() or config_path_from(os.environ)
    forkenv.set_config_source(source)
    try:
        settings = Settings.from_env()
        snapshot = _write_snapshot(source.read_bytes())
    except StartupError as exc:
        _refuse_start(source, exc.problems)
    except OSError as exc:
        _refuse_start(source, [f"cannot read config file {source}: {exc.strerror or exc}"])
    forkenv.set_config(snapshot)
    log.info("serving config %s from snapshot %s", source, snapshot, extra={"config": str(source)})

    outcome = prepare(snapshot, settings)
    if outcome.problems:
        _refuse_start(source, outcome.problems)
    assert outcome.prepared is not None  # prepare() returns problems or what to serve
    _serve(outcome.prepared, settings)


def on_reload() -> bool:
    """HUP: steps 2–5 for the operator's file; new workers switch to it only when all pass. True if switched."""
    prepared = handoff.current()
    state = prepared.master if prepared is not None else None
    if state is None:  # on_starting never ran in this process (a test): behave as a fresh start
        state = MasterState()
        handoff.put(handoff.Prepared(master_pid=os.getpid(), config_sha256="", master=state))
    source = forkenv.config_source() or config_path_from(os.environ)
    current = forkenv.config()
    try:
        settings = Settings.from_env()
        raw = source.read_bytes()
    except StartupError as exc:
        return _refuse_reload(source, current, exc.problems)
    except OSError as exc:
        return _refuse_reload(source, current, [f"cannot read {source}: {exc.strerror or exc}"])
    candidate = _write_snapshot(raw)
    outcome = prepare(candidate, settings)
    if outcome.problems:
        if candidate != current:
            candidate.unlink(missing_ok=True)
        return _refuse_reload(source, current, outcome.problems)
    forkenv.set_config(candidate)
    assert outcome.prepared is not None  # prepare() returns problems or what to serve
    _serve(outcome.prepared, settings)
    log.info("reload accepted: %s checked, new workers serve snapshot %s", source, candidate,
             extra={"config": str(source), "snapshot": str(candidate)})
    return True


def on_exit() -> None:
    """Graceful stop: remove the master's runtime directory and its record in the artifact cache."""
    prepared = handoff.current()
    state = prepared.master if prepared is not None else None
    if state is None:
        return
    if state.cache_holder is not None:
        state.cache_holder.close()
    if state.runtime is not None:
        state.runtime.remove()
    handoff.put(None)
    gc.unfreeze()


# ---- preparing a snapshot -------------------------------------------------------------------------------------

def prepare(snapshot: Path, settings: Settings) -> Outcome:
    """Fetch (child), check (child, unless already done on this host), then preload (here, unless
    ``PRELOAD_MODELS=0``) the config in ``snapshot``. Never raises for anything a config, store or model does."""
    from modelplatform.artifact_cache import ArtifactCache

    cache = ArtifactCache(settings.artifact_cache_dir)
    report, problems = _fetch(snapshot, settings)
    if report is None:
        return Outcome(problems=problems)
    if report.config_ok and not problems:
        downloads = report.downloads
        log.info("artifacts ready: %d version(s), %d downloaded from the store, %d from the artifact cache %s",
                 len(report.fetched), downloads, len(report.fetched) - downloads, cache.directory,
                 extra={"artifacts": [{"model": f.model, "version": f.version, "origin": f.origin}
                                      for f in report.fetched]})
    marker = cache.directory / _CHECKED_DIR / _check_key(snapshot.read_bytes())
    if problems or not report.config_ok or not marker.exists():
        started = time.monotonic()
        problems += _check_step(snapshot, settings, report)
        if not report.config_ok and not problems:  # cannot happen: both steps parse the same file
            problems.append(f"[config] {snapshot} does not load")
        if not problems:
            log.info("config checked in %.1fs: every version loaded in a child process, every example run",
                     time.monotonic() - started)
    else:
        log.info("config already checked on this host: check step skipped", extra={"marker": str(marker)})
    if problems:
        return Outcome(problems=problems)
    try:  # new, or in use again (see ArtifactCache.prune)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError as exc:  # a read-only cache: the next start checks again
        log.warning("cannot record the check in %s: %s", marker.parent, exc)

    prepared = handoff.Prepared(master_pid=os.getpid(), config_sha256=handoff.file_sha256(snapshot),
                                origins=report.origins())
    if settings.preload_models:
        try:
            prepared.registry = _preload(snapshot, settings, prepared)
        except StartupError as exc:
            return Outcome(problems=[f"[preload] {p}" for p in exc.problems])
    return Outcome(prepared=prepared)


def _preload(snapshot: Path, settings: Settings, prepared: handoff.Prepared) -> Registry:
    """The registry, loaded in this process from the verified cache, reusing what the current one holds."""
    from modelplatform.artifact_cache import ArtifactCache
    from modelplatform.config import load_config
    from modelplatform.host_artifacts import CachedArtifacts
    from modelplatform.registry import load_registry

    current = handoff.current()
    if current is not None and current.registry is not None and current.config_sha256 == prepared.config_sha256:
        return current.registry  # same bytes (a HUP with an unchanged file): nothing to load
    config = replace(load_config(snapshot), source=settings.config_label)
    source = CachedArtifacts(ArtifactCache(settings.artifact_cache_dir), store=None, origins=prepared.origins)
    try:
        registry = load_registry(config, source, location=settings.store or "",
                                 reuse=current.registry if current is not None else None)
    except (StartupError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # model code ran in this process: whatever it raised is a refusal, not a crash
        raise StartupError([f"loading the models in the master failed: {type(exc).__name__}: {exc}"]) from None
    holders = ssl_context_holders()
    if holders:
        log.warning("after loading the models the master holds ssl.SSLContext in %s: an event-driven worker cannot "
                    "monkey-patch those after the fork; if a model imports an HTTP client, set PRELOAD_MODELS=0",
                    ", ".join(holders), extra={"modules": holders})
    return registry


def ssl_context_holders() -> list[str]:
    """Modules other than ``ssl`` that hold ``ssl.SSLContext`` itself (urllib3 and botocore do): gevent can
    patch the ``ssl`` module in a worker, but not a class already copied into another module."""
    ssl = sys.modules.get("ssl")
    if ssl is None:
        return []
    return sorted(name for name, module in list(sys.modules.items())
                  if name != "ssl" and module is not None
                  and any(value is ssl.SSLContext for value in list(vars(module).values())))


def _serve(prepared: handoff.Prepared, settings: Settings) -> None:
    """Make ``prepared`` what the next forked workers get; keep the cache entries of this and the last config."""
    from modelplatform.artifact_cache import ArtifactCache

    current = handoff.current()
    state: MasterState = current.master if current is not None and current.master is not None else MasterState()
    prepared.master = state
    needed = frozenset(sha for (_, _, sha) in prepared.origins)
    if needed != state.needed:
        state.previously_needed, state.needed = state.needed, needed
    if current is not None and current.registry is not None and current.registry is not prepared.registry:
        gc.unfreeze()  # the old registry's objects become collectable again once the old workers are gone
    handoff.put(prepared)
    del current
    encoding.warm_up()  # before the fork and the freeze: shared by every worker
    gc.collect()
    # objects alive now (the models) are left out of every later collection, in the master and in the workers:
    # a collection writes to each object it visits, which would copy the shared pages into every worker
    gc.freeze()

    cache = ArtifactCache(settings.artifact_cache_dir)
    try:
        if state.cache_holder is None:
            state.cache_holder = cache.hold(f"master-{os.getpid()}", state.needed | state.previously_needed)
        else:
            state.cache_holder.update(state.needed | state.previously_needed)
        cache.prune()
    except OSError as exc:  # housekeeping: never a reason not to serve
        log.warning("artifact cache housekeeping failed: %s", exc)


# ---- child processes -----------------------------------------------------------------------------------------

def check(path: Path, *, settings: Settings | None = None) -> list[str]:
    """Every problem that would stop workers from serving ``path`` (empty when none), as ``[check] message``
    lines: the fetch step, then the check step (see :func:`prepare`, which also loads)."""
    settings = settings if settings is not None else Settings.from_env()
    report, problems = _fetch(path, settings)
    return problems if report is None else problems + _check_step(path, settings, report)


def _fetch(path: Path, settings: Settings) -> tuple[FetchReport | None, list[str]]:
    """The fetch step, in a child with S3 access: its report (None if the child failed) and its problems."""
    from modelplatform.host_artifacts import FetchReport

    argv = [sys.executable, "-m", "modelplatform.host_artifacts", str(path), "--store", str(settings.store),
            "--cache", str(settings.artifact_cache_dir.resolve())]
    out = _child_json(argv, _fetch_env(), FETCH_TIMEOUT_SECONDS, "fetching the artifacts")
    if isinstance(out, list):
        return None, out
    report = FetchReport.from_json(out)
    return report, [f"[store] {p}" for p in report.problems]


def _check_step(path: Path, settings: Settings, report: FetchReport) -> list[str]:
    """The check step, in a child with only :func:`~modelplatform.childenv.loading_env`: it reads artifacts
    from the cache (``--cache``), never from S3, and unpickles each one in a further child. Versions the fetch
    step could not provide are left out (already reported)."""
    argv = [sys.executable, "-m", "modelplatform.reload", str(path), "--cache",
            str(settings.artifact_cache_dir.resolve())]
    out = _child_json(argv, loading_env(), CHECK_TIMEOUT_SECONDS, "checking the config")
    if isinstance(out, list):
        return out
    present = {(f.model, f.version) for f in report.fetched}
    problems = []
    for p in json.loads(out):
        if p["check"] == "store" and report.problems and (p["model"], p["version"]) not in present:
            continue
        where = " ".join(x for x in (p["model"], p["version"]) if x)
        problems.append(f"[{p['check']}] " + (f"{where}: " if where else "") + p["message"])
    return problems


def _child_json(argv: list[str], env: dict[str, str], timeout: float, what: str) -> str | list[str]:
    """Run a child that prints one JSON document: its stdout, or a list with the one problem that stopped it."""
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"{what} took longer than {timeout:g}s"]
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout
    return [f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-2000:] or '(no output)'}"]


def _fetch_env() -> dict[str, str]:
    """The fetch step talks to S3, so it keeps the master's environment (credentials may come from any of
    boto3's variables) minus what it has no use for; it never runs model code."""
    return {k: v for k, v in os.environ.items()
            if k not in {forkenv.METRICS_DIR, "DATABASE_URL", "API_KEYS", "API_KEYS_FILE"}}


def _check_key(raw_config: bytes) -> str:
    """The check step's result holds for these config bytes (which pin every artifact's sha256) under this
    interpreter and this modelplatform; anything else is checked again."""
    import hashlib

    try:
        ours = metadata.version("modelplatform")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    key = hashlib.sha256(raw_config)
    key.update(f"\0{sys.executable}\0{sys.version}\0{ours}".encode())
    return key.hexdigest()


# ---- helpers ----------------------------------------------------------------------------------------------------

def _metrics_dir(runtime: RuntimeDir | None) -> None:
    # Metrics from every worker are summed through files in this directory. It must be in the environment before
    # any worker imports prometheus-client (which picks its storage at import); the master imports it only in
    # child_exit, after this.
    directory = forkenv.metrics_dir()
    if directory is None:
        assert runtime is not None  # on_starting creates one unless both directories are the operator's
        directory = runtime.metrics_dir
        forkenv.set_metrics_dir(directory)
    for path in directory.glob("*.db"):  # values left by a previous run would be summed with this one's
        path.unlink()
    # and so would a previous run's boot state: its "a worker has booted" would let this run's first,
    # broken workers retry forever instead of failing the deploy
    from modelplatform import bootstate

    bootstate.clear(directory)


def _snapshot_dir() -> Path:
    existing = forkenv.snapshot_dir()
    if existing is not None:
        return existing
    prepared = handoff.current()
    runtime = prepared.master.runtime if prepared is not None and prepared.master is not None else None
    if runtime is None:
        from modelplatform.runtime_dir import RuntimeDir

        runtime = RuntimeDir.create()
        if prepared is not None and prepared.master is not None:
            prepared.master.runtime = runtime
    forkenv.set_snapshot_dir(runtime.config_dir)
    return runtime.config_dir


def _write_snapshot(raw: bytes) -> Path:
    import hashlib

    path = _snapshot_dir() / f"models-{hashlib.sha256(raw).hexdigest()[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path


def _refuse_start(source: Path, problems: list[str]) -> None:
    log.error("startup refused: %s has %d problem(s); not serving", source, len(problems),
              extra={"config": str(source), "problems": problems})
    for problem in problems:
        log.error("startup problem: %s", problem, extra={"config": str(source)})
    on_exit()
    raise SystemExit("modelplatform cannot start:\n" + "\n".join(f"  - {p}" for p in problems))


def _refuse_reload(source: Path, current: Path | None, problems: list[str]) -> bool:
    log.error("reload refused: %s has %d problem(s); new workers keep the last good config %s",
              source, len(problems), current, extra={"config": str(source), "problems": problems})
    for problem in problems:
        log.error("reload problem: %s", problem, extra={"config": str(source)})
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """The check step: print, as a JSON list, every problem ``modelplatform check-config`` finds in CONFIG with
    the artifacts read from the artifact cache ``--cache`` (a version missing there is a ``store`` problem)."""
    import argparse

    from modelplatform.artifact_cache import ArtifactCache
    from modelplatform.checks import check_config
    from modelplatform.config import inspect_config
    from modelplatform.store import ArtifactError

    parser = argparse.ArgumentParser(prog="python -m modelplatform.reload",
                                     description="The gunicorn master's check step (prints JSON problems).")
    parser.add_argument("config")
    parser.add_argument("--cache", type=Path, required=True, help="the host's artifact cache directory")
    args = parser.parse_args(argv)
    cache = ArtifactCache(args.cache)
    pinned = {(spec.name, version): spec.sha256.get(version)
              for spec in inspect_config(args.config).specs.values() for version in spec.active_versions}

    class CacheReader:
        """What check_config asks of a store, answered from the verified cache."""

        def fetch(self, model: str, version: str) -> bytes:
            sha256 = pinned.get((model, version))
            data = cache.read(sha256) if sha256 else None
            if data is None:
                raise ArtifactError(model, version, f"no verified copy in the artifact cache {cache.directory}")
            return data

    problems = check_config(args.config, CacheReader())
    print(json.dumps([p.as_dict() for p in problems]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
