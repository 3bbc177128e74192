"""``modelplatform publish FILE --model NAME --version V``: upload a model file, never overwriting."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from modelplatform import loadcheck

# below this size an upload is quick enough that a bar is noise
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


@contextmanager
def _progress(size: int) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar fed with upload positions, only when stdout is a terminal and the file is large."""
    if not sys.stdout.isatty() or size < PROGRESS_MIN_BYTES:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc="uploading") as bar:
        def on_position(position: int) -> None:
            bar.update(position - bar.n)  # negative when botocore rewinds for a second pass
        yield on_position


def _publish(args: argparse.Namespace) -> int:
    from modelplatform.publishing import PublishError, publish_file
    from modelplatform.settings import StoreLocation
    from modelplatform.store import ArtifactError, S3ModelStore, VersionExists

    store_url = args.store or os.environ.get("MODEL_STORE_URL", "").strip()
    if not store_url:
        print("modelplatform publish: no store; set MODEL_STORE_URL or pass --store s3://bucket/prefix",
              file=sys.stderr)
        return 2
    try:
        store = S3ModelStore(StoreLocation.parse(store_url))
        size = os.path.getsize(args.file) if os.path.isfile(args.file) else 0
        with _progress(size) as on_position:
            published = publish_file(args.file, args.model, args.version, store,
                                     load_check=not args.skip_load_check, load_timeout=args.load_timeout,
                                     on_position=on_position)
    except VersionExists as exc:
        print(f"modelplatform publish: refused: {exc}", file=sys.stderr)
        return 1
    except (PublishError, ArtifactError, ValueError) as exc:
        print(f"modelplatform publish: {exc}", file=sys.stderr)
        return 1
    print(f"published {published.url} ({published.size} bytes)")
    print(f"sha256 {published.sha256}")
    print(f"\nadd to the {published.model!r} entry of config/models.json, then open a pull request:\n")
    print(published.config_lines())
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    publish = commands.add_parser(
        "publish", help="upload a model file to the store (a published version can never be overwritten)",
        description="Upload a dill model file to <store>/<model>/<version>.dill with a conditional write, "
                    "so an existing version is refused. The file is first loaded in a separate process "
                    "to prove it deserializes and has predict. Prints the sha256 and the config lines.")
    publish.add_argument("file", help="the dill file to publish")
    publish.add_argument("--model", required=True, help="model name: ^[a-z][a-z0-9_]{0,63}$")
    publish.add_argument("--version", required=True, help="dotted numbers, e.g. 2.1.1")
    publish.add_argument("--store", help="s3://bucket/prefix (default: $MODEL_STORE_URL)")
    publish.add_argument("--skip-load-check", action="store_true",
                         help="upload without loading the file first (e.g. this machine lacks a library "
                              "the server has); check-config will still load it")
    publish.add_argument("--load-timeout", type=float, default=loadcheck.DEFAULT_TIMEOUT_SECONDS,
                         help="seconds allowed for the load check (default: %(default)s)")
    publish.set_defaults(handler=_publish)
