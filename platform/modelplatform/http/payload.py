"""Reading a predict request body: media type, size, JSON syntax, and what the audit table can store."""
from __future__ import annotations

import json
import re
from typing import Any, BinaryIO

from flask import Request

from modelplatform import encoding
from modelplatform.errors import BadRequest, MalformedJSON, PayloadTooLarge, UnsupportedMediaType


def _is_json_media_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


# orjson keeps integers in [-2**63, 2**64) exactly and silently turns larger ones into floats; the model
# would then see a different number than the audit row stores, so such integers are refused
_INT_MIN, _INT_LIMIT = -(2 ** 63), 2 ** 64
# an integer outside that range has at least 19 digits; only bodies with such a run are checked exactly
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _contains_nul(value: Any) -> bool:
    # iterative: a body nested to orjson's depth limit must not exhaust Python's recursion limit
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _IntegerOutOfRange(ValueError):
    pass


def _exact_int(token: str) -> int:
    value = int(token)
    if not _INT_MIN <= value < _INT_LIMIT:
        raise _IntegerOutOfRange(token if len(token) <= 40 else token[:40] + "…")
    return value


def _check_integer_range(raw: bytes) -> None:
    """Raise :class:`BadRequest` when an integer literal is outside [-2**63, 2**64)."""
    if not _LONG_DIGITS.search(raw):
        return
    try:
        # the stdlib parser calls parse_int for integer tokens only (not digits inside strings or floats)
        json.loads(raw, parse_int=_exact_int)
    except _IntegerOutOfRange as exc:
        raise BadRequest(f"integer {exc} is outside the supported range [-2**63, 2**64); "
                         "send it as a string or a float") from None
    except (ValueError, RecursionError):
        # int() refuses > 4300 digits (ValueError); either way the number cannot be kept exact
        raise BadRequest("the body holds a number or nesting that cannot be read exactly") from None


def _read_bounded(stream: BinaryIO, max_bytes: int) -> bytes:
    """Read a body of unknown length (chunked), stopping one byte past ``max_bytes``.

    Werkzeug's own limit silently truncates such a body at ``MAX_CONTENT_LENGTH``, which would turn
    an oversized request into a misleading 400; reading one byte more tells the two apart.
    """
    chunks: list[bytes] = []
    remaining = max_bytes + 1
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_json(request: Request, max_bytes: int) -> tuple[Any, bytes]:
    """The decoded body and its raw bytes.

    Raises :class:`UnsupportedMediaType` (415) unless ``Content-Type`` is JSON,
    :class:`PayloadTooLarge` (413) over ``max_bytes`` (checked on ``Content-Length`` before reading,
    and enforced while reading a chunked body), :class:`MalformedJSON` (400) for invalid JSON,
    invalid UTF-8, lone UTF-16 surrogate escapes, NaN/Infinity, numbers that overflow a double, or
    nesting deeper than 1024, and :class:`BadRequest` (400) for U+0000 in a string, which Postgres
    ``jsonb`` cannot store, and for integers outside [-2**63, 2**64), which cannot reach the model
    exactly. Duplicate object keys are accepted and the last one wins, as in Postgres ``jsonb``, so the
    model and the audit row see the same document.
    """
    if not _is_json_media_type(request.mimetype):
        shown = request.mimetype or "none"
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {shown}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the limit of {max_bytes} bytes")
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        raw = _read_bounded(request.environ["wsgi.input"], max_bytes)
    else:
        raw = request.get_data(cache=False)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    try:
        payload = encoding.loads(raw)
    except encoding.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if b"\\u0000" in raw and _contains_nul(payload):
        raise BadRequest("strings must not contain U+0000 (it cannot be stored in the audit trail)")
    _check_integer_range(raw)
    return payload, raw
