"""Publishing and checking: model files on disk, the CLI run in-process, configs written to disk."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelplatform.authoring import dumps_by_value
from modelplatform.cli import main
from modelplatform.store import S3ModelStore

DATA = Path(__file__).parent.parent / "data"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``modelplatform ARGS…`` in this process; returns exit code, stdout and stderr."""
    def run(*argv: str) -> Run:
        capsys.readouterr()
        handlers = list(logging.root.handlers)
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        finally:
            logging.root.handlers[:] = handlers  # main() configures logging onto the captured stream
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)
    return run


@pytest.fixture
def model_file(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Write a model (serialized by value, as from a notebook) or raw bytes to a file."""
    def write(obj: Any, name: str = "model.dill") -> Path:
        path = tmp_path / name
        path.write_bytes(obj if isinstance(obj, bytes) else dumps_by_value(obj))
        return path
    return write


@pytest.fixture
def store_url(store: S3ModelStore, monkeypatch: pytest.MonkeyPatch) -> str:
    """``MODEL_STORE_URL`` pointing at this test's bucket."""
    url = str(store.location)
    monkeypatch.setenv("MODEL_STORE_URL", url)
    return url


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(config: dict[str, Any]) -> Path:
        path = tmp_path / "models.json"
        path.write_text(json.dumps(config, indent=2))
        return path
    return write


@pytest.fixture
def schema() -> Callable[[str], dict[str, Any]]:
    """Load a JSON Schema from ``tests/data``."""
    def load(name: str) -> dict[str, Any]:
        return json.loads((DATA / name).read_text())
    return load


@pytest.fixture
def stored(store: S3ModelStore) -> Callable[[], dict[str, bytes]]:
    """Every object in this test's bucket, key → bytes."""
    def read() -> dict[str, bytes]:
        listing = store.client.list_objects_v2(Bucket=store.location.bucket)
        return {o["Key"]: store.client.get_object(Bucket=store.location.bucket, Key=o["Key"])["Body"].read()
                for o in listing.get("Contents", [])}
    return read
