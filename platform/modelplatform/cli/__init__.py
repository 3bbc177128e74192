"""The ``modelplatform`` command line. Each command lives in its own module with ``register(commands)``."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from modelplatform.cli import ab_report_command, check_config_command, db_command, demo_command, export_command, \
    publish_command

# one entry per command module; each adds its sub-parser and sets ``handler``
COMMANDS = [db_command, publish_command, check_config_command, ab_report_command, demo_command, export_command]


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
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
