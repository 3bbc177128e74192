"""Where a running demo is, for the other commands: the state ``modelplatform demo`` writes in its data dir.

``modelplatform demo`` writes ``<data-dir>/demo.json`` once it serves and removes it when it stops. Any
other command run without settings (no ``DATABASE_URL``, ``MODEL_STORE_URL`` or ``AWS_ENDPOINT_URL``, no
``--store``) uses the demo it finds there (:mod:`modelplatform.cli.resolve`), and says so: so a data scientist
never guesses an S3 port, a bucket or dummy credentials. The data dir is looked for in the working directory
(``.demo``), then in the checkout ``MODELPLATFORM_HOME`` names and in the one this package is installed from.

Light on purpose (no boto3, no SQLAlchemy): every command line reads it before doing anything.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(".demo")
STATE_FILE = "demo.json"
# moto accepts any credentials; real ones must never reach the local endpoint
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class DemoState:
    """A running demo: its process, its web server, and the settings that reach its parts."""

    data_dir: str
    pid: int                # the `modelplatform demo` process
    server_pid: int         # the gunicorn master (HUP reloads the config)
    server_log: str         # gunicorn's output: request lines, reloads, errors
    base_url: str
    database_url: str
    aws_endpoint_url: str
    model_store_url: str
    models_config: str

    def write(self) -> Path:
        path = Path(self.data_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)
        return path


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for a demo's local endpoint with the demo's dummy credentials, given explicitly: whatever
    the environment holds (a profile, real keys) never reaches the local endpoint."""
    import boto3
    import botocore.session

    # no profile either: AWS_PROFILE may name one this machine does not have, and its settings are not the demo's
    without_profile = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return boto3.session.Session(botocore_session=without_profile).client(
        "s3", endpoint_url=endpoint, region_name=DUMMY_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(data_dir: Path) -> DemoState | None:
    """The demo running with ``data_dir``, or None (no state file, an unreadable one, or its process is gone)."""
    try:
        doc = json.loads((data_dir / STATE_FILE).read_text())
        state = DemoState(**{**doc, "data_dir": str(data_dir.resolve())})
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None


def candidate_dirs(home: Path | None = None) -> Iterator[Path]:
    """Where a demo's data dir may be: ``./.demo``, ``<home>/.demo`` (``MODELPLATFORM_HOME``), ``<checkout>/.demo``."""
    yield Path.cwd() / DEFAULT_DATA_DIR
    if home is not None:
        yield home / DEFAULT_DATA_DIR
    yield Path(__file__).resolve().parents[2] / DEFAULT_DATA_DIR  # the checkout of an editable install


def find_running(data_dir: Path | None = None, *, home: Path | None = None) -> DemoState | None:
    """The running demo of ``data_dir``, or else the first found in :func:`candidate_dirs`."""
    for candidate in [data_dir] if data_dir is not None else candidate_dirs(home):
        state = read(candidate)
        if state is not None:
            return state
    return None


def shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when it is inside it (shorter to read and to paste)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
