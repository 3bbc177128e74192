"""Where a running demo is, for the other commands: the state ``modelplatform demo`` writes in its data dir.

``modelplatform demo`` writes ``<data-dir>/demo.json`` once it serves and removes it when it stops. Any
other command run without settings (no ``DATABASE_URL``, ``MODEL_STORE_URL`` or ``AWS_ENDPOINT_URL``, no
``--store``) uses the demo it finds there, and says so: so a data scientist never guesses an S3 port,
a bucket or dummy credentials. The data dir is looked for in the working directory (``.demo``), then
in ``$MODELPLATFORM_HOME`` and in the checkout this package is installed from.

Light on purpose (no boto3, no SQLAlchemy): every command line reads it before doing anything.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(".demo")
STATE_FILE = "demo.json"
# moto accepts any credentials; real ones must never reach the local endpoint
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}
# any of these in the environment means the user configured the command: a demo is never mixed in
EXPLICIT_SETTINGS = ("DATABASE_URL", "MODEL_STORE_URL", "AWS_ENDPOINT_URL")


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

    def env(self) -> dict[str, str]:
        """The environment that points a command at this demo."""
        return {"DATABASE_URL": self.database_url, "MODEL_STORE_URL": self.model_store_url,
                "MODELS_CONFIG": self.models_config, "AWS_ENDPOINT_URL": self.aws_endpoint_url, **DUMMY_AWS}

    def write(self) -> Path:
        path = Path(self.data_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)
        return path


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


def candidate_dirs() -> Iterator[Path]:
    """Where a demo's data dir may be: ``./.demo``, ``$MODELPLATFORM_HOME/.demo``, ``<checkout>/.demo``."""
    yield Path.cwd() / DEFAULT_DATA_DIR
    home = os.environ.get("MODELPLATFORM_HOME")
    if home:
        yield Path(home) / DEFAULT_DATA_DIR
    yield Path(__file__).resolve().parents[2] / DEFAULT_DATA_DIR  # the checkout of an editable install


def find_running(data_dir: Path | None = None) -> DemoState | None:
    """The running demo of ``data_dir``, or else the first found in :func:`candidate_dirs`."""
    for candidate in [data_dir] if data_dir is not None else candidate_dirs():
        state = read(candidate)
        if state is not None:
            return state
    return None


def use_running_demo(environ: dict[str, str] | os._Environ[str]) -> DemoState | None:
    """Point this process at a running demo when no settings are given; returns it, or None.

    Nothing changes when any of :data:`EXPLICIT_SETTINGS` is set. ``MODELS_CONFIG`` is set only when
    it is not (a config of the user's own wins). ``AWS_PROFILE`` is dropped: the demo's dummy keys apply.
    """
    if any(environ.get(name, "").strip() for name in EXPLICIT_SETTINGS):
        return None
    state = find_running()
    if state is None:
        return None
    for name, value in state.env().items():
        if name == "MODELS_CONFIG":
            if environ.get(name, "").strip():
                continue
            value = str(shown_path(Path(value)))
        environ[name] = value
    environ.pop("AWS_PROFILE", None)
    return state


def shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when it is inside it (shorter to read and to paste)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
