"""Turning a model file's bytes into a predictor, safely: digest first, dill second."""
from __future__ import annotations

import hashlib
from typing import Any

import dill


class ArtifactRejected(Exception):
    """The bytes do not match the pinned digest, or do not load into a predictor."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(model: str, version: str, data: bytes, expected_sha256: str) -> None:
    """Raise :class:`ArtifactRejected` unless ``sha256(data) == expected_sha256``.

    Runs before dill sees the bytes: unpickling executes code, so only pinned bytes are loaded.
    """
    found = sha256_hex(data)
    if found != expected_sha256.lower():
        raise mismatch(model, version, expected_sha256, found)


def mismatch(model: str, version: str, expected_sha256: str, found: str) -> ArtifactRejected:
    """The error for a file whose bytes hash to ``found`` where the config pins ``expected_sha256``."""
    return ArtifactRejected(
        f"{model} {version}: sha256 mismatch: config expects {expected_sha256}, "
        f"the store holds {found}; the file changed after publishing or the config is wrong"
    )


def load_predictor(model: str, version: str, data: bytes) -> Any:
    """Unpickle verified bytes and check the result has a callable ``predict``."""
    try:
        predictor = dill.loads(data)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # dill can raise anything the pickled code raises, SystemExit included
        raise ArtifactRejected(f"{model} {version}: cannot be loaded with dill: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(predictor, "predict", None)):
        raise ArtifactRejected(
            f"{model} {version}: loaded a {type(predictor).__name__}, which has no predict(input) method"
        )
    return predictor
