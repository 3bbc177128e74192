"""``modelplatform demo``: the platform with example models on this machine (see :mod:`modelplatform.demo`)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from modelplatform.cli.resolve import CommandSettings


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


def _demo(args: argparse.Namespace, settings: CommandSettings) -> int:
    if args.action == "serve":
        from modelplatform import demo, demostate

        try:
            return demo.serve(demo.DemoOptions(host=args.host, port=args.port, s3_port=args.s3_port,
                                               data_dir=args.data_dir or demostate.DEFAULT_DATA_DIR,
                                               home=settings.home))
        except demo.DemoError as exc:
            print(f"modelplatform demo: {exc}", file=sys.stderr)
            return 2
    from modelplatform import demo_control

    try:
        if args.action == "rows":
            return demo_control.show_rows(args.data_dir, args.limit, home=settings.home)
        return demo_control.reload(args.data_dir, home=settings.home)
    except demo_control.DemoNotRunning as exc:
        print(f"modelplatform demo {args.action}: {exc}", file=sys.stderr)
        return 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo", help="run the platform locally: embedded Postgres, local S3, example models, the web server",
        description="Start an embedded Postgres, a local S3 endpoint (its objects kept in the data dir), publish "
                    "the example models, migrate and serve them; prints example curl calls. Ctrl-C stops "
                    "everything. While it runs, from another terminal: `modelplatform demo rows` prints the "
                    "latest audit rows, `modelplatform demo reload` reloads config/models.json (exit 1 if the "
                    "server refuses it), and the other commands use the demo when no settings are given.")
    parser.add_argument("action", nargs="?", choices=("serve", "rows", "reload"), default="serve",
                        help="serve (default); rows: the latest rows of the running demo's audit table; reload: "
                             "make the running demo check and serve the edited config")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_bounded_int(1, 65535), default=8000, help="port to serve on (default: 8000)")
    parser.add_argument("--s3-port", type=_bounded_int(0, 65535), default=0,
                        help="port of the local S3 endpoint (default: the previous run's when free, else any)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where Postgres, S3 objects and the server log are kept between runs (default: "
                             ".demo, git-ignored; rows and reload find a running demo by themselves)")
    parser.add_argument("--limit", type=_bounded_int(1, 1000), default=10,
                        help="rows: how many rows to show (default: 10)")
    parser.set_defaults(handler=_demo, prog=parser.prog)
