"""Load a model file in a separate process, never in ours: unpickling with dill runs the file's code.

The parent side is :func:`check_file`; the child side is this module's ``__main__``::

    python -m modelplatform.loadcheck FILE --model NAME --version V [--run-inputs]

The child runs with :func:`modelplatform.childenv.loading_env` (no credentials, whatever they are called)
and loads FILE with :func:`modelplatform.artifacts.load_predictor` (so "loads" means exactly what
it means for the server), and with ``--run-inputs`` reads a JSON array of inputs on stdin and passes
each to ``predict``. It writes one JSON report on its original stdout; anything the model prints goes
to stderr, so a chatty model cannot corrupt the report. Exit status 0 means the report was written.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelplatform import childenv

DEFAULT_TIMEOUT_SECONDS = 120.0
MAX_STDERR_CHARS = 2000

#: outcome of one ``predict`` call in the child
OK, REJECTED, RAISED, UNENCODABLE = "ok", "rejected", "raised", "unencodable"


@dataclass(frozen=True)
class PredictOutcome:
    """``status`` is one of ``ok``/``rejected``/``raised``/``unencodable``; ``output_json`` is the output as
    the API would encode it (``ok`` only); ``message`` says what went wrong otherwise."""

    status: str
    output_json: str | None = None
    message: str = ""


@dataclass(frozen=True)
class LoadReport:
    """The result of loading one file in a child process. ``error`` is None when it loaded."""

    error: str | None
    predictor_type: str | None = None
    outcomes: tuple[PredictOutcome, ...] = field(default_factory=tuple)

    @property
    def loaded(self) -> bool:
        return self.error is None


def check_file(path: str | Path, model: str, version: str, inputs: list[Any] | None = None, *,
               timeout: float = DEFAULT_TIMEOUT_SECONDS) -> LoadReport:
    """Load ``path`` (model ``model`` version ``version``) in a fresh interpreter and, when ``inputs`` is
    given, run each through ``predict``.

    Never raises for anything the file does: a load failure, a crash or a timeout (the child is killed)
    becomes :attr:`LoadReport.error`, a message naming model and version.
    """
    label = f"{model} {version}"
    # -P: the working directory is not importable, as on the server, so a class pickled by reference to a
    # module lying next to the notebook fails here and not in production
    command = [sys.executable, "-P", "-m", "modelplatform.loadcheck", str(path),
               "--model", model, "--version", version]
    stdin = None
    if inputs is not None:
        command.append("--run-inputs")
        stdin = json.dumps(inputs).encode()
    # its own process group, so a timeout also kills whatever the model's code started
    # unpickling runs the file's code: the child gets the allow-listed environment, never the caller's
    # credentials (AWS keys, DATABASE_URL, API keys, CI tokens)
    with subprocess.Popen(command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                          env=childenv.loading_env()) as child:
        try:
            stdout, stderr = child.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return LoadReport(error=f"{label}: did not finish loading and predicting within {timeout:g}s "
                                    "(the child process was killed)")
    try:
        doc = json.loads(stdout)
    except ValueError:
        tail = stderr.decode("utf-8", "replace").strip()[-MAX_STDERR_CHARS:]
        return LoadReport(error=f"{label}: the load-check process exited with status {child.returncode} "
                                f"without a report: {tail or '(no output)'}")
    if doc["error"] is not None:
        return LoadReport(error=doc["error"])
    return LoadReport(error=None, predictor_type=doc["predictor_type"],
                      outcomes=tuple(PredictOutcome(**o) for o in doc["outcomes"]))


def _run(path: str, model: str, version: str, inputs: list[Any] | None) -> dict[str, Any]:
    from modelplatform import artifacts, encoding
    from modelplatform.errors import ModelRejected

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return {"error": f"{model} {version}: cannot read {path}: {exc.strerror or exc}"}
    try:
        predictor = artifacts.load_predictor(model, version, data)
    except artifacts.ArtifactRejected as exc:
        return {"error": str(exc)}
    outcomes = []
    for payload in inputs or ():
        try:
            output = predictor.predict(payload)
            outcomes.append({"status": OK, "output_json": encoding.encode_output(output).decode()})
        except ModelRejected as exc:
            outcomes.append({"status": REJECTED, "message": f"ModelRejected({exc.code!r}, {exc.message!r})"})
        except encoding.UnencodableOutput as exc:
            outcomes.append({"status": UNENCODABLE, "message": str(exc)})
        except Exception as exc:  # the model's own failure, reported, not ours
            outcomes.append({"status": RAISED, "message": f"{type(exc).__name__}: {exc}"})
    return {"error": None, "predictor_type": type(predictor).__name__, "outcomes": outcomes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelplatform.loadcheck",
                                     description="Load a dill model file and report as JSON (runs its code).")
    parser.add_argument("file")
    parser.add_argument("--model", required=True, help="model name, for messages")
    parser.add_argument("--version", required=True, help="model version, for messages")
    parser.add_argument("--run-inputs", action="store_true", help="read a JSON array of inputs on stdin")
    args = parser.parse_args(argv)
    inputs = json.load(sys.stdin) if args.run_inputs else None
    # keep the real stdout for the report; whatever the model prints lands on stderr
    report_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    report = _run(args.file, args.model, args.version, inputs)
    with os.fdopen(report_fd, "w", encoding="utf-8") as out:
        json.dump(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
