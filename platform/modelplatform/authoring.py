"""Helpers for model authors: serialize a model so the server can load it without your code.

dill stores classes defined in a notebook or ``__main__`` by value. A class defined in your own
module is stored by *reference* (module path + name), which only loads where that module is
importable, i.e. not on the server. :func:`dumps_by_value` stores such a class by value too.
"""
from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import dill


def dumps_by_value(model: Any) -> bytes:
    """dill bytes of ``model`` with its class and the class's methods stored by value.

    Modules the methods import (``math``, ``numpy``…) stay references: they must be installed on the
    server. ``modelplatform`` itself always is, so ``ModelRejected`` can be raised.
    """
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"{type(model).__name__} has no predict(input) method")
    cls = type(model)
    patched: list[tuple[Any, str]] = []
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "__main__") or klass.__module__.startswith("modelplatform"):
            continue
        patched.append((klass, klass.__module__))
        for member in vars(klass).values():
            func = getattr(member, "__func__", member)  # staticmethod/classmethod wrap a function
            if isinstance(func, types.FunctionType):
                patched.append((func, func.__module__))
    try:
        for obj, _ in patched:
            obj.__module__ = "__main__"  # dill pickles __main__ objects by value
        return dill.dumps(model, recurse=True)
    finally:
        for obj, module in patched:
            obj.__module__ = module


def dump_by_value(model: Any, path: str | Path) -> str:
    """Write :func:`dumps_by_value` bytes to ``path`` (its folder created if needed); returns the file's sha256."""
    from modelplatform.artifacts import sha256_hex

    data = dumps_by_value(model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return sha256_hex(data)
