"""Input validation against a version's JSON Schema (2020-12), compiled once per version.

Validator choice (measured, see ``benchmarks/validators.py`` and ``docs/performance.md``):
``jsonschema-rs`` compiles the schema to native code, checks a valid input in microseconds and
reports every violation with its instance path and a message of the same quality as
``jsonschema``'s. ``jsonschema`` stays the reference for meta-validating schemas in the config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from modelplatform.pointers import pointer

MAX_MESSAGE_CHARS = 300
TOO_DEEP = "the input is nested too deeply to be checked against the schema (the validator stops at 255 levels)"


@dataclass(frozen=True)
class Violation:
    """One schema violation: ``path`` is an RFC 6901 JSON Pointer into the input."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


def _shorten(message: str) -> str:
    # jsonschema-rs quotes the offending value; a hostile multi-megabyte value must not be echoed whole
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


class CompiledSchema:
    """A compiled JSON Schema 2020-12. Thread-safe; build once, call per request."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self._validator = jsonschema_rs.Draft202012Validator(schema)

    def violations(self, instance: Any) -> list[Violation]:
        """Every violation of ``instance`` (empty when valid), in the validator's traversal order.

        An instance nested deeper than jsonschema-rs can walk (it raises ``ValueError: Recursion limit
        reached`` from 256 levels, below the 1024 the body parser allows) is one violation at the root,
        so it is answered 422 and recorded like any other invalid input, never a 500.
        """
        try:
            if self._validator.is_valid(instance):
                return []
            return [
                Violation(pointer(error.instance_path), _shorten(error.message))
                for error in self._validator.iter_errors(instance)
            ]
        except ValueError as exc:
            if "recursion limit" not in str(exc).lower():
                raise
            return [Violation("", TOO_DEEP)]
