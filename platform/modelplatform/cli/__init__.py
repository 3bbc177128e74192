"""The ``modelplatform`` command line. Each command lives in its own module with ``register(commands)``; its
handler is called with the parsed arguments and the :class:`~modelplatform.cli.resolve.CommandSettings`
resolved once for it (flag > environment > running demo > default)."""
from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from modelplatform.cli import (
    ab_report_command,
    check_config_command,
    db_command,
    demo_command,
    export_command,
    publish_command,
    replay_command,
)
from modelplatform.cli.resolve import CannotRun, resolve
from modelplatform.demostate import shown_path

# one entry per command module; each adds its sub-parser and sets ``handler``
COMMANDS = [db_command, publish_command, check_config_command, ab_report_command, demo_command, export_command,
            replay_command]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelplatform",
        description="S3-backed, versioned model serving with A/B routing and an audit trail.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


class _PipeSafeStream:
    """A text stream whose reader may go away (``modelplatform publish … | head -1``): once a write or a
    flush meets a closed pipe, everything further is discarded, as the Python docs recommend (the file
    descriptor is pointed at ``/dev/null``), instead of raising in the middle of a command whose work
    is done. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._closed_pipe = False

    def write(self, text: str) -> int:
        if not self._closed_pipe:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._discard()
        return len(text)

    def flush(self) -> None:
        if not self._closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._discard()

    def _discard(self) -> None:
        self._closed_pipe = True
        try:
            fd = self._stream.fileno()
        except (AttributeError, io.UnsupportedOperation):
            return  # not a real file (a test's capture): nothing is flushed to it at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)  # what is still buffered then goes nowhere at exit, without a second error
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def _closed_pipes_ignored() -> Iterator[None]:
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PipeSafeStream(stdout), _PipeSafeStream(stderr)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status. Output to a closed pipe never changes that status:
    a command that did its work (an upload, a check) reports it, whoever stopped reading."""
    with _closed_pipes_ignored():
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin at import: noise
        args = build_parser().parse_args(argv)
        settings = resolve(args)
        if settings.demo is not None:  # said on stderr: stdout stays the command's own (e.g. --json)
            print(f"modelplatform: using the demo running in {shown_path(Path(settings.demo.data_dir))} (no "
                  "DATABASE_URL, MODEL_STORE_URL or AWS_ENDPOINT_URL set)", file=sys.stderr)
        try:
            return int(args.handler(args, settings) or 0)
        except CannotRun as exc:
            print(f"{args.prog}: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
