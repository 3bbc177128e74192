"""``modelplatform demo``: the platform with example models on this machine (see :mod:`modelplatform.demo`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (default: 8000)")
    parser.add_argument("--data-dir", type=Path, default=Path(".demo"),
                        help="where Postgres keeps its data between runs (default: .demo, git-ignored)")
    parser.add_argument("--limit", type=int, default=10, help="rows: how many rows to show (default: 10)")
    parser.set_defaults(handler=_demo)
