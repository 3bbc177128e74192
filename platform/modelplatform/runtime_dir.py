"""A gunicorn master's private working directory: config snapshots and Prometheus multiprocess files.

One directory per master, ``<temp dir>/modelplatform-run-XXXXXXXX/`` with ``config/`` (the checked snapshots
workers read, see :mod:`modelplatform.reload`) and ``metrics/`` (``PROMETHEUS_MULTIPROC_DIR``). The master
removes it at exit (gunicorn's ``on_exit``: a graceful stop, or a refused start). A master that was killed
cannot; so each directory holds a lock the master keeps while it lives (released by the kernel when it dies),
and every master start removes the directories of the current user whose lock nobody holds.

Directories an operator names (``PROMETHEUS_MULTIPROC_DIR``, ``MODELPLATFORM_CONFIG_SNAPSHOTS``) are theirs and
never removed.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "modelplatform-run-"
LOCK_NAME = ".master.lock"
# a directory without its lock yet is being created by a master that is starting: leave it that long
_CREATING_GRACE_SECONDS = 300


class RuntimeDir:
    """Create with :meth:`create`; :meth:`remove` deletes it (idempotent)."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def create(cls, parent: str | Path | None = None) -> RuntimeDir:
        parent = Path(parent or tempfile.gettempdir())
        sweep_stale(parent)
        path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for name in ("config", "metrics"):
            (path / name).mkdir()
        return cls(path, fd)

    @property
    def config_dir(self) -> Path:
        return self.path / "config"

    @property
    def metrics_dir(self) -> Path:
        return self.path / "metrics"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def sweep_stale(parent: Path) -> list[Path]:
    """Remove this user's runtime directories in ``parent`` whose master is gone; the ones removed."""
    removed = []
    for path in parent.glob(PREFIX + "*"):
        try:
            if not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
            lock = path / LOCK_NAME
            if not lock.exists():
                if time.time() - path.stat().st_mtime > _CREATING_GRACE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
                continue
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its master is alive
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.info("removed %d runtime director%s left by stopped masters", len(removed),
                 "y" if len(removed) == 1 else "ies", extra={"removed": [str(p) for p in removed]})
    return removed
