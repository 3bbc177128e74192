"""The outage spool: a local, fsynced, append-only file per process, used only while Postgres is unreachable.

File layout (``AUDIT_SPOOL_DIR``): ``audit-<host>-<pid>-<random>.jsonl``, one JSON object per line (the
row's column values). The owning process holds an exclusive ``flock`` on its file for its whole life,
so a file whose lock can be taken belongs to a process that is gone: any process may then replay it
and remove it. Files are created under a temporary name and renamed once locked, so a replaying
process never sees a live file unlocked.

Replay inserts with ``ON CONFLICT (id, created_at) DO NOTHING`` (each line keeps the row's
``created_at``), so replaying a file twice (a crash between the commit and the truncate) stores
nothing twice. Rows the database rejects (a data error, not an
outage) are moved to ``rejected-<file>`` with the reason, logged, and never retried in a loop.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

import orjson
import psycopg2.extensions

from modelplatform.audit import rows as audit_rows
from modelplatform.audit.base import AuditMeter, NoMeter
from modelplatform.fsutil import fsync_dir as _fsync_dir

log = logging.getLogger(__name__)

SPOOL_PATTERN = "audit-*.jsonl"
REPLAY_CHUNK = 500


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Spool:
    """One process's spool file plus takeover of files left by dead processes. Not thread-safe: the
    audit writer thread is its only user (``depth`` may be read from any thread). Every change of depth,
    append, replay and dead letter is reported to ``meter`` (``/metrics``)."""

    def __init__(self, directory: Path, meter: AuditMeter | None = None) -> None:
        self.directory = Path(directory)
        self.meter: AuditMeter = meter if meter is not None else NoMeter()
        self.depth = 0  # records in this process's file, not yet replayed
        self._fd: int | None = None
        self._path: Path | None = None
        self._replayed_offset = 0  # bytes of this process's file already replayed
        self._pid = os.getpid()

    @property
    def path(self) -> Path | None:
        """This process's spool file, once something was spooled."""
        return self._path

    def writable(self) -> bool:
        """Whether an append would find a writable directory (checked without creating anything)."""
        if self._fd is not None and self._pid == os.getpid():
            return True
        candidate = self.directory
        while not candidate.exists() and candidate != candidate.parent:
            candidate = candidate.parent
        return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)

    def _own_fd(self) -> int:
        if self._pid != os.getpid():
            # a fork: the parent's file and lock are not ours (closing our copy keeps the parent's lock)
            if self._fd is not None:
                os.close(self._fd)
            self._fd, self._path, self._pid = None, None, os.getpid()
            self._set_depth(0)
            self._replayed_offset = 0
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"audit-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            staging = self.directory / f".{name}.new"
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(staging, self.directory / name)
                _fsync_dir(self.directory)
            except OSError:
                os.close(fd)
                raise
            self._fd, self._path = fd, self.directory / name
            log.warning("audit spool opened", extra={"spool_file": str(self._path)})
        return self._fd

    def append(self, rows: Sequence[audit_rows.Row]) -> None:
        """Append ``rows`` and fsync. Raises :class:`OSError` (disk full, unwritable directory); the
        file is then cut back to its previous length so a torn record never precedes later ones."""
        fd = self._own_fd()
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        offset = os.lseek(fd, 0, os.SEEK_END)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, offset)
            except OSError:
                self._abandon()
            raise
        self._set_depth(self.depth + len(rows), spooled=len(rows))

    def has_leftovers(self) -> bool:
        """Whether the directory holds spool files other than this process's own (cheap: no locking)."""
        return self.directory.is_dir() and any(p != self._path for p in self.directory.glob(SPOOL_PATTERN))

    def release_if_empty(self) -> None:
        """Remove this process's file when nothing is left in it (an idle writer's clean-up)."""
        if self._fd is not None and self._pid == os.getpid() and self.depth == 0 and self._path is not None \
                and os.fstat(self._fd).st_size == 0:
            self._path.unlink(missing_ok=True)
            self._abandon()

    def close(self) -> None:
        """Release this process's file and its lock; what it still holds is replayed by whoever comes next."""
        if self._pid == os.getpid():
            self._abandon()

    def _abandon(self) -> None:
        # a file we cannot repair: stop appending to it; its torn tail is skipped when it is replayed
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._path, self._replayed_offset = None, None, 0

    def replay(self, conn: psycopg2.extensions.connection) -> int:
        """Replay all of this process's file (then truncate it) and every file of a dead process (then
        remove it). Returns the number of records replayed.

        Raises :class:`psycopg2.OperationalError`/``InterfaceError`` when the database goes away
        mid-replay (what was committed stays; the rest is replayed next time, idempotently), and
        :class:`OSError` for filesystem errors.
        """
        replayed = 0
        while self.depth and self._fd is not None:
            replayed += self.replay_some(conn)
        replayed += self.take_over_orphans(conn)
        if self._fd is None:
            self._set_depth(0)  # a file of ours we had to abandon is unlocked, so it was taken over just now
        return replayed

    def replay_some(self, conn: psycopg2.extensions.connection, limit: int = REPLAY_CHUNK) -> int:
        """Replay up to ``limit`` records of this process's file, from where the last call stopped, so the
        writer can interleave replay with live batches without making them wait for a whole spool.
        The file is truncated once all of it is replayed. Errors as :meth:`replay`."""
        if self._fd is None or self._pid != os.getpid() or self._path is None:
            return 0
        with open(self._path, "rb") as file:
            file.seek(self._replayed_offset)
            lines = list(islice(file, limit))
            end = file.tell()
        replayed = self._store(conn, self._path, lines)
        self._replayed_offset = end
        depth = max(self.depth - len(lines), 0)
        if end >= os.fstat(self._fd).st_size:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self._replayed_offset, depth = 0, 0
        self._set_depth(depth)
        return replayed

    def take_over_orphans(self, conn: psycopg2.extensions.connection) -> int:
        """Replay and remove the spool files whose owner is gone (their lock is free)."""
        if not self.directory.is_dir():
            return 0
        replayed = 0
        for path in sorted(self.directory.glob(SPOOL_PATTERN)):
            if path == self._path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another process took it over first
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive and replays it itself
                if not path.exists():
                    continue  # replayed and removed by another process between our open and lock
                log.warning("audit spool takeover", extra={"spool_file": str(path)})
                replayed += self._replay_file(conn, path)
                path.unlink()
                _fsync_dir(self.directory)
            finally:
                os.close(fd)
        return replayed

    def _replay_file(self, conn: psycopg2.extensions.connection, path: Path) -> int:
        replayed = 0
        with open(path, "rb") as file:
            while lines := list(islice(file, REPLAY_CHUNK)):
                replayed += self._store(conn, path, lines)
        return replayed

    def _store(self, conn: psycopg2.extensions.connection, path: Path, lines: list[bytes]) -> int:
        rows: list[audit_rows.Row] = []
        for line in lines:
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                # only a crash mid-append leaves this (at the tail), and that record was never confirmed
                self._dead_letter(path, line.rstrip(b"\n"), "not a complete record")
        rejected = audit_rows.store(conn, rows) if rows else []
        for index, reason in rejected:
            self._dead_letter(path, orjson.dumps(rows[index]), reason)
        replayed = len(rows) - len(rejected)
        self.meter.spool_changed(self.depth, replayed=replayed)
        if replayed:
            log.info("audit spool replayed %d record(s)", replayed, extra={"spool_file": str(path)})
        return replayed

    def _set_depth(self, depth: int, *, spooled: int = 0) -> None:
        self.depth = depth
        self.meter.spool_changed(depth, spooled=spooled)

    def _dead_letter(self, path: Path, data: bytes, reason: str) -> None:
        self.meter.spool_changed(self.depth, dead_lettered=1)
        log.error("audit record rejected during spool replay; kept in the rejected file",
                  extra={"spool_file": str(path), "reason": reason})
        target = path.with_name("rejected-" + path.name)
        with open(target, "ab") as file:
            file.write(orjson.dumps({"reason": reason, "record": data.decode("utf-8", "replace")}) + b"\n")
            file.flush()
            os.fsync(file.fileno())
