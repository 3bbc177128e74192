"""``modelplatform check-config [PATH]``: list every problem with a config.

Exit 0 when clean (warnings are printed but never fail), 1 when there are problems, 2 when the command
could not run (no store given, a malformed store URL, or a store that cannot be used at all: then the
problems found without it are still listed).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from modelplatform import loadcheck
from modelplatform.cli.resolve import CommandSettings
from modelplatform.settings import DEFAULT_CONFIG_PATH


def _check(args: argparse.Namespace, settings: CommandSettings) -> int:
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its credential/endpoint notes are noise here
    from modelplatform.checks import conditional_write_problems, config_report

    path = settings.config_path
    store = None
    if not args.no_store:
        store = settings.model_store(
            "no store; set MODEL_STORE_URL, pass --store s3://bucket/prefix, or pass --no-store to check only "
            "the config and the examples' schemas")
    report = config_report(path, store, timeout=args.timeout)
    problems = report.problems
    if store is not None and report.store_error is None:
        problems += conditional_write_problems(store)

    if args.json:
        json.dump({"config": str(path), "store": None if store is None else str(store.location),
                   "ok": not problems and report.store_error is None,
                   "problems": [p.as_dict() for p in problems], "warnings": [w.as_dict() for w in report.warnings],
                   "store_error": report.store_error}, sys.stdout, indent=2)
        print()
    else:
        if problems:
            print(f"{path}: {len(problems)} problem(s):")
            for problem in problems:
                print(f"  - [{problem.check}] {problem}")
        elif report.store_error is None:
            checked = "config and example schemas only (--no-store)" if store is None else \
                f"config, store {store.location}, models and examples"
            print(f"{path}: OK ({checked})")
        for warning in report.warnings:
            print(f"  warning: [{warning.check}] {warning}")
    if report.store_error is not None:
        print(f"modelplatform check-config: could not check the store, the models or their examples: "
              f"{report.store_error}", file=sys.stderr)
        return 2
    return 1 if problems else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check-config", help="validate a config: structure, store objects, models and examples",
        description="Check a models config: its structure and rules; that every active version's file is "
                    "in the store with the pinned sha256; that each loads (in a separate process) and runs "
                    "its examples through its schema and predict; that the store honours conditional writes "
                    "(a scratch key is written twice, then deleted). Lists every problem; exits 1 if any, "
                    "2 if it could not run (e.g. the store cannot be reached).")
    check.add_argument("config", nargs="?", metavar="PATH",
                       help=f"config file (default: $MODELS_CONFIG or {DEFAULT_CONFIG_PATH})")
    check.add_argument("--store", help="s3://bucket/prefix (default: $MODEL_STORE_URL)")
    check.add_argument("--no-store", action="store_true",
                       help="skip the store, loading and predict checks (no credentials needed)")
    check.add_argument("--json", action="store_true", help="print machine-readable problems")
    check.add_argument("--timeout", type=float, default=loadcheck.DEFAULT_TIMEOUT_SECONDS,
                       help="seconds allowed to load one version and run its examples (default: %(default)s)")
    check.set_defaults(handler=_check, prog=check.prog)
