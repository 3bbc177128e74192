"""``modelplatform ab-report NAME [--since …] [--json]``: the readout of one A/B test.

Reads ``DATABASE_URL`` (the ``inferences`` table, migrated to 0002 or later) and the config
(``--config``, else ``MODELS_CONFIG``, else ``config/models.json``) for the test's weights
(:mod:`modelplatform.cli.resolve`).
Exit 0 with the report, 1 when no test has that name (the known ones are listed), 2 when the config,
the database or an argument is unusable.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime

from modelplatform.cli.resolve import CommandSettings
from modelplatform.settings import DEFAULT_CONFIG_PATH


def _since(text: str) -> datetime:
    from modelplatform.ab_report import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report(args: argparse.Namespace, settings: CommandSettings) -> int:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from modelplatform import ab_report, encoding
    from modelplatform.config import ConfigError, load_config

    url = settings.database()
    config_path = settings.config_path
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"modelplatform ab-report: {exc}", file=sys.stderr)
        return 2
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 10})
    try:
        report = ab_report.build_report(engine, config, args.name, args.since)
    except ab_report.UnknownTest as exc:
        known = ", ".join(exc.known) if exc.known else "none"
        print(f"modelplatform ab-report: no A/B test {exc.experiment!r} in {config_path}, and no call recorded "
              f"under that name; the config's tests: {known}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"modelplatform ab-report: cannot read the database ({type(exc).__name__}: "
              f"{str(exc.__cause__ or exc).strip().splitlines()[0]}); is it migrated "
              "(`modelplatform db upgrade`)?", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(encoding.dumps(report.as_dict()).decode() if args.json else ab_report.render_text(report))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "ab-report", help="per-arm statistics of an A/B test and a sample-ratio-mismatch check",
        description="Per-arm calls, statuses and latency of the A/B test NAME, and a chi-square check of "
                    "the split against the configured weights. Reads DATABASE_URL.")
    report.add_argument("name", metavar="NAME", help="the ab_test name (the `experiment` column)")
    report.add_argument("--since", type=_since, default=None,
                        help="only calls from then on: an ISO timestamp (UTC if no offset) or a duration "
                             "such as 24h or 7d")
    report.add_argument("--json", action="store_true", help="print the report as one JSON document")
    report.add_argument("--config", default=None,
                        help=f"config with the test's weights (default: $MODELS_CONFIG or {DEFAULT_CONFIG_PATH})")
    report.set_defaults(handler=_report, prog=report.prog)
