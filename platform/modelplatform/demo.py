"""The whole platform on one machine: embedded Postgres, a local S3 endpoint, the example models, and
the production web command, with ready-to-paste ``curl`` calls.

:func:`serve` starts, in order: Postgres (``pgserver``, data under ``<data-dir>/pgdata``), moto's S3
server on a free loopback port, publishes the committed example artifacts
(``examples/models/<name>/<version>.dill``) to it, runs the Alembic migrations and starts the
Procfile ``web:`` command (gunicorn). Ctrl-C (SIGINT), SIGTERM or SIGHUP stops them in reverse order and
returns 0. Re-running reuses the data dir. :func:`show_rows` prints the latest audit rows of a
running demo, for a look at the ``inferences`` table without ``psql``.

Nothing is started at import time; the heavy imports (pgserver, moto) happen inside the functions.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from modelplatform import artifacts
from modelplatform.config import ConfigError, ModelsConfig, load_config
from modelplatform.settings import DEFAULT_CONFIG_PATH, StoreLocation
from modelplatform.store import S3ModelStore, VersionExists

DEMO_BUCKET = "modelplatform-demo"
DEMO_PREFIX = "models"
STATE_FILE = "demo.json"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
# their INFO lines (every S3 request, every pg_ctl call) would bury the calls the demo prints
QUIET_LOGGERS = ("pgserver", "werkzeug", "alembic")
# moto accepts any credentials; real ones must never reach the local endpoint
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwind and stop everything started so far.

    A ``BaseException`` so that no ``except Exception`` on the way swallows it.
    """


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".demo")
    out: Callable[[str], None] = field(default=print)


@dataclass(frozen=True)
class Call:
    """One example request: what it shows, the status the demo promises, and the command."""

    description: str
    status: int
    argv: tuple[str, ...]

    def render(self) -> str:
        return f"# {self.status} · {self.description}\n{shlex.join(self.argv)}"


# --- the parts ------------------------------------------------------------------------------------

def ensure_port_free(host: str, port: int) -> None:
    """Raise :class:`DemoError` when ``host:port`` cannot be bound (something listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DemoError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; stop whatever listens "
                            "there or pick another port with --port") from None


@contextmanager
def postgres(pgdata: Path) -> Iterator[str]:
    """An embedded Postgres whose data lives in ``pgdata`` (created on first use); yields its URL."""
    import pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except subprocess.SubprocessError as exc:  # initdb/pg_ctl failed or timed out; pgserver logged why
        raise DemoError(f"Postgres did not start in {pgdata} ({exc}); its log is {pgdata / 'log'}") from None
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def local_s3() -> Iterator[str]:
    """moto's S3 server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(aws_env: dict[str, str]) -> Any:
    """A boto3 S3 client for the local endpoint, configured explicitly rather than through os.environ."""
    import boto3

    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name=aws_env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"])


def ensure_bucket(store: S3ModelStore) -> None:
    """Create the store's bucket unless it is already there."""
    client = store.client
    try:
        client.create_bucket(Bucket=store.location.bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


def publish(store: S3ModelStore, model: str, version: str, data: bytes) -> str:
    """Put ``data`` at ``<prefix>/<model>/<version>.dill`` unless that exact file is already there.

    Published versions are immutable: different bytes under an existing key raise :class:`DemoError`.
    Returns ``"published"`` or ``"already published"``.
    """
    sha256 = artifacts.sha256_hex(data)
    try:
        store.publish(model, version, data, sha256)  # the same conditional write as `modelplatform publish`
    except VersionExists:
        if artifacts.sha256_hex(store.fetch(model, version)) != sha256:
            raise DemoError(f"{store.url(model, version)} already holds different bytes; published versions "
                            f"are immutable (remove the demo data dir to start afresh)") from None
        return "already published"
    return "published"


def artifact_path(root: Path, model: str, version: str) -> Path:
    return root / "examples" / "models" / model / f"{version}.dill"


def publish_examples(store: S3ModelStore, config: ModelsConfig, root: Path, out: Callable[[str], None]) -> None:
    """Publish the committed artifact of every active version, checked against the config's sha256 first."""
    for spec in config:
        for version in spec.active_versions:
            path = artifact_path(root, spec.name, version)
            if not path.is_file():
                raise DemoError(f"{spec.name} {version}: no artifact at {path}; build it with "
                                "`python examples/build_models.py`")
            data = path.read_bytes()
            try:
                artifacts.verify(spec.name, version, data, spec.sha256[version])
            except artifacts.ArtifactRejected as exc:
                raise DemoError(str(exc)) from None
            outcome = publish(store, spec.name, version, data)
            out(f"  {outcome} {store.url(spec.name, version)}")


def web_command(root: Path) -> list[str]:
    """The Procfile's ``web:`` command, run with this interpreter's gunicorn."""
    for line in (root / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line[len("web:"):])
            if argv and argv[0] == "gunicorn":
                argv = [sys.executable, "-m", "gunicorn", *argv[1:]]
            return argv
    raise DemoError(f"{root / 'Procfile'} has no web: line")


def wait_ready(base_url: str, process: subprocess.Popen, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll ``/readyz`` until it answers 200. Raises :class:`DemoError` if the server exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the web server exited with code {process.returncode} before it was ready; "
                            "its log is above")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise DemoError(f"the web server was not ready after {timeout:.0f}s; its log is above")


def stop_process_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the process group ``process`` leads (gunicorn's graceful stop; it also reaches workers
    whose master died), then SIGKILL after ``timeout`` seconds."""
    def signal_group(signum: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    signal_group(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        process.wait(timeout)


# --- what the user sees ---------------------------------------------------------------------------

def example_calls(base_url: str, config: ModelsConfig, model: str = "auto_pricing") -> list[Call]:
    """curl calls over the served config: list, default and pinned predicts, both kinds of 422, metadata."""
    curl = ("curl", "-sS", "-i")
    calls = [Call("every model, its versions and A/B test", 200, (*curl, f"{base_url}/models"))]
    spec = config.models.get(model)
    if spec is None:
        return calls

    def post(url: str, body: Any) -> tuple[str, ...]:
        return (*curl, url, "-H", "Content-Type: application/json", "-d", json.dumps(body))

    default_examples = spec.examples_for(spec.default)
    older = [v for v in spec.active_versions if spec.schema_key(v) != spec.schema_key(spec.default)]
    if default_examples:
        body = default_examples[0].input
        router = f"A/B test {spec.ab_test.name}" if spec.ab_test else f"default {spec.default}"
        calls.append(Call(f"unpinned predict, routed by the {router}", 200,
                          post(f"{base_url}/models/{model}/predict", body)))
        broken = {k: v for k, v in body.items() if k != "vehicle"}
        broken["driver_age"] = 12
        calls.append(Call("schema violation: every error listed with its JSON Pointer", 422,
                          post(f"{base_url}/models/{model}/versions/{spec.default}/predict", broken)))
        calls.append(Call("the model rejects an unknown vehicle (code unknown_vehicle)", 422,
                          post(f"{base_url}/models/{model}/versions/{spec.default}/predict",
                               {**body, "vehicle": "tractor"})))
    for version in older[:1]:
        for example in spec.examples_for(version)[:1]:
            calls.append(Call(f"pinned to {version}, with the {spec.schema_key(version)} schema", 200,
                              post(f"{base_url}/models/{model}/versions/{version}/predict", example.input)))
        calls.append(Call(f"metadata of {version}: sha256, schema, examples", 200,
                          (*curl, f"{base_url}/models/{model}/versions/{version}")))
    return calls


def rows_command(data_dir: Path) -> str:
    """How to run ``modelplatform demo rows`` from here, whether or not the venv is activated."""
    script = Path(sys.executable).parent / "modelplatform"
    if shutil.which("modelplatform") == str(script):
        argv = ["modelplatform"]
    elif script.exists():
        relative = os.path.relpath(script)  # .venv/bin/modelplatform from the checkout
        argv = [str(script) if relative.startswith("..") else relative]
    else:
        argv = [sys.executable, "-m", "modelplatform.cli"]
    return shlex.join([*argv, "demo", "rows", "--data-dir", str(data_dir)])


def banner(base_url: str, calls: list[Call], data_dir: Path, database_url: str, endpoint: str) -> str:
    lines = [
        "",
        f"modelplatform demo is serving on {base_url}",
        f"  Postgres   {database_url}",
        f"  S3         {endpoint}  s3://{DEMO_BUCKET}/{DEMO_PREFIX}",
        "Paste these (the comment gives the status to expect):",
        "",
        *(call.render() + "\n" for call in calls),
        "# the latest rows of the inferences audit table (no psql needed)",
        rows_command(data_dir),
        "",
        "Ctrl-C stops the server, S3 and Postgres.",
    ]
    return "\n".join(lines)


# --- the command ----------------------------------------------------------------------------------

def ignore_stop_signals() -> None:
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP (terminal closed) into :class:`Stopped`; ignore further ones while
    shutting down, so a second Ctrl-C cannot cut the cleanup short."""
    def handler(signum: int, frame: FrameType | None) -> None:
        ignore_stop_signals()
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals back while something is started *and* registered for cleanup, so a Ctrl-C
    cannot land in between and leave it running; a pending signal is delivered on exit.

    Processes spawned inside inherit the blocked mask: only for Postgres, which sets its own mask.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def serve(options: DemoOptions) -> int:
    """Run the demo until SIGINT/SIGTERM/SIGHUP. Returns 0 on a requested stop; raises :class:`DemoError`."""
    from modelplatform import db

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    out = options.out
    root = db.project_root()
    data_dir = options.data_dir.resolve()
    config_path = root / DEFAULT_CONFIG_PATH
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise DemoError(str(exc)) from None
    base_url = f"http://{options.host}:{options.port}"
    ensure_port_free(options.host, options.port)
    command = web_command(root)

    with stop_on_signals(), ExitStack() as stack:
        try:
            out(f"starting Postgres (data in {data_dir / 'pgdata'})")
            with signals_deferred():
                database_url = stack.enter_context(postgres(data_dir / "pgdata"))
            out("starting a local S3 endpoint (moto)")
            with signals_deferred():
                endpoint = stack.enter_context(local_s3())
            aws_env = {"AWS_ENDPOINT_URL": endpoint, **DUMMY_AWS}
            location = StoreLocation(bucket=DEMO_BUCKET, prefix=DEMO_PREFIX)
            store = S3ModelStore(location, client=s3_client(aws_env))
            ensure_bucket(store)
            out("publishing the example models")
            publish_examples(store, config, root, out)
            out("applying database migrations")
            db.upgrade(database_url)

            env = {**{k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}, **aws_env,
                   "HOST": options.host, "PORT": str(options.port), "DATABASE_URL": database_url,
                   "MODEL_STORE_URL": str(location), "MODELS_CONFIG": str(config_path)}
            out(f"starting the web server: {shlex.join(command)}")
            # its own session and process group: a terminal's Ctrl-C reaches only us, we stop it before
            # Postgres, and the group's signal reaches every worker.
            # Not started under signals_deferred(): a child inherits the blocked mask and gunicorn
            # would never see our SIGTERM.
            server = subprocess.Popen(command, cwd=root, env=env, start_new_session=True)
            stack.callback(stop_process_group, server)
            wait_ready(base_url, server)

            state = data_dir / STATE_FILE
            state.write_text(json.dumps({"pid": os.getpid(), "base_url": base_url, "database_url": database_url}))
            stack.callback(state.unlink, missing_ok=True)
            out(banner(base_url, example_calls(base_url, config), options.data_dir, database_url, endpoint))
            sys.stdout.flush()
            code = server.wait()
            raise DemoError(f"the web server exited unexpectedly with code {code}; its log is above")
        except Stopped as stop:
            out(f"\n{stop.args[0]} received: stopping the web server, S3 and Postgres")
        except BaseException:
            ignore_stop_signals()  # from here the stack unwinds: a Ctrl-C must not cut the cleanup short
            raise
    out("demo stopped")
    return 0


def show_rows(data_dir: Path, limit: int = 10, out: Callable[[str], None] = print) -> int:
    """Print the latest ``limit`` audit rows of the demo running with ``data_dir``. Raises :class:`DemoError`."""
    import sqlalchemy as sa

    from modelplatform.settings import normalize_database_url

    state = data_dir.resolve() / STATE_FILE
    if not state.is_file():
        raise DemoError(f"no running demo uses {data_dir} (start it with `modelplatform demo`)")
    database_url = json.loads(state.read_text())["database_url"]
    engine = sa.create_engine(normalize_database_url(database_url))
    query = sa.text("select created_at, model, version, routed_by, experiment, status, latency_ms, output, error "
                    "from inferences order by created_at desc limit :limit")
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"limit": limit}).mappings().all()
    except sa.exc.OperationalError as exc:
        raise DemoError(f"cannot reach the demo's Postgres: {exc.orig}") from None
    finally:
        engine.dispose()
    out(f"{len(rows)} latest inference(s), newest first:")
    for row in rows:
        result = row["output"] if row["status"] == "ok" else row["error"]
        out(f"{row['created_at']:%H:%M:%S} {row['model']} {row['version']:<7} {row['routed_by']:<8} "
            f"{row['status']:<13} {row['latency_ms']:7.2f} ms  {json.dumps(result)[:100]}")
    return 0
