"""``modelplatform db upgrade``: apply Alembic migrations (run at release, not per worker)."""
from __future__ import annotations

import argparse
import os
import sys


def _upgrade(args: argparse.Namespace) -> int:
    from modelplatform import db

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        print("modelplatform db upgrade: DATABASE_URL is not set", file=sys.stderr)
        return 2
    db.upgrade(url, args.revision)
    print(f"database upgraded to {args.revision}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="database schema migrations")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply Alembic migrations up to head (reads DATABASE_URL)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_upgrade)
