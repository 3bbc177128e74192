"""The host's content-addressed copy of verified model files: ``ARTIFACT_CACHE_DIR`` (default ``var/artifacts``).

Layout::

    <dir>/sha256/<2 hex>/<64 hex>   one model file, named by the sha256 of its bytes (read-only, never edited)
    <dir>/tmp/                      downloads in progress (same filesystem, so a rename publishes them)
    <dir>/locks/<64 hex>.lock       one lock per entry, so processes filling the same entry download it once
    <dir>/refs/<owner>.json|.lock   the sha256s a running gunicorn master still needs (see :meth:`prune`)
    <dir>/checked/<key>             configs whose check step passed on this host (:mod:`modelplatform.reload`)

What it guarantees:

- **Whole or absent.** A download goes to ``tmp/``, is hashed while written, fsynced, and renamed into place only
  when its sha256 is the one asked for; the directory is fsynced after the rename. A reader sees the complete
  file or no file, never a partial one, whatever process dies when.
- **Verified on every read.** :meth:`read` returns bytes only after hashing them and finding the entry's name;
  a file damaged on disk (or edited by hand) is reported as a miss and is never handed to dill. :meth:`ensure`
  replaces such an entry with a fresh download.
- **Many fillers.** Workers, masters and CLI runs on one host may fill the same directory at once: an entry's
  flock serialises its fillers (the second finds the entry the first wrote and downloads nothing); readers take
  no lock, since entries only ever appear by an atomic rename.

Nothing here imports boto3: what a download does is the caller's ``download`` callable, so the gunicorn master
can read the cache without loading the S3 client (see :mod:`modelplatform.reload`).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelplatform.fsutil import fsync_dir

log = logging.getLogger(__name__)

STORE, CACHE = "store", "cache"  # where an entry came from for this start: downloaded now, or already here
DEFAULT_UNUSED_SECONDS = 3600
CHECKED_MARKER_DAYS = 30
_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CacheDigestMismatch(Exception):
    """A download's bytes do not hash to the sha256 asked for; nothing was written to the cache."""

    def __init__(self, expected: str, found: str) -> None:
        self.expected, self.found = expected, found
        super().__init__(f"expected sha256 {expected}, downloaded bytes have {found}")


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


@dataclass(frozen=True)
class PruneReport:
    removed: tuple[str, ...]
    kept: int


class ArtifactCache:
    """One cache directory. Safe to share between threads and processes; holds no open files between calls."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    # ---- layout -------------------------------------------------------------------------------------------
    def path(self, sha256: str) -> Path:
        sha256 = _checked(sha256)
        return self.directory / "sha256" / sha256[:2] / sha256

    def _dirs(self) -> None:
        for name in ("sha256", "tmp", "locks", "refs"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)

    # ---- reading --------------------------------------------------------------------------------------------
    def read(self, sha256: str) -> bytes | None:
        """The entry's bytes if it exists and hashes to ``sha256``; None when missing or damaged (logged)."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        found = hashlib.sha256(data).hexdigest()
        if found != sha256:
            log.warning("artifact cache entry damaged: %s hashes to %s; not used, refetched when the store "
                        "is reachable", path, found, extra={"sha256": sha256, "found": found})
            return None
        _touch(path)
        return data

    def has(self, sha256: str) -> bool:
        """Whether a verified entry exists (hashes the file)."""
        return self._verified(self.path(sha256))

    # ---- filling --------------------------------------------------------------------------------------------
    def ensure(self, sha256: str, download: Callable[[BinaryIO], None]) -> str:
        """Make sure a verified entry for ``sha256`` exists: :data:`CACHE` if it already did, :data:`STORE` if
        ``download`` (which writes the file's bytes to the file object it is given) had to be called.

        Raises :class:`CacheDigestMismatch` (nothing is cached) when the downloaded bytes hash to something
        else, and whatever ``download`` raises.
        """
        path = self.path(sha256)
        if self._verified(path):
            return CACHE
        self._dirs()
        with self._entry_lock(sha256):
            if self._verified(path):  # another process filled it while we waited for the lock
                return CACHE
            path.unlink(missing_ok=True)  # a damaged entry: never leave it behind a failed download
            fd, tmp_name = tempfile.mkstemp(dir=self.directory / "tmp", prefix=sha256[:16] + ".")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    writer = _HashingWriter(out)
                    download(writer)  # type: ignore[arg-type]
                    out.flush()
                    os.fsync(out.fileno())
                found = writer.digest.hexdigest()
                if found != sha256:
                    raise CacheDigestMismatch(sha256, found)
                os.chmod(tmp, 0o444)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                fsync_dir(path.parent)
            finally:
                tmp.unlink(missing_ok=True)
            return STORE

    def put(self, data: bytes) -> str:
        """Add ``data`` under its own sha256 (returned); a no-op when a verified entry exists."""
        sha256 = hashlib.sha256(data).hexdigest()
        def write(out: BinaryIO) -> None:
            out.write(data)

        self.ensure(sha256, write)
        return sha256

    # ---- eviction --------------------------------------------------------------------------------------------
    def hold(self, owner: str, needed: Iterable[str]) -> Holder:
        """Record that ``owner`` (a running master) needs ``needed``; the record lasts while the returned
        :class:`Holder` is open (its lock dies with the process, so a killed master's record is ignored)."""
        self._dirs()
        holder = Holder(self.directory / "refs" / owner)
        holder.update(needed)
        return holder

    def prune(self, *, unused_seconds: float = DEFAULT_UNUSED_SECONDS) -> PruneReport:
        """Remove entries that no running master needs and that nobody has used for ``unused_seconds``.

        "Needed" is the union of the records of every live :class:`Holder` on this directory (each master
        records the sha256s of its current and previous config). The idle time protects entries that a
        process has just fetched and not yet recorded, and those of `create_app()` outside gunicorn.
        Also removes downloads abandoned in ``tmp/``, records of dead masters, and check markers unused for
        :data:`CHECKED_MARKER_DAYS` days.
        """
        if not (self.directory / "sha256").is_dir():
            return PruneReport((), 0)
        needed = set(self._live_needs())
        cutoff = time.time() - unused_seconds
        removed, kept = [], 0
        for entry in (self.directory / "sha256").glob("*/*"):
            try:
                if entry.name in needed or entry.stat().st_mtime > cutoff:
                    kept += 1
                    continue
                with self._entry_lock(entry.name):
                    if entry.stat().st_mtime > cutoff:  # used while we waited
                        kept += 1
                        continue
                    entry.unlink()
                (self.directory / "locks" / f"{entry.name}.lock").unlink(missing_ok=True)
                removed.append(entry.name)
            except FileNotFoundError:
                continue
        for marker in (self.directory / "checked").glob("*"):  # see modelplatform.reload: cheap to redo
            try:
                if marker.stat().st_mtime < time.time() - CHECKED_MARKER_DAYS * 86400:
                    marker.unlink()
            except FileNotFoundError:
                continue
        for leftover in (self.directory / "tmp").glob("*"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
            except FileNotFoundError:
                continue
        if removed:
            log.info("artifact cache pruned: %d unused entr%s removed, %d kept", len(removed),
                     "y" if len(removed) == 1 else "ies", kept, extra={"removed": removed})
        return PruneReport(tuple(removed), kept)

    def _live_needs(self) -> Iterator[str]:
        for lock_path in (self.directory / "refs").glob("*.lock"):
            record = lock_path.with_suffix(".json")
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                try:  # held: its master is alive
                    yield from json.loads(record.read_text())
                except (OSError, ValueError):
                    pass
            else:  # nobody holds it: the master that wrote it is gone
                record.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
            finally:
                os.close(fd)

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _verified(self, path: Path) -> bool:
        try:
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except FileNotFoundError:
            return False
        if digest != path.name:
            log.warning("artifact cache entry damaged: %s hashes to %s", path, digest,
                        extra={"sha256": path.name, "found": digest})
            return False
        _touch(path)
        return True

    @contextmanager
    def _entry_lock(self, sha256: str) -> Iterator[None]:
        (self.directory / "locks").mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "locks" / f"{sha256}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


class Holder:
    """A live record of the sha256s one master needs: ``refs/<owner>.json`` beside a lock held until close."""

    def __init__(self, base: Path) -> None:
        self.record = base.with_suffix(".json")
        self.lock_path = base.with_suffix(".lock")
        # locked under a name prune() does not look at, then renamed: prune never sees it unlocked
        fresh = base.with_suffix(".lock-new")
        self._fd: int | None = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(fresh, self.lock_path)

    def update(self, needed: Iterable[str]) -> None:
        tmp = self.record.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(sorted(set(needed))))
        os.replace(tmp, self.record)

    def close(self) -> None:
        if self._fd is not None:
            self.record.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _checked(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def _touch(path: Path) -> None:
    """Mark an entry as used now (its mtime is its last use; see :meth:`ArtifactCache.prune`)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache is still a cache
        pass

