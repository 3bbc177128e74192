"""docs/first-model.md, run as written: its commands, files and config edit, in order, against a real demo.

The page is the test's script, so it cannot drift from the platform:

- each line of a ```` ```sh ```` block is a command, run in a shell of a second terminal (a command that
  sources or exports, like ``. .venv/bin/activate``, carries over to the next ones, as in a terminal);
  ``make demo`` is terminal 1: started in the background until its banner, and Ctrl-C'd before it is
  started again;
- a ```` ```python NAME ```` block is a file the reader writes, a ```` ```json merge=PATH ```` block an
  edit of PATH (its objects' keys added to PATH's);
- a ```` ```text ```` block after a command is what it prints: each line (its parts around "…", numbers
  and digests aside) must be in the command's output.

The only change to the page's text: the demo's port 8000 becomes a free one (``make demo`` gets it as
``PORT``). It runs in a copy of the checkout (config, examples, migrations, Makefile) with the suite's
virtualenv, in a clean environment: no AWS, database or store settings, the venv not on PATH until the
page activates it. A real embedded Postgres, moto's S3 over HTTP and gunicorn; every wait is bounded.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.demo_process import DemoProcess, gone
from support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "first-model.md"
DOC_PORT = "127.0.0.1:8000"
MAX_COMMANDS = 10  # the bound for the path from a class to a version answering on the demo
RESTART_HEADING = "## It stays"
COMMAND_TIMEOUT_S = 300
TOTAL_TIMEOUT_S = 900
FENCE = re.compile(r"^```(\S*)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
COPIED = ("Makefile", "setup.cfg", "pyproject.toml", "Procfile", "alembic.ini", "migrations", "config", "examples")
# settings that would point a command elsewhere than the demo, and the test run's own variables
DROPPED_ENV = ("DATABASE_URL", "MODEL_STORE_URL", "MODELS_CONFIG", "VIRTUAL_ENV", "PYTHONPATH", "PORT",
               "PROMETHEUS_MULTIPROC_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
DROPPED_PREFIXES = ("AWS_", "MODELPLATFORM_", "PYTEST_", "TEST_DATABASE")


@dataclass(frozen=True)
class Step:
    kind: str          # "command", "file", "merge" or "output"
    text: str          # the command, the file's content, the JSON, the expected output
    target: str = ""   # the file or config to write
    restart: bool = False  # after the path: the restart section


def read_steps(markdown: str) -> list[Step]:
    """The page's blocks, in order, as steps."""
    restart_at = markdown.index(RESTART_HEADING)
    steps = []
    for match in FENCE.finditer(markdown):
        lang, info, body = match.groups()
        restart = match.start() > restart_at
        if lang == "sh":
            for command in body.replace("\\\n", " ").splitlines():
                if command.strip() and not command.lstrip().startswith("#"):
                    steps.append(Step("command", command.strip(), restart=restart))
        elif lang == "python" and info.strip():
            steps.append(Step("file", body, info.strip(), restart))
        elif lang == "json" and info.strip().startswith("merge="):
            steps.append(Step("merge", body, info.strip().removeprefix("merge="), restart))
        elif lang == "text":
            steps.append(Step("output", body, restart=restart))
    return steps


def merge(into: dict[str, Any], fragment: dict[str, Any]) -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def normalized(text: str) -> str:
    """Digests, numbers and runs of spaces, which change from run to run, made equal."""
    text = re.sub(r"\b[0-9a-f]{12,64}\b", "H", text)
    return re.sub(r"\s+", " ", re.sub(r"\d+", "N", text)).strip()


def missing_lines(expected: str, actual: str) -> list[str]:
    """Lines of ``expected`` (each part around "…") not found in ``actual``."""
    found = normalized(actual)
    return [line for line in expected.splitlines()
            if any(part.strip() and normalized(part) not in found for part in line.split("…"))]


def clean_env(venv_bin: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith(DROPPED_PREFIXES)}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != venv_bin.resolve())
    return env


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of what the demo needs from the checkout, with the suite's virtualenv as ``.venv``.

    Outside pytest's ``tmp_path``: as root, pgserver opens the data dir's parents to its own user, and
    other pytest sessions reset ``/tmp/pytest-of-root`` to 0700 (see tests/cli/test_demo_command.py)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file():
        pytest.fail(f"the suite must run in the project's virtualenv (make test), not {venv}")
    path = Path(tempfile.mkdtemp(prefix="modelplatform-first-model-"))
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, path / name)  # mtimes kept: make sees the venv as up to date
    (path / ".venv").symlink_to(venv)
    # `make demo` would otherwise reinstall the package in editable mode from this copy
    if subprocess.run(["make", "-q", ".venv/.installed-demo"], cwd=path, env=clean_env(venv / "bin")).returncode:
        pytest.fail("the virtualenv's install stamp is older than setup.cfg: run `make install` first")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Terminal:
    """Terminal 2: runs the page's commands one by one, remembering what sources or exports carry over."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int) -> None:
        self.cwd, self.env, self.port = cwd, env, port
        self.carried: list[str] = []

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        script = "set -e\n" + "\n".join([*self.carried, command.replace(DOC_PORT, f"127.0.0.1:{self.port}")])
        done = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=COMMAND_TIMEOUT_S)
        if done.returncode == 0 and command.startswith((". ", "source ", "export ", "cd ")):
            self.carried.append(command)
        return done


def check_command(command: str, output: str, work: Path) -> None:
    """What each command of the page must have done: the page's promises, not only its exit status."""
    assert "Traceback" not in output, (command, output)
    if command == "python pricer.py":
        digest = hashlib.sha256((work / "build" / "auto_pricing-2.2.0.dill").read_bytes()).hexdigest()
        assert f"wrote build/auto_pricing-2.2.0.dill, sha256 {digest}" in output
    elif command.startswith("python -m pytest"):
        assert re.search(r"\b1 passed\b", output), output
    elif command.startswith("modelplatform publish"):
        digest = hashlib.sha256((work / "build" / "auto_pricing-2.2.0.dill").read_bytes()).hexdigest()
        assert "published s3://modelplatform-demo/models/auto_pricing/2.2.0.dill" in output
        assert f"sha256 {digest}" in output
        entry = json.loads((work / "config" / "models.json").read_text())["auto_pricing"]
        assert entry["sha256"]["2.2.0"] == digest and "2.2.0" in entry["active_model_versions"]
        assert entry["default"] == "2.1.1"  # no traffic moved
    elif command.startswith("modelplatform check-config"):
        assert "config/models.json: OK (config, store s3://modelplatform-demo/models, models and examples)" in output
        assert "warning" not in output  # once active, 2.2.X covers a version
    elif command.startswith("modelplatform demo reload"):
        assert "reload accepted" in output and "4 version(s)" in output
    elif command.startswith("curl"):
        answer = json.loads(output)
        assert (answer["version"], answer["routed_by"]) == ("2.2.0", "pinned")
        assert answer["output"] == {"premium": 361.46, "currency": "EUR", "no_claims_discount": 0.15}
    elif command.startswith("modelplatform demo rows"):
        assert re.search(r"auto_pricing 2\.2\.0\s+pinned\s+ok\s", output), output
    if command.startswith(("modelplatform publish", "modelplatform check-config")):
        assert "modelplatform: using the demo running in .demo" in output  # found, and said so


def check_refused_reload(terminal: Terminal, work: Path, demo: DemoProcess) -> None:
    """The page promises that a config with a problem is refused, listed, and the last good one kept."""
    config = work / "config" / "models.json"
    good = config.read_text()
    config.write_text(good.replace('"premium": 361.46', '"premium": 999.99'))
    try:
        done = terminal.run("modelplatform demo reload")
    finally:
        config.write_text(good)
    assert done.returncode == 1, done.stdout
    assert "reload refused: the demo keeps serving its last good config. 1 problem(s):" in done.stdout
    assert "examples['2.2.X'][0]: output differs" in done.stdout
    # terminal 1 says so too: the demo echoes the server's log every 0.2 s, so allow it a moment
    deadline = time.monotonic() + 15
    while "[server] ERROR reload refused" not in demo.output and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "[server] ERROR reload refused" in demo.output, demo.output[-2000:]
    still = terminal.run(next(s.text for s in read_steps(DOC.read_text()) if s.text.startswith("curl")))
    assert json.loads(still.stdout)["version"] == "2.2.0"


@pytest.mark.slow
def test_first_model_doc_runs_as_written(checkout: Path) -> None:
    steps = read_steps(DOC.read_text())
    path_commands = [s.text for s in steps if s.kind == "command" and not s.restart]
    assert len(path_commands) <= MAX_COMMANDS, path_commands
    assert path_commands[0] == "make demo" and "modelplatform demo reload" in path_commands

    port = free_port()
    env = clean_env(Path(sys.prefix) / "bin")
    terminal = Terminal(checkout, env, port)
    demo: DemoProcess | None = None
    started: list = []
    last_output = ""
    deadline = time.monotonic() + TOTAL_TIMEOUT_S
    try:
        for step in steps:
            assert time.monotonic() < deadline, f"the page took longer than {TOTAL_TIMEOUT_S}s"
            if step.kind == "file":
                (checkout / step.target).write_text(step.text)
            elif step.kind == "merge":
                target = checkout / step.target
                document = json.loads(target.read_text())
                merge(document, json.loads(step.text))
                target.write_text(json.dumps(document, indent=2) + "\n")
            elif step.kind == "output":
                missing = missing_lines(step.text.replace(DOC_PORT, f"127.0.0.1:{port}"), last_output)
                assert not missing, f"the page shows output its command did not print: {missing}\n{last_output}"
            elif step.text == "make demo":
                if demo is not None:  # "Ctrl-C in terminal 1 … then start it again"
                    check_refused_reload(terminal, checkout, demo)
                    started = demo.processes()
                    demo.stop("ctrl-c")
                    assert "demo stopped" in demo.output and gone(started) == []
                demo = DemoProcess(["bash", "-c", step.text], checkout, checkout / ".demo", {**env, "PORT": str(port)})
                last_output = demo.wait_ready()
                assert f"modelplatform demo is serving on http://127.0.0.1:{port}" in last_output
            else:
                done = terminal.run(step.text)
                last_output = done.stdout
                assert done.returncode == 0, (step.text, done.stdout)
                check_command(step.text, done.stdout, checkout)
        assert demo is not None
        assert "kept      s3://modelplatform-demo/models/auto_pricing/2.2.0.dill (published earlier)" in demo.output
        started = demo.processes()
        demo.stop("ctrl-c")
    finally:
        if demo is not None:
            demo.kill()
    assert "demo stopped" in demo.output
    assert gone(started) == []
