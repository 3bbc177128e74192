"""How a model's failure on one input is written in the ``error`` column: a rejection, an output with no JSON
form, or anything the model raised, its message clipped.

Shared by the data plane and replay's child process, which must classify an input exactly as serving did.
Light on purpose (no registry, no database): the replay child imports it at every (re)start.
"""
from __future__ import annotations

from typing import Any

from modelplatform.errors import ModelRejected

MAX_ERROR_MESSAGE_CHARS = 2000


def clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_MESSAGE_CHARS else text[:MAX_ERROR_MESSAGE_CHARS] + "…"


def message(exc: BaseException) -> str:
    """``str(exc)``, clipped; a model's exception whose ``__str__`` itself raises still gets its row."""
    try:
        return clip(str(exc))
    except Exception:  # noqa: BLE001
        return f"<{type(exc).__name__} whose message cannot be read>"


def rejected(exc: ModelRejected) -> dict[str, Any]:
    """The model refused the input on business grounds (``ModelRejected``)."""
    return {"code": exc.code, "message": exc.message}


def unencodable(exc: Exception) -> dict[str, Any]:
    """The model answered with something that has no faithful JSON form."""
    return {"type": "UnencodableOutput", "message": message(exc)}


def raised(exc: BaseException) -> dict[str, Any]:
    """The model raised ``exc`` (anything, ``SystemExit`` included)."""
    return {"type": type(exc).__name__, "message": message(exc)}
