"""``modelplatform export --since … [--until …] --to s3://bucket/prefix``: inferences as Parquet, one file set per
model and UTC day, idempotent per day (see :mod:`modelplatform.export`).

Reads ``DATABASE_URL`` (and boto3's usual variables, ``AWS_ENDPOINT_URL`` included). Exit 0 when every day
was exported, 2 when an argument, the database or the store is unusable (days already exported stay).
"""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from modelplatform.cli.ab_report_command import _since as _moment  # the same ISO-or-duration argument
from modelplatform.cli.resolve import CommandSettings

PROG = "modelplatform export"


def _export(args: argparse.Namespace, settings: CommandSettings) -> int:
    try:
        from modelplatform import export
    except ImportError as exc:  # pyarrow: the `export` extra, not needed by the server
        print(f"{PROG}: needs pyarrow ({exc}); install it with pip install pyarrow", file=sys.stderr)
        return 2
    import psycopg2
    from botocore.exceptions import BotoCoreError, ClientError
    from tqdm import tqdm

    from modelplatform.settings import StoreLocation

    url = settings.database()
    try:
        location = StoreLocation.parse(args.to, "--to")
        days = export.days_between(args.since, args.until or datetime.now(UTC))
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    s3 = settings.s3_client()
    try:
        conn = export.connect(url)
    except psycopg2.Error as exc:
        print(f"{PROG}: cannot connect to the database ({str(exc).strip().splitlines()[0]})", file=sys.stderr)
        return 2
    terminal = sys.stderr.isatty()
    try:
        total = export.count_rows(conn, days) if terminal else None
        with tqdm(total=total, unit="row", unit_scale=True, disable=not terminal, file=sys.stderr) as bar:
            def advance(rows: int) -> None:
                bar.update(rows)

            for day in days:
                bar.set_description(day.isoformat())
                done = export.export_day(conn, s3, location, day, batch_rows=args.batch_rows, progress=advance)
                models = ", ".join(f"{m} {n}" for m, n in sorted(done.rows_by_model.items())) or "no rows"
                tqdm.write(f"{day.isoformat()}: {done.rows} row(s) ({models}), {len(done.keys)} file(s), "
                           f"{done.bytes / 2**20:.1f} MiB; replaced {len(done.replaced)} earlier file(s)",
                           file=sys.stdout)
    except psycopg2.Error as exc:
        print(f"{PROG}: database error ({str(exc).strip().splitlines()[0]}); days before it were exported",
              file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"{PROG}: cannot write to {location} ({exc}); days before it were exported", file=sys.stderr)
        return 2
    finally:
        conn.close()
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "export", help="export inferences to S3 as Parquet, Hive-partitioned by model and date",
        description="Write every UTC day from --since through --until as Parquet under "
                    "s3://bucket/prefix/model=NAME/date=YYYY-MM-DD/, replacing that day's earlier export. "
                    "Reads DATABASE_URL.")
    command.add_argument("--since", type=_moment, required=True,
                         help="first day: an ISO timestamp or date (UTC if no offset) or a duration such as 7d")
    command.add_argument("--until", type=_moment, default=None,
                         help="last day, included (default: today, exported as far as it goes)")
    command.add_argument("--to", required=True, metavar="S3_URL", help="s3://bucket/prefix")
    command.add_argument("--batch-rows", type=int, default=20_000, help=argparse.SUPPRESS)
    command.set_defaults(handler=_export, prog=command.prog)
