"""``modelplatform publish FILE --model NAME --version V``: upload a model file, never overwriting."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelplatform import loadcheck
from modelplatform.cli.resolve import CommandSettings
from modelplatform.settings import DEFAULT_CONFIG_PATH

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


def _publish(args: argparse.Namespace, settings: CommandSettings) -> int:
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its credential/endpoint notes are noise here
    from modelplatform.publishing import PublishError, publish_file
    from modelplatform.store import ArtifactError, VersionExists

    store = settings.model_store()
    config_path = settings.config_path
    if args.add_to_config:  # before uploading, so nothing is half done
        unusable = _why_not_editable(config_path, args.model)
        if unusable:
            print(f"modelplatform publish: --add-to-config: {unusable}; nothing was published", file=sys.stderr)
            return 2
    try:
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
    if args.add_to_config:
        _add_to_config(config_path, published)
    else:
        _print_config_lines(config_path, published)
    return 0


def _read_config(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The decoded config document, or why it cannot be used (missing, unreadable, not a JSON object,
    a key repeated in one object)."""
    from modelplatform.config import decode_config

    if not path.is_file():
        return None, (f"no config file at {path} (from {Path.cwd()}); pass --config PATH or set MODELS_CONFIG, "
                      "or run this from the checkout")
    try:
        data, repeated = decode_config(path.read_bytes())
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    if not isinstance(data, dict):
        return None, f"{path} is not a JSON object"
    if repeated:
        return None, f"{path}: {repeated[0]} (check-config lists every problem)"
    return data, None


def _why_not_editable(path: Path, model: str) -> str | None:
    data, problem = _read_config(path)
    if problem:
        return problem
    assert data is not None
    if not isinstance(data.get(model), dict):
        return (f"{model!r} is not in {path}: a new model needs its entry written by hand, with a JSON Schema "
                "(publish without --add-to-config prints one to complete)")
    return None


def _add_to_config(path: Path, published: Any) -> None:
    """Write the version into the model's entry: active, with its digest; nothing routes traffic to it."""
    data, _ = _read_config(path)
    assert data is not None  # checked before publishing
    data[published.model] = published.config_entry(data[published.model])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"\nadded {published.version} to \"active_model_versions\" and its digest to \"sha256\" in the "
          f"{published.model!r} entry of {path}.")
    print("Callers reach it pinned (/versions/" + published.version + "/predict); unpinned traffic is unchanged "
          "until default, an ab_test or shadow names it.")
    print("Check it with `modelplatform check-config`, then open a pull request "
          "(on the demo: `modelplatform demo reload`).")


def _print_config_lines(path: Path, published: Any) -> None:
    """The lines to add to the model's entry, and the whole entry then; never a guess when the config is
    not found (a new entry printed for a model that exists would replace it, default and all)."""
    data, problem = _read_config(path)
    if problem:
        print(f"\nnot showing the config lines to add: {problem}.")
        return
    assert data is not None
    existing = data.get(published.model)
    if not isinstance(existing, dict):
        print(f"\n{published.model!r} is not in {path}: add this entry, with a JSON Schema for the version under "
              "\"schemas\" (see docs/models.md), then open a pull request:\n")
        existing = None
    else:
        print(f"\nin the {published.model!r} entry of {path}:\n")
        print(published.config_lines())
        print("\nthe whole entry then reads (point default or an ab_test at the version to send it traffic), "
              "then open a pull request (or pass --add-to-config to have it written):\n")
    print(json.dumps({published.model: published.config_entry(existing)}, indent=2)[2:-2])


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publish = commands.add_parser(
        "publish", help="upload a model file to the store (a published version can never be overwritten)",
        description="Upload a dill model file to <store>/<model>/<version>.dill with a conditional write, "
                    "so an existing version is refused. The file is first loaded in a separate process "
                    "to prove it deserializes and has predict. Prints the sha256 and the config lines.")
    publish.add_argument("file", help="the dill file to publish")
    publish.add_argument("--model", required=True, help="model name: ^[a-z][a-z0-9_]{0,63}$")
    publish.add_argument("--version", required=True, help="dotted numbers, e.g. 2.1.1")
    publish.add_argument("--store", help="s3://bucket/prefix (default: $MODEL_STORE_URL)")
    publish.add_argument("--config", help="config to show the updated entry from "
                                          f"(default: $MODELS_CONFIG or {DEFAULT_CONFIG_PATH}; optional)")
    publish.add_argument("--add-to-config", action="store_true",
                         help="also write the version into the model's entry of the config (active, with its "
                              "sha256; no traffic is routed to it); refused before uploading when the config or "
                              "the model's entry is missing")
    publish.add_argument("--skip-load-check", action="store_true",
                         help="upload without loading the file first (e.g. this machine lacks a library "
                              "the server has); check-config will still load it")
    publish.add_argument("--load-timeout", type=float, default=loadcheck.DEFAULT_TIMEOUT_SECONDS,
                         help="seconds allowed for the load check (default: %(default)s)")
    publish.set_defaults(handler=_publish, prog=publish.prog)
