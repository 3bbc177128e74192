"""A pytest helper for model authors: test one version against its config entry in a few lines.

.. code-block:: python

    from modelplatform.testing import check_version

    def test_auto_pricing_2_1_1():
        check_version("config/models.json", "auto_pricing", "2.1.1", file="build/auto_pricing-2.1.1.dill")

It runs exactly what ``modelplatform check-config`` runs for that version: the file's sha256 against
the config (when pinned), loading in a child process, and every example through the schema, ``predict``
and the expected ``output``. The version need not be active: a ``schemas`` key and ``examples`` key
covering it (``"2.2.X"``) are all it takes to test a version before it is published.
"""
from __future__ import annotations

from pathlib import Path

from modelplatform import loadcheck, versions
from modelplatform.checks import Problem, check_artifact, example_schema_problems
from modelplatform.config import inspect_config
from modelplatform.store import ArtifactError, S3ModelStore


class VersionCheckFailed(AssertionError):
    """The version has problems; ``problems`` lists each :class:`~modelplatform.checks.Problem`."""

    def __init__(self, model: str, version: str, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{model} {version}: {len(problems)} problem(s):\n"
                         + "\n".join(f"  - [{p.check}] {p.message}" for p in problems))


def version_problems(config_path: str | Path, model: str, version: str, *, store: S3ModelStore | None = None,
                     file: str | Path | None = None,
                     timeout: float = loadcheck.DEFAULT_TIMEOUT_SECONDS) -> list[Problem]:
    """Every problem of ``model`` ``version`` as configured in ``config_path``.

    The file comes from ``file`` (a local dill file, e.g. before publishing) or else from ``store``;
    with neither, only the examples' schemas are checked. The version need not be active yet, so a
    new version can be tested before it is published; it must be covered by a schema. Problems of the
    model's config entry are listed with the others; other models' problems are not this test's business.
    """
    inspection = inspect_config(config_path)
    problems = [Problem.from_config(p) for p in inspection.problems if p.model in (None, model)]
    spec = inspection.specs.get(model)
    if spec is None:
        if problems:
            return problems
        return [Problem("config", f"no model {model!r} in {config_path}", model, version)]
    if len(versions.resolve(version, spec.schemas)) != 1:
        return problems + [Problem("config", "no single schema covers this version; add a schemas key for it "
                                             f"such as {'.'.join(version.split('.')[:-1] + ['X'])!r}",
                                   model, version)]
    problems += example_schema_problems(spec, version)
    if file is not None:
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            return problems + [Problem("model", f"cannot read {file}: {exc.strerror or exc}", model, version)]
    elif store is not None:
        try:
            data = store.fetch(model, version)
        except ArtifactError as exc:
            return problems + [Problem("store", exc.reason, model, version)]
    else:
        return problems
    return problems + check_artifact(spec, version, data, timeout=timeout)


def check_version(config_path: str | Path, model: str, version: str, *, store: S3ModelStore | None = None,
                  file: str | Path | None = None, timeout: float = loadcheck.DEFAULT_TIMEOUT_SECONDS) -> None:
    """Assert that :func:`version_problems` finds nothing; raises :class:`VersionCheckFailed` listing them."""
    problems = version_problems(config_path, model, version, store=store, file=file, timeout=timeout)
    if problems:
        raise VersionCheckFailed(model, version, problems)

