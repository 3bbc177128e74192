"""RFC 6901 pointers, written in one place: every pointer built resolves back to the value it names."""
from __future__ import annotations

import jsonpointer
import pytest

from modelplatform.pointers import child, pointer

DOCUMENT = {"a/b": {"m~n": [10, {"": "empty key", "~1": "tilde-one"}]}, "plain": 1}


@pytest.mark.parametrize(("parts", "expected", "value"), [
    ([], "", DOCUMENT),
    (["plain"], "/plain", 1),
    (["a/b", "m~n", 0], "/a~1b/m~0n/0", 10),
    (["a/b", "m~n", 1, ""], "/a~1b/m~0n/1/", "empty key"),
    (["a/b", "m~n", 1, "~1"], "/a~1b/m~0n/1/~01", "tilde-one"),
])
def test_a_pointer_escapes_each_token_and_resolves_to_its_value(parts: list[str | int], expected: str,
                                                                value: object) -> None:
    assert pointer(parts) == expected
    assert jsonpointer.resolve_pointer(DOCUMENT, expected) == value


def test_child_extends_a_pointer_by_one_key_or_index() -> None:
    assert child("/a~1b", "m~n") == "/a~1b/m~0n"
    assert child("/a~1b/m~0n", 1) == "/a~1b/m~0n/1"
    assert child("", "x/y") == "/x~1y"
