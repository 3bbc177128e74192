"""The whole platform on one machine: embedded Postgres, a local S3 endpoint, the example models, and
the production web command, with ready-to-paste ``curl`` calls.

:func:`serve` starts, in order: Postgres (``pgserver``, data under ``<data-dir>/pgdata``), moto's S3
server on loopback with the objects of earlier runs put back (:mod:`modelplatform.demo_s3`, kept under
``<data-dir>/s3``), publishes the committed example artifacts (``examples/models/<name>/<version>.dill``)
and checks that every other active version of the config is in the store, runs the Alembic migrations
and starts the Procfile ``web:`` command (gunicorn), whose output goes to ``<data-dir>/server.log``
(reloads, warnings and errors are echoed to the terminal; request lines are not, so they never scroll
the calls away). Once it serves, it writes ``<data-dir>/demo.json`` (:mod:`modelplatform.demostate`),
which lets the other commands find it. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops everything in reverse
order and returns 0. Re-running reuses the data dir: audit rows and published versions are still there.

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
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from modelplatform import artifacts, demostate
from modelplatform.config import ConfigError, ModelsConfig, load_config
from modelplatform.demostate import DUMMY_AWS, DemoState
from modelplatform.settings import DEFAULT_CONFIG_PATH, StoreLocation
from modelplatform.store import ArtifactError, S3ModelStore, VersionExists

DEMO_BUCKET = "modelplatform-demo"
DEMO_PREFIX = "models"
SERVER_LOG = "server.log"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
ECHO_INTERVAL_S = 0.2
BANNER_END = "Ctrl-C stops the server, S3 and Postgres."
# their INFO lines (every S3 request, every pg_ctl call, Alembic's plugin set-up) would bury the calls
# the demo prints
QUIET_LOGGERS = ("pgserver", "werkzeug", "alembic", "botocore")
# server log lines echoed to the terminal whatever their level: the verdict of a config reload
ECHOED_PREFIXES = ("reload accepted", "reload refused", "reload problem")


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
    data_dir: Path = demostate.DEFAULT_DATA_DIR
    s3_port: int = 0  # 0: the previous run's port when free, else any free one
    out: Callable[[str], None] = field(default=print)
    home: Path | None = None  # the checkout (MODELPLATFORM_HOME), when not the working directory


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


def publish(store: S3ModelStore, model: str, version: str, data: bytes) -> str:
    """Put ``data`` at ``<prefix>/<model>/<version>.dill`` unless that exact file is already there.

    Published versions are immutable: different bytes under an existing key raise :class:`DemoError`.
    Returns ``"published"`` or ``"already published"``.
    """
    sha256 = artifacts.sha256_hex(data)
    try:
        if not store.exists(model, version):
            store.publish(model, version, data, sha256)  # the same conditional write as `modelplatform publish`
            return "published"
    except VersionExists:
        pass  # published between the two calls
    if artifacts.sha256_hex(store.fetch(model, version)) != sha256:
        raise DemoError(f"{store.url(model, version)} already holds different bytes; published versions "
                        f"are immutable (remove the demo data dir to start afresh)") from None
    return "already published"


def artifact_path(root: Path, model: str, version: str) -> Path:
    return root / "examples" / "models" / model / f"{version}.dill"


def prepare_store(store: S3ModelStore, config: ModelsConfig, root: Path, out: Callable[[str], None]) -> None:
    """Make sure every active version of ``config`` is in the store with its pinned sha256.

    A version with a committed example artifact is published from it (checked against the config
    first); any other (one a user published into the demo) must already be in the store, kept from an
    earlier run. Raises :class:`DemoError` naming the version and what to do.
    """
    for spec in config:
        for version in spec.active_versions:
            path = artifact_path(root, spec.name, version)
            if path.is_file():
                data = path.read_bytes()
                try:
                    artifacts.verify(spec.name, version, data, spec.sha256[version])
                except artifacts.ArtifactRejected as exc:
                    raise DemoError(str(exc)) from None
                out(f"  {publish(store, spec.name, version, data)} {store.url(spec.name, version)}")
                continue
            try:
                data = store.fetch(spec.name, version)
            except ArtifactError as exc:
                raise DemoError(
                    f"{spec.name} {version} is active in the config but {exc.reason}, and there is no example "
                    f"artifact {path}: the demo keeps what is published into it, so it was published to "
                    "another store or the demo's data dir was removed. Take the version out of the config "
                    "(active_model_versions, and default, ab_test or shadow if they name it), start the "
                    "demo and publish it again (docs/first-model.md)") from None
            try:
                artifacts.verify(spec.name, version, data, spec.sha256[version])
            except artifacts.ArtifactRejected as exc:
                raise DemoError(f"{exc}; the config must pin the sha256 `modelplatform publish` printed") from None
            out(f"  kept      {store.url(spec.name, version)} (published earlier)")


def web_command(root: Path) -> list[str]:
    """The Procfile's ``web:`` command, run with this interpreter's gunicorn."""
    for line in (root / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line[len("web:"):])
            if argv and argv[0] == "gunicorn":
                argv = [sys.executable, "-m", "gunicorn", *argv[1:]]
            return argv
    raise DemoError(f"{root / 'Procfile'} has no web: line")


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll ``/readyz`` until it answers 200. Raises :class:`DemoError` if the server exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the web server exited with code {process.returncode} before it was ready; "
                            f"its errors are above, its whole log is {log}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise DemoError(f"the web server was not ready after {timeout:.0f}s; its log is {log}")


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
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


class LogEcho:
    """Follows the web server's log file and prints what a person at the terminal must see: the lines
    of :data:`ECHOED_PREFIXES` (reload accepted or refused, its problems) and warnings and errors, never the
    request lines."""

    def __init__(self, path: Path, out: Callable[[str], None], offset: int = 0) -> None:
        self.path, self.out, self.offset = path, out, offset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-log-echo", daemon=True)

    def __enter__(self) -> LogEcho:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def shown(line: str) -> str | None:
        """The text to print for one log line, or None."""
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return f"[server] {line}" if line.strip() else None  # e.g. a traceback before logging is set up
        level, message = doc.get("level", ""), str(doc.get("message", ""))
        if level in ("WARNING", "ERROR", "CRITICAL") or message.startswith(ECHOED_PREFIXES):
            return f"[server] {level} {message}"
        return None

    def _run(self) -> None:
        pending = ""
        with self.path.open("r", encoding="utf-8", errors="replace") as log:
            log.seek(self.offset)
            while True:
                chunk = log.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        shown = self.shown(pending.rstrip("\n"))
                        pending = ""
                        if shown is not None:
                            self.out(shown)
                    continue
                if self._stop.is_set():
                    return
                self._stop.wait(ECHO_INTERVAL_S)


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


def cli_command(*args: str) -> str:
    """How to run ``modelplatform ARGS`` from here: ``modelplatform`` when the venv is active, else its path."""
    script = Path(sys.executable).parent / "modelplatform"
    if shutil.which("modelplatform") == str(script):
        argv = ["modelplatform"]
    elif script.exists():
        relative = os.path.relpath(script)  # .venv/bin/modelplatform from the checkout
        argv = [str(script) if relative.startswith("..") else relative]
    else:
        argv = [sys.executable, "-m", "modelplatform.cli"]
    return shlex.join([*argv, *args])


def banner(base_url: str, calls: list[Call], data_dir: Path, database_url: str, endpoint: str, config_path: Path,
           log: Path) -> str:
    where = [] if data_dir == demostate.DEFAULT_DATA_DIR else ["--data-dir", str(data_dir)]
    lines = [
        "",
        f"modelplatform demo is serving on {base_url}",
        f"  Postgres    {database_url}",
        f"  S3          {endpoint}  s3://{DEMO_BUCKET}/{DEMO_PREFIX}  (objects kept in {data_dir / 's3'})",
        f"  config      {config_path}  (edit it, then: modelplatform demo reload)",
        f"  server log  {log}  (a line per request; reloads and errors show here too)",
        "Paste these (the comment gives the status to expect):",
        "",
        *(call.render() + "\n" for call in calls),
        "# the latest rows of the inferences audit table (no psql needed)",
        cli_command("demo", "rows", *where),
        "",
        "In another terminal, in this directory, `. .venv/bin/activate` puts modelplatform on your PATH; its",
        "commands (publish, check-config, ab-report, demo rows, demo reload) find this demo by themselves.",
        "A first model of your own, end to end: docs/first-model.md",
        BANNER_END,
    ]
    return "\n".join(lines)


def quiet_logs() -> None:
    """Keep the terminal for what the demo says: libraries' INFO lines and warnings about the machine
    (pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset) are noise here. Call it before
    importing Alembic, which logs its plugin set-up at import."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


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
    quiet_logs()
    from modelplatform import db, demo_s3

    out = options.out
    root = db.project_root(options.home)
    data_dir = options.data_dir.resolve()
    config_path = root / DEFAULT_CONFIG_PATH
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise DemoError(str(exc)) from None
    base_url = f"http://{options.host}:{options.port}"
    ensure_port_free(options.host, options.port)
    running = demostate.read(data_dir)
    if running is not None:
        raise DemoError(f"a demo is already running with {data_dir} (pid {running.pid}, {running.base_url}); "
                        "stop it first, or pick another --data-dir")
    command = web_command(root)

    with stop_on_signals(), ExitStack() as stack:
        try:
            out(f"starting Postgres (data in {data_dir / 'pgdata'})")
            with signals_deferred():
                database_url = stack.enter_context(postgres(data_dir / "pgdata"))
            out(f"starting a local S3 endpoint (moto; objects kept in {data_dir / 's3'})")
            with signals_deferred():
                try:
                    endpoint = stack.enter_context(demo_s3.persistent_s3(data_dir / "s3", DEMO_BUCKET, DUMMY_AWS,
                                                                         port=options.s3_port))
                except demo_s3.LocalS3Error as exc:
                    raise DemoError(str(exc)) from None
            aws_env = {"AWS_ENDPOINT_URL": endpoint, **DUMMY_AWS}
            location = StoreLocation(bucket=DEMO_BUCKET, prefix=DEMO_PREFIX)
            store = S3ModelStore(location, client=demostate.s3_client(endpoint))
            out("publishing the example models")
            prepare_store(store, config, root, out)
            out("applying database migrations")
            db.upgrade(database_url, home=root)

            log = data_dir / SERVER_LOG
            env = {**{k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}, **aws_env,
                   "HOST": options.host, "PORT": str(options.port), "DATABASE_URL": database_url,
                   "MODEL_STORE_URL": str(location), "MODELS_CONFIG": str(config_path)}
            out(f"starting the web server: {shlex.join(command)}")
            out(f"  its log: {log}")
            log_file = stack.enter_context(log.open("ab"))
            offset = log_file.tell()
            # its own session and process group: a terminal's Ctrl-C reaches only us, we stop it before
            # Postgres, and the group's signal reaches every worker.
            # Not started under signals_deferred(): a child inherits the blocked mask and gunicorn
            # would never see our SIGTERM.
            server = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            stack.callback(stop_process_group, server)
            stack.enter_context(LogEcho(log, out, offset))
            wait_ready(base_url, server, log)

            state = DemoState(data_dir=str(data_dir), pid=os.getpid(), server_pid=server.pid, server_log=str(log),
                              base_url=base_url, database_url=database_url, aws_endpoint_url=endpoint,
                              model_store_url=str(location), models_config=str(config_path))
            stack.callback(state.write().unlink, missing_ok=True)
            out(banner(base_url, example_calls(base_url, config), options.data_dir, database_url, endpoint,
                       demostate.shown_path(config_path), demostate.shown_path(log)))
            sys.stdout.flush()
            code = server.wait()
            raise DemoError(f"the web server exited unexpectedly with code {code}; its log is {log}")
        except Stopped as stop:
            out(f"\n{stop.args[0]} received: stopping the web server, S3 and Postgres")
        except BaseException:
            ignore_stop_signals()  # from here the stack unwinds: a Ctrl-C must not cut the cleanup short
            raise
    out("demo stopped")
    return 0
