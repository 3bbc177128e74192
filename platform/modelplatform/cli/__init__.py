"""The ``modelplatform`` command line. Each command lives in its own module with ``register(commands)``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from modelplatform.cli import ab_report_command, check_config_command, db_command, demo_command, publish_command

# one entry per command module; each adds its sub-parser and sets ``handler``
COMMANDS = [db_command, publish_command, check_config_command, ab_report_command, demo_command]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelplatform",
        description="S3-backed, versioned model serving with A/B routing and an audit trail.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin at import: noise
    args = build_parser().parse_args(argv)
    if args.command != "demo" and not getattr(args, "store", None):
        _use_running_demo()
    return int(args.handler(args) or 0)


def _use_running_demo() -> None:
    """Without settings, point the command at the demo running from this checkout, and say so on stderr
    (stdout stays the command's own, e.g. ``--json``)."""
    from modelplatform import demostate

    demo = demostate.use_running_demo(os.environ)
    if demo is not None:
        print(f"modelplatform: using the demo running in {demostate.shown_path(Path(demo.data_dir))} (no "
              "DATABASE_URL, MODEL_STORE_URL or AWS_ENDPOINT_URL set)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
