"""``modelplatform db upgrade``: apply Alembic migrations (run at release, not per worker).
``modelplatform db maintain [--keep 400d]``: partitions of ``inferences`` ahead, retention (see
:mod:`modelplatform.audit.partitions`); ``db upgrade --maintain`` does both (the Procfile release step)."""
from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta

from modelplatform.cli.resolve import DEFAULT_RETENTION_FLOOR, CommandSettings

_KEEP = re.compile(r"^\s*(\d+)\s*([dw])\s*$")


def _upgrade(args: argparse.Namespace, settings: CommandSettings) -> int:
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from modelplatform import db

    url = settings.database()
    try:
        db.upgrade(url, args.revision, home=settings.home)
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
    if args.maintain:
        return _run_maintenance("modelplatform db upgrade", url, keep=None, days_ahead=args.ahead)
    return 0


def parse_keep(text: str) -> timedelta:
    """``400d`` or ``58w`` (whole partitions are days). Raises ``ValueError`` saying what is accepted."""
    match = _KEEP.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a retention such as 400d or 60w (days or weeks)")
    return timedelta(days=int(match.group(1)) * (7 if match.group(2) == "w" else 1))


def _keep_arg(text: str) -> timedelta:
    try:
        return parse_keep(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _maintain(args: argparse.Namespace, settings: CommandSettings) -> int:
    prog = args.prog
    url = settings.database()
    if args.keep is not None:
        try:
            floor = parse_keep(settings.retention_floor)
        except ValueError as exc:
            print(f"{prog}: AUDIT_RETENTION_FLOOR: {exc}", file=sys.stderr)
            return 2
        if args.keep < floor:
            print(f"{prog}: refusing --keep {args.keep.days}d: shorter than the retention floor "
                  f"{floor.days}d (AUDIT_RETENTION_FLOOR); nothing was dropped", file=sys.stderr)
            return 2
    return _run_maintenance(prog, url, keep=args.keep, days_ahead=args.ahead)


def _run_maintenance(prog: str, url: str, *, keep: timedelta | None, days_ahead: int) -> int:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from modelplatform.audit import partitions

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 10, "application_name": "modelplatform-maintain"})
    try:
        report = partitions.maintain(engine, keep=keep, days_ahead=days_ahead)
    except partitions.MaintenanceBusy as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        reason = str(exc.__cause__ or exc).strip().splitlines()[0]
        print(f"{prog}: cannot maintain the partitions ({type(exc).__name__}: {reason}); is the database "
              "migrated (`modelplatform db upgrade`)?", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    for partition in report.created:
        moved = report.moved_rows.get(partition.name)
        print(f"created {partition.describe()}" + (f", moved {moved} row(s) into it from "
                                                   f"{partitions.DEFAULT_PARTITION}" if moved else ""))
    for dropped in report.dropped:
        print(f"dropped {dropped.partition.describe()}: ~{dropped.rows_estimate:,} row(s), "
              f"{dropped.total_bytes / 2**20:,.1f} MiB")
    if keep is not None and not report.dropped:
        print(f"dropped nothing: no partition lies entirely before now - {keep.days}d")
    until = "no partition covers today" if report.covered_until is None else \
        f"partitions cover through {report.covered_until.isoformat()}"
    print(f"{until}; {report.default_rows} row(s) in {partitions.DEFAULT_PARTITION}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="database schema migrations")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply Alembic migrations up to head (reads DATABASE_URL)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    upgrade.add_argument("--maintain", action="store_true",
                         help="then create the inferences partitions ahead, as `db maintain` does (no retention)")
    upgrade.set_defaults(handler=_upgrade, ahead=_days_ahead(), prog=upgrade.prog)
    maintain = actions.add_parser(
        "maintain", help="create inferences partitions ahead; with --keep, drop partitions past retention",
        description="Create the daily partitions of inferences from today through --ahead days, move rows out "
                    "of the default partition, and with --keep drop every partition entirely older than that. "
                    "Safe to run from cron on every host at once. Reads DATABASE_URL and AUDIT_RETENTION_FLOOR "
                    f"(default {DEFAULT_RETENTION_FLOOR}; a shorter --keep is refused).")
    maintain.add_argument("--keep", type=_keep_arg, default=None, metavar="DURATION",
                          help="retention, e.g. 400d or 60w: drop whole partitions older than that "
                               "(default: drop nothing)")
    maintain.add_argument("--ahead", type=int, default=_days_ahead(), metavar="DAYS",
                          help="days of partitions to keep ready after today (default: %(default)s)")
    maintain.set_defaults(handler=_maintain, prog=maintain.prog)


def _days_ahead() -> int:
    from modelplatform.audit.partitions import DEFAULT_DAYS_AHEAD

    return DEFAULT_DAYS_AHEAD
