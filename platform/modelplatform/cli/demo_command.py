"""``modelplatform demo``: the platform with example models on this machine (see :mod:`modelplatform.demo`)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value
    return parse


def _demo(args: argparse.Namespace) -> int:
    from modelplatform import demo

    try:
        if args.action == "rows":
            return demo.show_rows(args.data_dir, args.limit)
        return demo.serve(demo.DemoOptions(host=args.host, port=args.port, data_dir=args.data_dir))
    except demo.DemoError as exc:
        print(f"modelplatform demo: {exc}", file=sys.stderr)
        return 2


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="run the platform locally: embedded Postgres, local S3, example models, the web server",
        description="Start an embedded Postgres, a local S3 endpoint, publish the example models, migrate and "
                    "serve them; prints example curl calls. Ctrl-C stops everything. "
                    "`modelplatform demo rows` prints the latest audit rows of a running demo.")
    parser.add_argument("action", nargs="?", choices=("serve", "rows"), default="serve",
                        help="serve (default) or rows: show the latest rows of the running demo's audit table")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_bounded_int(1, 65535), default=8000, help="port to serve on (default: 8000)")
    parser.add_argument("--data-dir", type=Path, default=Path(".demo"),
                        help="where Postgres keeps its data between runs (default: .demo, git-ignored)")
    parser.add_argument("--limit", type=_bounded_int(1, 1000), default=10, help="rows: how many rows to show (default: 10)")
    parser.set_defaults(handler=_demo)
