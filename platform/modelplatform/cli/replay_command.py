"""``modelplatform replay MODEL --candidate VERSION``: back-test a candidate on recorded traffic.

Reads ``DATABASE_URL`` (the ``inferences`` table; ``replay_runs``/``replay_results`` from migration
0006), the store (``--store`` or ``MODEL_STORE_URL``) and the config (``--config``, ``MODELS_CONFIG`` or
``config/models.json``) for the candidate's sha256 and schema. Exit 0 when done, 1 when a ``--fail-on``
condition holds, 2 when the replay could not run (bad arguments, no database, the candidate missing,
refused by its sha256 or not loading, the run aborted).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelplatform.cli.resolve import CannotRun, CommandSettings
from modelplatform.settings import DEFAULT_CONFIG_PATH

PROG = "modelplatform replay"
DEFAULT_SINCE_DAYS = 7
APPLICATION_NAME = "modelplatform-replay"
EXIT_INTERRUPTED = 130


def _moment(text: str) -> datetime:
    from modelplatform.ab_report import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the sample is a fraction in (0, 1], e.g. 0.1 or 10%")
    return value


def _integer(minimum: int) -> Any:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum}")
        return value
    return convert


_positive, _count = _integer(1), _integer(0)


def _sha256(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a sha256 (64 hex digits, as printed by publish)")
    return value


def _config_spec(args: argparse.Namespace, path: Path) -> Any:
    """The model's entry in the config, None when it is not there; raises :class:`CannotRun` when the
    config is needed (no --sha256 or no --schema) and unusable."""
    from modelplatform.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        if args.sha256 and args.schema:
            return None
        raise CannotRun(f"{exc}; fix the config, or pass both --sha256 and --schema") from None
    return config.models.get(args.model)


def resolve_candidate(args: argparse.Namespace, config_path: Path) -> tuple[str, Any, str]:
    """``(sha256, schema, where the schema comes from)`` of the candidate. Raises :class:`CannotRun`."""
    from modelplatform import versions
    from modelplatform.config import ConfigError

    if not versions.is_version(args.candidate):
        raise CannotRun(f"--candidate {args.candidate!r} is not a version (dotted numbers, e.g. 2.2.0)")
    try:
        spec = _config_spec(args, config_path)
    except ConfigError as exc:  # pragma: no cover - _config_spec converts it
        raise CannotRun(str(exc)) from None
    pinned = spec.sha256.get(args.candidate) if spec is not None else None
    if pinned is not None and args.sha256 is not None and pinned != args.sha256:
        raise CannotRun(f"--sha256 {args.sha256} differs from the config's {pinned} for {args.model} "
                        f"{args.candidate}; one of them is wrong")
    sha256 = pinned or args.sha256
    if sha256 is None:
        raise CannotRun(f"{args.model} {args.candidate} has no sha256 in the config; pass --sha256 with the digest "
                        "`modelplatform publish` printed, so the file is verified before it is loaded")
    if args.schema is not None:
        schema = _schema_file(args.schema)
        return sha256, schema, str(args.schema)
    keys = versions.resolve(args.candidate, spec.schemas) if spec is not None else []
    if len(keys) == 1:
        return sha256, spec.schemas[keys[0]], f"config schemas[{keys[0]!r}]"
    if len(keys) > 1:
        raise CannotRun(f"schema keys {keys} are equally specific for {args.candidate}; fix the config or pass "
                        "--schema FILE")
    raise CannotRun(f"no schema covers {args.model} {args.candidate} in the config; add a schemas key or pass "
                    "--schema FILE")


def _schema_file(path: Path) -> Any:
    import jsonschema

    try:
        schema = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise CannotRun(f"--schema {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CannotRun(f"--schema {path}: not JSON ({exc})") from None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise CannotRun(f"--schema {path}: not a valid JSON Schema 2020-12: {exc.message}") from None
    return schema


def _engine(url: str) -> Any:
    import sqlalchemy as sa

    # the application name shows the replay's connections in pg_stat_activity, for the operator
    return sa.create_engine(url, poolclass=sa.pool.NullPool,
                            connect_args={"connect_timeout": 10, "application_name": APPLICATION_NAME})


def _check_database(engine: Any) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1 from replay_runs limit 0"))
            conn.execute(sa.text("select 1 from inferences limit 0"))
    except SQLAlchemyError as exc:
        raise CannotRun(f"cannot use the database ({_first_line(exc)}); is it reachable and migrated "
                        "(`modelplatform db upgrade`)?") from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc.__cause__ or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _fetch_verified(args: argparse.Namespace, settings: CommandSettings, sha256: str) -> bytes:
    from modelplatform import artifacts
    from modelplatform.store import ArtifactError

    store = settings.model_store()
    try:
        data = store.fetch(args.model, args.candidate)
    except ArtifactError as exc:
        raise CannotRun(str(exc)) from None
    try:
        artifacts.verify(args.model, args.candidate, data, sha256)
    except artifacts.ArtifactRejected as exc:
        raise CannotRun(f"refused, nothing was loaded: {exc}") from None
    return data


def _progress(args: argparse.Namespace, engine: Any, selection: Any) -> Any:
    """A tqdm bar on stderr when it is a terminal (its total costs one count query), else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    from modelplatform.replay import source

    raw = engine.raw_connection()
    try:
        total = source.count(raw, selection)
    finally:
        raw.close()
    return tqdm(total=total, unit="rows", desc=f"replaying {args.model} {args.candidate}", file=sys.stderr,
                smoothing=0.1)


def _replay(args: argparse.Namespace, settings: CommandSettings) -> int:
    logging.getLogger("botocore").setLevel(logging.WARNING)
    from psycopg2 import Error as DriverError
    from sqlalchemy.exc import SQLAlchemyError

    from modelplatform import encoding
    from modelplatform.replay.process import CandidateLoadError
    from modelplatform.replay.render import render_text
    from modelplatform.replay.run import ReplayAborted, ReplayOptions, replay
    from modelplatform.replay.source import Selection

    try:
        url = settings.database()
        if args.out is not None and args.out.suffix.lower() not in (".parquet", ".csv"):
            raise CannotRun(f"--out {args.out}: the name must end in .parquet or .csv")
        if args.out is not None and not args.out.resolve().parent.is_dir():
            raise CannotRun(f"--out {args.out}: the directory {args.out.resolve().parent} does not exist")
        if args.since is None:  # 7d, without importing the duration parser's module (and scipy) for it
            args.since = datetime.now(UTC) - timedelta(days=DEFAULT_SINCE_DAYS)
        if args.until is not None and args.until <= args.since:
            raise CannotRun("--until must be later than --since")
        sha256, schema, schema_source = resolve_candidate(args, settings.config_path)
        engine = _engine(url)
        try:
            _check_database(engine)
            data = _fetch_verified(args, settings, sha256)
            selection = Selection(model=args.model, baseline=args.baseline, since=args.since, until=args.until,
                                  sample=args.sample, limit=args.limit)
            options = ReplayOptions(
                selection=selection, candidate_version=args.candidate, sha256=sha256, schema=schema,
                schema_source=schema_source, tolerances=args.tolerance, fail_on=args.fail_on[0],
                fail_on_text=args.fail_on[1], top=args.top, examples=args.examples, batch_size=args.batch_size,
                batch_timeout=args.timeout, load_timeout=args.load_timeout, max_restarts=args.max_restarts,
                out=args.out)
            bar = _progress(args, engine, selection)
            try:
                report = replay(engine, options, data, on_progress=bar.update if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
        finally:
            engine.dispose()
    except CannotRun as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except CandidateLoadError as exc:
        print(f"{PROG}: the candidate does not load: {exc}", file=sys.stderr)
        return 2
    except ReplayAborted as exc:
        print(f"{PROG}: aborted: {exc} (run {exc.run_id} kept as 'aborted')", file=sys.stderr)
        return 2
    except (SQLAlchemyError, DriverError) as exc:
        print(f"{PROG}: the database failed during the replay ({_first_line(exc)}); the run is kept as "
              "'failed' when the database could still be written", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --out cannot be written
        print(f"{PROG}: {exc.strerror or exc}: {exc.filename or ''}; the run is kept as 'failed'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the candidate's process was stopped and the run kept as 'failed'",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(encoding.dumps(report).decode() if args.json else render_text(report))
    return int(report["exit_status"])


def _fail_on(text: str) -> tuple[Any, str]:
    from modelplatform.replay.gates import parse_fail_on

    try:
        return parse_fail_on(text), text
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tolerance(text: str) -> Any:
    from modelplatform.replay.compare import parse_tolerances

    try:
        return parse_tolerances(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from modelplatform.replay.process import DEFAULT_BATCH_TIMEOUT_S, DEFAULT_LOAD_TIMEOUT_S, DEFAULT_MAX_RESTARTS
    from modelplatform.replay.run import DEFAULT_BATCH_SIZE, DEFAULT_EXAMPLES, DEFAULT_TOP

    parser = commands.add_parser(
        "replay", help="back-test a candidate version on recorded traffic (differences report, stored run)",
        description="Run the recorded inputs of MODEL through the candidate VERSION (loaded from the store, "
                    "sha256-verified, in a child process without the CLI's credentials), compare every outcome "
                    "with the recorded one, store the run in replay_runs/replay_results and print a report. "
                    "Exit 0 done, 1 a --fail-on condition holds, 2 could not run.")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--candidate", required=True, metavar="VERSION", help="the version to back-test")
    parser.add_argument("--baseline", default="live", metavar="live|VERSION",
                        help="whose recorded traffic: live (every non-shadow call, the default) or one version's")
    parser.add_argument("--since", type=_moment, default=None,
                        help="ISO timestamp (UTC if no offset) or a duration back from now (default: 7d)")
    parser.add_argument("--until", type=_moment, default=None, help="end of the window, same forms (default: now)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N", help="only the newest N rows")
    parser.add_argument("--sample", type=_fraction, default=None, metavar="F",
                        help="replay a deterministic sample: 0.1 or 10%% of the rows (by a hash of their id)")
    parser.add_argument("--tolerance", type=_tolerance, default=_tolerance("0"), metavar="SPEC",
                        help="how far a numeric leaf may move: 0.01 (absolute), 0.5%% (relative), per leaf "
                             "/premium=0.5; comma-separated (default: 0, any change)")
    parser.add_argument("--fail-on", type=_fail_on, default=((), ""), metavar="CONDITIONS",
                        help="exit 1 when any holds, e.g. 'changed>1%%,error>0,ok->rejected>0,/premium:p95>5' "
                             "(docs/models.md lists the metrics)")
    parser.add_argument("--json", action="store_true", help="print the whole report as one JSON document")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="also write every replayed row to FILE.parquet or FILE.csv")
    parser.add_argument("--sha256", type=_sha256, default=None,
                        help="the candidate's digest, when the config does not pin it yet")
    parser.add_argument("--schema", type=Path, default=None, metavar="FILE",
                        help="JSON Schema to validate with (default: the config's schemas key covering VERSION)")
    parser.add_argument("--config", default=None,
                        help=f"config file (default: $MODELS_CONFIG or {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--store", default=None, help="s3://bucket/prefix (default: $MODEL_STORE_URL)")
    parser.add_argument("--top", type=_count, default=DEFAULT_TOP, metavar="N",
                        help="how many of the largest differences to show (default: %(default)s)")
    parser.add_argument("--examples", type=_count, default=DEFAULT_EXAMPLES, metavar="N",
                        help="examples per status transition (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help="rows per batch sent to the candidate's process (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_BATCH_TIMEOUT_S, metavar="S",
                        help="seconds a batch may take before the process is killed and the batch retried "
                             "row by row (default: %(default)s)")
    parser.add_argument("--load-timeout", type=float, default=DEFAULT_LOAD_TIMEOUT_S, metavar="S",
                        help="seconds the candidate may take to load (default: %(default)s)")
    parser.add_argument("--max-restarts", type=int, default=DEFAULT_MAX_RESTARTS, metavar="N",
                        help="stop (exit 2) after the candidate's process died or hung this often "
                             "(default: %(default)s)")
    parser.set_defaults(handler=_replay, prog=parser.prog)
