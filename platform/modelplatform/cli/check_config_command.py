"""``modelplatform check-config [PATH]``: list every problem with a config, exit 1 if any (0 when clean)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from modelplatform import loadcheck
from modelplatform.settings import DEFAULT_CONFIG_PATH


def _check(args: argparse.Namespace) -> int:
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its credential/endpoint notes are noise here
    from modelplatform.checks import check_config, conditional_write_problems
    from modelplatform.settings import StoreLocation
    from modelplatform.store import S3ModelStore

    path = args.path or os.environ.get("MODELS_CONFIG", "").strip() or DEFAULT_CONFIG_PATH
    store = None
    if not args.no_store:
        store_url = args.store or os.environ.get("MODEL_STORE_URL", "").strip()
        if not store_url:
            print("modelplatform check-config: no store; set MODEL_STORE_URL, pass --store s3://bucket/prefix, "
                  "or pass --no-store to check only the config and the examples' schemas", file=sys.stderr)
            return 2
        try:
            store = S3ModelStore(StoreLocation.parse(store_url))
        except ValueError as exc:
            print(f"modelplatform check-config: {exc}", file=sys.stderr)
            return 2
    problems = check_config(path, store, timeout=args.timeout)
    if store is not None:
        problems += conditional_write_problems(store)

    if args.json:
        json.dump({"config": str(path), "store": None if store is None else str(store.location),
                   "ok": not problems, "problems": [p.as_dict() for p in problems]}, sys.stdout, indent=2)
        print()
    elif problems:
        print(f"{path}: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - [{problem.check}] {problem}")
    else:
        checked = "config and example schemas only (--no-store)" if store is None else \
            f"config, store {store.location}, models and examples"
        print(f"{path}: OK ({checked})")
    return 1 if problems else 0


def register(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check-config", help="validate a config: structure, store objects, models and examples",
        description="Check a models config: its structure and rules; that every active version's file is "
                    "in the store with the pinned sha256; that each loads (in a separate process) and runs "
                    "its examples through its schema and predict; that the store honours conditional writes "
                    "(a scratch key is written twice, then deleted). Lists every problem; exits 1 if any.")
    check.add_argument("path", nargs="?", help=f"config file (default: $MODELS_CONFIG or {DEFAULT_CONFIG_PATH})")
    check.add_argument("--store", help="s3://bucket/prefix (default: $MODEL_STORE_URL)")
    check.add_argument("--no-store", action="store_true",
                       help="skip the store, loading and predict checks (no credentials needed)")
    check.add_argument("--json", action="store_true", help="print machine-readable problems")
    check.add_argument("--timeout", type=float, default=loadcheck.DEFAULT_TIMEOUT_SECONDS,
                       help="seconds allowed to load one version and run its examples (default: %(default)s)")
    check.set_defaults(handler=_check)
