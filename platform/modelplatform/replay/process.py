"""The parent side of the replay child: start it, feed it batches, survive whatever it does.

Unpickling a model file runs its code, so the candidate never runs in the CLI's process: it runs in
``python -P -m modelplatform.replay.child`` with :func:`modelplatform.childenv.loading_env` as its whole
environment, in its own session (a Ctrl-C on the terminal reaches the CLI, which then stops the child;
a timeout kills the child's whole process group).

:class:`Replayer` keeps two batches in flight, so the child predicts batch *k+1* while the CLI compares
and stores batch *k*. When the child dies (``os._exit``, a segfault) or a batch times out, the child is
killed and restarted and the affected batches are replayed one input at a time: the input during which
the child dies again (or times out) is that input's ``error`` outcome, and the others get their real
outcome.
"""
from __future__ import annotations

import io
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from modelplatform import encoding
from modelplatform.childenv import loading_env
from modelplatform.replay.frames import HEADER, pack

DEFAULT_LOAD_TIMEOUT_S = 120.0
DEFAULT_BATCH_TIMEOUT_S = 60.0
DEFAULT_MAX_RESTARTS = 50
STDERR_TAIL_BYTES = 4000
IN_FLIGHT = 2

#: one outcome from the child: ``[status, output_json, error]``
Outcome = list[Any]
T = TypeVar("T")


class CandidateLoadError(Exception):
    """The candidate did not load in the child (or the child died while loading); the message says why."""


class ChildFailed(Exception):
    """The child died or did not answer within its deadline; ``outcome`` is what its input gets."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class TooManyRestarts(Exception):
    """The child died or timed out more often than allowed: the replay stops."""


@dataclass(frozen=True)
class CandidateSpec:
    """What the child needs: the model file's verified bytes, their sha256 and the schema to validate with."""

    model: str
    version: str
    sha256: str
    data: bytes
    schema: Any


class CandidateProcess:
    """One running child with the candidate loaded. Not thread-safe: one caller drives it."""

    def __init__(self, spec: CandidateSpec, *, load_timeout: float = DEFAULT_LOAD_TIMEOUT_S) -> None:
        """Start the child and wait until the candidate is loaded.

        Raises :class:`CandidateLoadError` when it does not load, dies or does not answer in ``load_timeout``.
        """
        self.spec = spec
        self.max_rss_kib = 0
        # -P: the working directory is not importable, as on the server
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "modelplatform.replay.child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=loading_env(), start_new_session=True)
        self._buffer = bytearray()
        self._stderr_tail: deque[bytes] = deque()
        self._stderr_size = 0
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="replay-child-writer", daemon=True)
        self._reader = threading.Thread(target=self._drain_stderr, name="replay-child-stderr", daemon=True)
        self._writer.start()
        self._reader.start()
        self.send(encoding.dumps({"model": spec.model, "version": spec.version, "sha256": spec.sha256,
                                  "schema": spec.schema}))
        self.send(spec.data)
        try:
            hello = encoding.loads(self.receive(load_timeout))
        except ChildFailed as exc:
            self.kill()
            raise CandidateLoadError(f"{spec.model} {spec.version}: {exc}") from None
        if "error" in hello:
            self.kill()
            raise CandidateLoadError(hello["error"])
        self.predictor_type: str = hello["predictor_type"]

    # --- pipes -------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        # a thread, so writing batch k+1 never waits on the child writing batch k's outcomes (no deadlock
        # when both pipes are full)
        stdin = self._proc.stdin
        assert stdin is not None
        while (frame := self._outbox.get()) is not None:
            try:
                stdin.write(frame)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return  # the child is gone; receive() reports how it ended
        try:
            stdin.close()
        except OSError:
            pass

    def _drain_stderr(self) -> None:
        stderr = self._proc.stderr
        assert isinstance(stderr, io.BufferedReader)  # a pipe, buffered (Popen's default)
        for chunk in iter(lambda: stderr.read1(65536), b""):
            self._stderr_tail.append(chunk)
            self._stderr_size += len(chunk)
            while self._stderr_size > STDERR_TAIL_BYTES and len(self._stderr_tail) > 1:
                self._stderr_size -= len(self._stderr_tail.popleft())

    def stderr_tail(self) -> str:
        return b"".join(self._stderr_tail)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()

    def send(self, payload: bytes) -> None:
        self._outbox.put(pack(payload))

    def receive(self, timeout: float) -> bytes:
        """The next frame from the child. Raises :class:`ChildFailed` when it dies or times out."""
        deadline = time.monotonic() + timeout
        header = self._read_exact(HEADER.size, deadline, timeout)
        (size,) = HEADER.unpack(header)
        return self._read_exact(size, deadline, timeout)

    def _read_exact(self, size: int, deadline: float, timeout: float) -> bytes:
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.kill()
                raise ChildFailed(f"no answer within {timeout:g}s (the child process was killed)",
                                  ["error", None, {"type": "ReplayTimeout",
                                                   "message": f"no answer within {timeout:g}s"}])
            chunk = os.read(fd, max(65536, size - len(self._buffer)))
            if not chunk:
                raise self._died()
            self._buffer += chunk
        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        return frame

    def _died(self) -> ChildFailed:
        try:
            code = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._proc.returncode
        how = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with status {code}")
        self._reader.join(timeout=2)
        tail = self.stderr_tail()
        message = f"the replay process {how}" + (f": {tail[-500:]}" if tail else "")
        return ChildFailed(message, ["error", None, {"type": "ProcessDied", "message": f"the replay process {how}"}])

    # --- life cycle --------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to finish (end of its stdin), read its farewell, and reap it."""
        self._outbox.put(None)
        try:
            bye = encoding.loads(self.receive(timeout))
            self.max_rss_kib = int(bye.get("max_rss_kib", 0))
        except (ChildFailed, ValueError):
            pass
        self.kill()

    def kill(self) -> None:
        """Kill the child's whole process group (whatever the model started too) and reap it."""
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._outbox.put(None)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self._proc.stdout, self._proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


@dataclass
class Batch(Generic[T]):
    """Inputs to replay (JSON texts) and whatever the caller keeps beside them (``rows``)."""

    inputs: list[bytes]
    rows: T


class Replayer:
    """Runs batches through the candidate, restarting its process when it dies or hangs."""

    def __init__(self, spec: CandidateSpec, *, batch_timeout: float = DEFAULT_BATCH_TIMEOUT_S,
                 load_timeout: float = DEFAULT_LOAD_TIMEOUT_S, max_restarts: int = DEFAULT_MAX_RESTARTS) -> None:
        """Start the first child. Raises :class:`CandidateLoadError`."""
        self.spec = spec
        self.batch_timeout = batch_timeout
        self.load_timeout = load_timeout
        self.max_restarts = max_restarts
        self.restarts = 0
        self.child_max_rss_kib = 0
        self.failures: list[str] = []  # why each restart happened, for the report
        self._child: CandidateProcess | None = CandidateProcess(spec, load_timeout=load_timeout)
        self.predictor_type = self._child.predictor_type

    def run(self, batches: Iterable[Batch[T]]) -> Iterator[tuple[Batch[T], list[Outcome]]]:
        """Each batch with its outcomes, in order. Raises :class:`TooManyRestarts`, :class:`CandidateLoadError`."""
        in_flight: deque[Batch[T]] = deque()
        for batch in batches:
            self._alive().send(_array(batch.inputs))
            in_flight.append(batch)
            if len(in_flight) >= IN_FLIGHT:
                yield from self._collect(in_flight)
        while in_flight:
            yield from self._collect(in_flight)

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
            self.child_max_rss_kib = max(self.child_max_rss_kib, self._child.max_rss_kib)
            self._child = None

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def _alive(self) -> CandidateProcess:
        if self._child is None:
            self._child = CandidateProcess(self.spec, load_timeout=self.load_timeout)
        return self._child

    def _collect(self, in_flight: deque[Batch[T]]) -> Iterator[tuple[Batch[T], list[Outcome]]]:
        batch = in_flight[0]
        try:
            outcomes = encoding.loads(self._alive().receive(self.batch_timeout))
        except ChildFailed as exc:
            self._lost(exc)
            pending = list(in_flight)
            in_flight.clear()
            for lost in pending:  # what was sent after the failing batch is lost with the child
                yield lost, self._one_by_one(lost)
            return
        in_flight.popleft()
        yield batch, outcomes

    def _one_by_one(self, batch: Batch[Any]) -> list[Outcome]:
        outcomes = []
        for item in batch.inputs:
            child = self._alive()
            child.send(_array([item]))
            try:
                (outcome,) = encoding.loads(child.receive(self.batch_timeout))
            except ChildFailed as exc:
                self._lost(exc)
                outcome = exc.outcome
            outcomes.append(outcome)
        return outcomes

    def _lost(self, exc: ChildFailed) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None
        self.restarts += 1
        if len(self.failures) < 20:
            self.failures.append(str(exc))
        if self.restarts > self.max_restarts:
            raise TooManyRestarts(f"the candidate's process died or timed out {self.restarts} times (last: {exc}); "
                                  f"stopped (--max-restarts {self.max_restarts})")


def _array(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"
