"""The one process-level slot: what a gunicorn master prepared, handed to the workers it forks.

The master (:mod:`modelplatform.reload`, from gunicorn's server hooks) fetches and verifies every artifact,
loads the registry (unpickled models, compiled schemas) and puts it here *before* forking. A fork copies the
master's memory by reference, so every worker inherits this slot and shares the models' pages copy-on-write;
a worker that is respawned (a crash, ``max_requests``, ``TTIN``) has its models the instant it exists, without
reading the store or even the cache. ``create_app()`` asks :func:`for_worker` and uses what it finds only when
it was prepared for the very config file the worker serves.

Why a module-level variable, against the house rule: a fork hands over memory, not arguments; gunicorn creates
the worker and calls ``create_app()`` with nothing from the master. This slot is the only such state, it is
written only by the master's hooks and read only by ``create_app()``, and it never holds connections, threads,
the audit log or metrics (each worker makes its own after the fork).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelplatform.registry import Registry


@dataclass
class Prepared:
    """What the master prepared for one config snapshot (the file whose sha256 is ``config_sha256``)."""

    master_pid: int
    config_sha256: str
    # (model, version, sha256) → "store" | "cache": where the master's fetch step got each file
    origins: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # the loaded models, or None when preloading is off (PRELOAD_MODELS=0): workers then load from the cache
    registry: Registry | None = None
    # master-only bookkeeping that must outlive gunicorn re-reading its config module on HUP
    master: Any = None


_slot: Prepared | None = None


def put(prepared: Prepared | None) -> None:
    """Master only: what the next forked workers get (None empties the slot)."""
    global _slot
    _slot = prepared


def current() -> Prepared | None:
    """Master only: what the slot holds."""
    return _slot


def for_worker(config_path: str | Path) -> Prepared | None:
    """In a process forked from the master: what it prepared, if it was prepared for ``config_path``'s exact
    bytes; None anywhere else (the master itself, tests, a process that was not forked from a master)."""
    prepared = _slot
    if prepared is None or prepared.master_pid == os.getpid():
        return None
    try:
        digest = file_sha256(config_path)
    except OSError:
        return None
    return prepared if digest == prepared.config_sha256 else None


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
