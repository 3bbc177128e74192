"""Process plumbing through the environment: what a gunicorn master hands the workers it forks.

A fork passes memory and the environment, not arguments: gunicorn calls ``create_app()`` in each worker with
nothing from the master. The loaded models travel in memory (:mod:`modelplatform.handoff`); these few values
travel in environment variables, and this module is the only one that reads or writes them (settings proper
are read by :mod:`modelplatform.settings`):

=================================== ======================================================= ===========================
variable                            written by                                              read by
=================================== ======================================================= ===========================
``MODELS_CONFIG``                   the operator (a setting); then the master, pointing it   ``Settings.from_env`` in
                                    at the snapshot of the config it checked and loaded      each worker
``MODELPLATFORM_CONFIG_SOURCE``     the master: the operator's file, re-read on every HUP    the master; each worker's
                                                                                             ``Settings.config_source``
``MODELPLATFORM_CONFIG_SNAPSHOTS``  the operator (optional), else the master: where the      the master
                                    snapshots go
``PROMETHEUS_MULTIPROC_DIR``        the operator (optional), else the master: its private    prometheus-client itself,
                                    ``metrics/`` directory                                   at import (so it must be
                                                                                             the environment);
                                                                                             ``Settings.metrics_dir``
                                                                                             (→ ``Metrics``),
                                                                                             ``bootstate``
=================================== ======================================================= ===========================
"""
from __future__ import annotations

import os
from pathlib import Path

CONFIG = "MODELS_CONFIG"
CONFIG_SOURCE = "MODELPLATFORM_CONFIG_SOURCE"
SNAPSHOTS = "MODELPLATFORM_CONFIG_SNAPSHOTS"
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


def config() -> Path | None:
    """The config file workers read now (the master's current snapshot, under gunicorn)."""
    return _path(CONFIG)


def set_config(snapshot: Path) -> None:
    """Master only: the next forked workers serve ``snapshot``."""
    os.environ[CONFIG] = str(snapshot)


def config_source() -> Path | None:
    """The operator's config file, once the master has recorded it (None before)."""
    return _path(CONFIG_SOURCE)


def set_config_source(path: Path) -> None:
    os.environ[CONFIG_SOURCE] = str(path)


def snapshot_dir() -> Path | None:
    return _path(SNAPSHOTS)


def set_snapshot_dir(path: Path) -> None:
    os.environ[SNAPSHOTS] = str(path)


def metrics_dir() -> Path | None:
    """Where the workers of this master write their metric values (and boot state); None outside gunicorn."""
    return _path(METRICS_DIR)


def set_metrics_dir(path: Path) -> None:
    """Master only, before any worker imports prometheus-client (which chooses its storage at import)."""
    os.environ[METRICS_DIR] = str(path)
