"""The environment of a child process that runs model code.

Unpickling a dill file runs whatever code the file holds, so every process that loads a model outside
the server (``publish``'s load check, ``check-config``, a reload check, ``replay``) gets an allow-listed
environment: what Python and common numeric libraries need to start, and nothing else. Database URLs,
cloud credentials, API keys and tokens never reach it, because they are not on the list, whatever they
are called.

What this does not do: the child still runs as the same user, so files that user can read (for
example ``~/.aws/credentials``) stay readable. Run CI's checks where no credential files lie around,
or as a user without access to them (docs/models.md says so).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

# what the interpreter and the usual numeric libraries read at start-up; none of these carries a secret
SAFE_NAMES = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING",
    "PYTHONUTF8", "PYTHONWARNINGS",
})
SAFE_PREFIXES = ("LC_", "OMP_", "OPENBLAS_", "MKL_", "NUMEXPR_", "KMP_", "VECLIB_")
# names an operator lets through as well, comma-separated (e.g. a licence server a model library needs)
EXTRA_ENV = "MODELPLATFORM_LOADER_ENV"


def loading_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed subset of ``environ`` (default ``os.environ``) for a process that loads models.

    ``MODELPLATFORM_LOADER_ENV`` (``NAME,NAME``) adds names to the list; it is itself passed on, so a
    grandchild started the same way sees the same list.
    """
    environ = os.environ if environ is None else environ
    extra = {name.strip() for name in environ.get(EXTRA_ENV, "").split(",") if name.strip()}
    allowed = SAFE_NAMES | extra | {EXTRA_ENV}
    return {name: value for name, value in environ.items()
            if name in allowed or name.startswith(SAFE_PREFIXES)}
