"""RFC 6901 JSON Pointers, written in one place: the paths of schema violations, of refused numbers, of config
problems and of replay's output leaves, and the ``$defs`` references of the OpenAPI document.

A reference token escapes ``~`` as ``~0`` and ``/`` as ``~1`` (:func:`jsonpointer.escape`, from the library
that also resolves the A/B tests' ``sticky_key`` pointers).
"""
from __future__ import annotations

from collections.abc import Iterable

from jsonpointer import escape as token

__all__ = ["child", "pointer", "token"]


def pointer(parts: Iterable[str | int]) -> str:
    """The pointer to the value reached by following ``parts`` (keys and array indexes) from the root."""
    return "".join("/" + token(str(part)) for part in parts)


def child(parent: str, part: str | int) -> str:
    """``parent`` extended by one key or index."""
    return f"{parent}/{part}" if isinstance(part, int) else f"{parent}/{token(part)}"
