"""Version strings and the ``X`` patterns that map schemas and examples onto versions.

A version is dotted numbers (``2.1.1``). A pattern has the same shape where any component may be
``X``, standing for exactly one component (``2.1.X``, ``2.X.X``). A pattern matches versions with
the same number of components. Among matching keys the most specific (fewest ``X``) wins; a tie
at the top is ambiguous and is a config error.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

VERSION_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_version(text: str) -> bool:
    return bool(VERSION_RE.match(text))


def matches(pattern: str, version: str) -> bool:
    """True when ``pattern`` (a version or an ``X`` pattern) covers ``version``."""
    p_parts, v_parts = pattern.split("."), version.split(".")
    return len(p_parts) == len(v_parts) and all(p in ("X", v) for p, v in zip(p_parts, v_parts, strict=True))


def resolve(version: str, keys: Iterable[str]) -> list[str]:
    """The most specific keys covering ``version``: one key normally, several if ambiguous, none if uncovered."""
    candidates = [k for k in keys if matches(k, version)]
    if not candidates:
        return []
    fewest = min(k.split(".").count("X") for k in candidates)
    return sorted(k for k in candidates if k.split(".").count("X") == fewest)


def sort_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
