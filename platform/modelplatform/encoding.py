"""JSON encoding of model outputs and of responses.

Outputs may be anything JSON-encodable plus dataclasses, ``Decimal`` (written as an exact JSON
number), ``date``/``datetime`` (ISO 8601) and numpy scalars and arrays. Anything else, and
non-finite numbers (NaN/Infinity have no JSON form and would silently become ``null``), raise
:class:`UnencodableOutput`.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class UnencodableOutput(TypeError):
    """The value has no faithful JSON form."""


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise UnencodableOutput(f"non-finite Decimal {obj}")
        # a Fragment is emitted verbatim: the exact digits, not a float approximation
        exponent = obj.as_tuple().exponent  # an int for a finite Decimal
        return orjson.Fragment(format(obj, "f") if isinstance(exponent, int) and exponent > -30 else str(obj))
    item = getattr(obj, "item", None)  # numpy scalars orjson does not take natively (e.g. float16)
    if callable(item) and type(obj).__module__ == "numpy":
        return item()
    raise UnencodableOutput(f"object of type {type(obj).__name__} is not JSON-encodable")


def _check_finite(obj: Any) -> None:
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise UnencodableOutput(f"non-finite number {obj}")
    elif isinstance(obj, dict):
        for value in obj.values():
            _check_finite(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_finite(value)
    elif type(obj).__module__ == "numpy":
        import numpy  # only reached when numpy objects are present, so numpy stays optional

        inexact = numpy.issubdtype(getattr(obj, "dtype", numpy.dtype(object)), numpy.inexact)
        if inexact and not numpy.isfinite(obj).all():
            raise UnencodableOutput("non-finite number in numpy value")
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            _check_finite(getattr(obj, name))


def encode_output(obj: Any) -> bytes:
    """Encode a model output to JSON bytes. Raises :class:`UnencodableOutput`."""
    _check_finite(obj)
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__
        raise UnencodableOutput(str(cause) if cause else str(exc)) from None


def dumps(obj: Any) -> bytes:
    """Encode platform-built documents (responses, records); ``orjson.Fragment`` embeds pre-encoded JSON."""
    return orjson.dumps(obj, option=_OPTIONS)


loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError
Fragment = orjson.Fragment


def warm_up() -> None:
    """Do at boot what the first encoded output would otherwise do inside a request.

    orjson resolves its optional numpy support (``OPT_SERIALIZE_NUMPY``) the first time it meets a value it
    cannot encode natively, such as a ``Decimal``: it imports numpy when installed, measured at 36-38 ms,
    which landed on the first prediction of every worker (50-60 ms instead of 0.1 ms on the demo). Called
    by the master before it forks (the import is then shared) and by ``create_app``; a no-op afterwards.
    """
    encode_output(Decimal(0))
