"""``modelplatform db upgrade``: apply Alembic migrations (run at release, not per worker)."""
from __future__ import annotations

import argparse
import os
import sys


def _upgrade(args: argparse.Namespace) -> int:
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from modelplatform import db

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        print("modelplatform db upgrade: DATABASE_URL is not set", file=sys.stderr)
        return 2
    try:
        db.upgrade(url, args.revision)
    except CommandError as exc:  # e.g. an unknown revision
        print(f"modelplatform db upgrade: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        # the release must fail with the reason, not a traceback through Alembic's internals
        reason = str(exc.__cause__ or exc).strip().splitlines()[0]
        print(f"modelplatform db upgrade: cannot migrate the database ({type(exc).__name__}: {reason})",
              file=sys.stderr)
        return 2
    print(f"database upgraded to {args.revision}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="database schema migrations")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply Alembic migrations up to head (reads DATABASE_URL)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_upgrade)
