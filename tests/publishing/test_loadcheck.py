"""The child-process loader: what a model does while loading or predicting never reaches our process."""
from __future__ import annotations

import json
import os

import pytest

from modelplatform import loadcheck
from modelplatform.authoring import dumps_by_value

pytestmark = pytest.mark.slow  # every test here starts a process


class Chatty:
    def predict(self, payload):
        print("debug: predicting", payload)  # would corrupt a report written on stdout
        return {"doubled": payload["x"] * 2}


class ExitsOnLoad:
    """Unpickling calls os._exit: the child dies without a report."""

    def predict(self, payload):
        return payload

    def __reduce__(self):
        return (os._exit, (7,))


class ReportsEnvironment:
    """Records the environment variables it is unpickled in, and those predict runs in."""

    def __init__(self) -> None:
        self.at_load: list[str] = []

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.at_load = sorted(os.environ)

    def predict(self, payload):
        return {"at_load": self.at_load, "at_predict": sorted(os.environ)}


def test_the_model_loads_and_predicts_without_the_callers_secrets(tmp_path, monkeypatch) -> None:
    secrets = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ACCESS_KEY_ID": "AKIA", "DATABASE_URL": "postgresql://u:pw@db/x",
               "API_KEYS": "ci:0123456789abcdef", "GITHUB_TOKEN": "ghp_x"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "env.dill"
    path.write_bytes(dumps_by_value(ReportsEnvironment()))

    report = loadcheck.check_file(path, "env", "1.0", [{}], timeout=60)

    assert report.loaded, report.error
    (outcome,) = report.outcomes
    seen = json.loads(outcome.output_json)
    assert "PATH" in seen["at_load"] and "PATH" in seen["at_predict"]  # it did read the environment
    for names in seen.values():
        assert not set(secrets) & set(names), names


def test_a_model_printing_to_stdout_does_not_corrupt_the_report(tmp_path) -> None:
    path = tmp_path / "chatty.dill"
    path.write_bytes(dumps_by_value(Chatty()))

    report = loadcheck.check_file(path, "chatty", "1.0", [{"x": 2}, {"y": 1}], timeout=60)

    assert report.loaded and report.predictor_type == "Chatty"
    ok, failed = report.outcomes
    assert (ok.status, ok.output_json) == ("ok", '{"doubled":4}')
    assert failed.status == "raised" and failed.message == "KeyError: 'x'"


def test_a_child_that_dies_is_a_load_error_naming_model_and_version(tmp_path) -> None:
    path = tmp_path / "exits.dill"
    path.write_bytes(dumps_by_value(ExitsOnLoad()))

    report = loadcheck.check_file(path, "exits", "2.0", timeout=60)

    assert not report.loaded
    assert report.error.startswith("exits 2.0: the load-check process exited with status 7 without a report")


def test_loading_alone_runs_nothing(tmp_path) -> None:
    path = tmp_path / "chatty.dill"
    path.write_bytes(dumps_by_value(Chatty()))
    report = loadcheck.check_file(path, "chatty", "1.0", timeout=60)
    assert report.loaded and report.outcomes == ()


def test_modules_in_the_working_directory_are_not_importable(tmp_path, monkeypatch) -> None:
    """A class pickled by reference to the author's own module fails here exactly as on the server."""
    import importlib
    import sys

    import dill

    (tmp_path / "labmodels.py").write_text("class Model:\n    def predict(self, payload):\n        return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    labmodels = importlib.import_module("labmodels")
    try:
        path = tmp_path / "by_reference.dill"
        path.write_bytes(dill.dumps(labmodels.Model()))  # plain dill: a reference to labmodels.Model
        by_value = tmp_path / "by_value.dill"
        by_value.write_bytes(dumps_by_value(labmodels.Model()))

        report = loadcheck.check_file(path, "lab", "1.0", timeout=60)
        assert not report.loaded
        assert "lab 1.0: cannot be loaded with dill" in report.error and "labmodels" in report.error
        assert loadcheck.check_file(by_value, "lab", "1.0", timeout=60).loaded
    finally:
        sys.modules.pop("labmodels", None)


class SpawnsAndHangs:
    """Starts a grandchild that holds the output pipes open, then hangs: the timeout must still return."""

    def predict(self, payload):
        import subprocess
        import sys
        import time

        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        time.sleep(120)


def test_a_timeout_kills_the_model_and_what_it_started(tmp_path) -> None:
    import time

    path = tmp_path / "hangs.dill"
    path.write_bytes(dumps_by_value(SpawnsAndHangs()))

    started = time.monotonic()
    report = loadcheck.check_file(path, "hangs", "1.0", [{}], timeout=3)

    assert not report.loaded
    assert report.error == "hangs 1.0: did not finish loading and predicting within 3s (the child process was killed)"
    assert time.monotonic() - started < 60  # bounded: the grandchild's open pipe does not keep us waiting
