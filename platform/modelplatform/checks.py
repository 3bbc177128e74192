"""Everything ``modelplatform check-config`` checks, as data: a list of :class:`Problem`, empty when clean.

Four kinds of check, each problem naming model, version and what to do:

- ``config``: the config's structure and semantics (:mod:`modelplatform.config`);
- ``store``: every active version's file exists and its bytes match the pinned sha256;
- ``model``: every active version loads, in a child process since dill runs code
  (:mod:`modelplatform.loadcheck`);
- ``example``: every example validates against its version's schema, runs through ``predict`` without
  error and, when ``output`` is given, matches it as the API would encode it.

A model whose config entry is broken is still checked against the store and its examples when its
versions, digests and schemas are sound, so one mistake never hides another. A store that cannot be
used at all (endpoint unreachable, no credentials, no such bucket) is one problem, not one per version:
:func:`config_report` tells it apart (``store_error``) so the CLI can say it could not run.
"""
from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from modelplatform import artifacts, encoding, loadcheck, versions
from modelplatform.config import ConfigProblem, Example, ModelSpec, inspect_config
from modelplatform.store import ArtifactError, S3ModelStore
from modelplatform.validation import CompiledSchema

log = logging.getLogger(__name__)

CONFIG, STORE, MODEL, EXAMPLE = "config", "store", "model", "example"
MAX_SHOWN_JSON_CHARS = 300
MAX_PARALLEL_LOADS = 4


class ModelFiles(Protocol):
    """Where the checks read a version's file: the S3 store, or (the gunicorn master's check step) the host's
    artifact cache. Raises :class:`~modelplatform.store.ArtifactError` when it has no such file."""

    def fetch(self, model: str, version: str) -> bytes: ...


@dataclass(frozen=True)
class Problem:
    """One problem: ``check`` is ``config``/``store``/``model``/``example``; ``message`` says what to do."""

    check: str
    message: str
    model: str | None = None
    version: str | None = None

    @classmethod
    def from_config(cls, problem: ConfigProblem) -> Problem:
        return cls(CONFIG, problem.message, problem.model, problem.version)

    def __str__(self) -> str:
        return str(ConfigProblem(self.message, self.model, self.version))

    def as_dict(self) -> dict[str, str | None]:
        return {"check": self.check, "model": self.model, "version": self.version, "message": self.message}


@dataclass(frozen=True)
class Report:
    """What :func:`config_report` found. ``store_error`` says why the store could not be used at all
    (then its per-version checks did not run); ``warnings`` never fail a check."""

    problems: list[Problem]
    warnings: list[Problem]
    store_error: str | None = None


def check_config(path: str | Path, store: ModelFiles | None = None, *,
                 timeout: float = loadcheck.DEFAULT_TIMEOUT_SECONDS) -> list[Problem]:
    """Every problem with the config at ``path``; with ``store``, also every store, model and example
    problem of every active version. Without ``store``, examples are still checked against their schemas.
    An unusable store is one ``store`` problem without a model.
    """
    report = config_report(path, store, timeout=timeout)
    if report.store_error is None:
        return report.problems
    return [*report.problems, Problem(STORE, report.store_error)]


def config_report(path: str | Path, store: ModelFiles | None = None, *,
                  timeout: float = loadcheck.DEFAULT_TIMEOUT_SECONDS) -> Report:
    """:func:`check_config` with the warnings, and an unusable store kept apart from the problems."""
    inspection = inspect_config(path)
    problems = [Problem.from_config(p) for p in inspection.problems]
    warnings = [Problem.from_config(p) for p in inspection.warnings]
    specs = list(inspection.specs.values())
    for spec in specs:
        for version in spec.active_versions:
            problems.extend(example_schema_problems(spec, version))
    if store is None:
        return Report(problems, warnings)
    # only a real S3 store can be unusable as a whole; the reload check reads the host's artifact cache
    store_error = unusable_store(store) if isinstance(store, S3ModelStore) else None
    if store_error is not None:
        return Report(problems, warnings, store_error)
    wanted = [(spec, version) for spec in specs for version in spec.active_versions]
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_LOADS, len(wanted)))) as pool:
        for found in pool.map(lambda item: _check_stored_version(store, *item, timeout=timeout), wanted):
            problems.extend(found)
    return Report(problems, warnings)


def unusable_store(store: S3ModelStore) -> str | None:
    """Why ``store`` cannot be used at all (endpoint unreachable, no credentials, no such bucket), with
    what to check; None when it answers.

    A refusal (403) is not reported here: read-only credentials often may not list a bucket, and each
    version's own read then says what it could not do.
    """
    endpoint = store.client.meta.endpoint_url
    where = f"the model store {store.location} at {endpoint}"
    advice = ("check AWS_ENDPOINT_URL (unset for AWS itself) and the credentials (AWS_PROFILE, "
              "AWS_ACCESS_KEY_ID…); for the demo, run this from its checkout while `make demo` runs")
    try:
        store.client.head_bucket(Bucket=store.location.bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return f"cannot use {where}: bucket {store.location.bucket!r} does not exist there; {advice}"
        return None
    except BotoCoreError as exc:
        return f"cannot reach {where}: {exc}; {advice}"
    return None


def _check_stored_version(store: ModelFiles, spec: ModelSpec, version: str, *, timeout: float) -> list[Problem]:
    try:
        data = store.fetch(spec.name, version)
    except ArtifactError as exc:
        advice = (f"publish it with `modelplatform publish FILE --model {spec.name} --version {version}` or "
                  "remove the version from active_model_versions") if exc.missing else \
            "check that these credentials may read it (s3:GetObject)"
        return [Problem(STORE, f"{exc.reason}; {advice}", spec.name, version)]
    return check_artifact(spec, version, data, timeout=timeout)


def check_artifact(spec: ModelSpec, version: str, data: bytes, *,
                   timeout: float = loadcheck.DEFAULT_TIMEOUT_SECONDS) -> list[Problem]:
    """Problems of one version's file bytes: sha256 against the config (when pinned), loading in a child
    process, and running the schema-valid examples through ``predict``."""
    expected = spec.sha256.get(version)
    if expected is not None:
        try:
            artifacts.verify(spec.name, version, data, expected)
        except artifacts.ArtifactRejected as exc:
            message = str(exc).removeprefix(f"{spec.name} {version}: ")
            return [Problem(STORE, f"{message}. A published file never changes: if the config is wrong, copy the "
                                   "sha256 printed by `modelplatform publish`; otherwise publish a new version",
                            spec.name, version)]
    runnable = _sort_examples(spec, version)[1]
    with tempfile.TemporaryDirectory(prefix="modelplatform-check-") as tmp:
        file = Path(tmp) / f"{spec.name}-{version}.dill"
        file.write_bytes(data)
        report = loadcheck.check_file(file, spec.name, version, [ex.input for _, ex in runnable], timeout=timeout)
    if not report.loaded:
        message = (report.error or "does not load").removeprefix(f"{spec.name} {version}: ")
        return [Problem(MODEL, f"{message}; publish a working file as a new version (see docs/models.md)",
                        spec.name, version)]
    problems = []
    for (where, example), outcome in zip(runnable, report.outcomes, strict=True):
        found = _outcome_problem(where, example, outcome)
        if found:
            problems.append(Problem(EXAMPLE, found, spec.name, version))
    return problems


def _examples(spec: ModelSpec, version: str) -> Iterator[tuple[str, Example]]:
    """``(where, example)`` for the examples covering ``version``; ``where`` locates it in the config."""
    for key in versions.resolve(version, spec.examples):
        for index, example in enumerate(spec.examples[key]):
            yield f"examples[{key!r}][{index}]", example


def _schema(spec: ModelSpec, version: str) -> CompiledSchema | None:
    keys = versions.resolve(version, spec.schemas)
    return CompiledSchema(spec.schemas[keys[0]]) if len(keys) == 1 else None  # else a config problem already


def _sort_examples(spec: ModelSpec, version: str) -> tuple[list[Problem], list[tuple[str, Example]]]:
    """Split ``version``'s examples into problems (schema violations) and those that can run."""
    schema = _schema(spec, version)
    if schema is None:
        return [], []
    problems, runnable = [], []
    for where, example in _examples(spec, version):
        violations = schema.violations(example.input)
        if not violations:
            runnable.append((where, example))
            continue
        listed = "; ".join(f"{v.path or '/'}: {v.message}" for v in violations)
        problems.append(Problem(EXAMPLE, f"{where} input does not match this version's schema ({listed}); "
                                         "fix the example or the schema", spec.name, version))
    return problems, runnable


def example_schema_problems(spec: ModelSpec, version: str) -> list[Problem]:
    """An example problem for each example of ``version`` its schema rejects, listing every violation."""
    return _sort_examples(spec, version)[0]


def _outcome_problem(where: str, example: Example, outcome: loadcheck.PredictOutcome) -> str | None:
    if outcome.status == loadcheck.REJECTED:
        return (f"{where}: predict rejected the input with {outcome.message}; examples must be inputs the "
                "model accepts")
    if outcome.status == loadcheck.UNENCODABLE:
        return (f"{where}: predict returned an output that cannot be encoded as JSON ({outcome.message}); "
                "return JSON-encodable values (see docs/models.md), then publish a new version")
    if outcome.status != loadcheck.OK:
        return f"{where}: predict raised {outcome.message}; fix the model and publish a new version, or fix the example"
    if example.has_output and outcome.output_json is not None:
        got = encoding.loads(outcome.output_json)
        if not same_json(got, example.output):
            return (f"{where}: output differs: expected {_show(example.output)}, got {_show(got)}; "
                    "update the example's output or fix the model")
    return None


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (``1 == 1.0``), but ``true`` is not ``1``; object key order ignored."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_SHOWN_JSON_CHARS else text[:MAX_SHOWN_JSON_CHARS - 1] + "…"


def conditional_write_problems(store: S3ModelStore) -> list[Problem]:
    """A store problem when ``store`` accepts a second conditional write (``If-None-Match: *``) of a scratch
    key: publishing there could not refuse an existing version or a racing publisher. A store that
    cannot be probed (credentials that may only read, as CI's should) is logged, not a problem."""
    honoured = store.probe_conditional_writes()
    if honoured is None:
        log.warning("could not probe whether %s honours conditional writes (no permission to write a scratch "
                    "key?); publishing relies on them", store.location)
        return []
    if honoured:
        return []
    return [Problem(STORE, f"the store {store.location} does not honour conditional writes (If-None-Match: *): "
                           "it accepted a second write of the same key, so publish cannot refuse an existing "
                           "version or a racing publisher; use a store that does (AWS S3, MinIO, LocalStack)")]
