"""Reading a predict request body: media type, size, JSON syntax, and what the audit table can store."""
from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, BinaryIO

from flask import Request
from gunicorn.http.errors import ParseException

from modelplatform import encoding
from modelplatform.errors import (
    BadRequest,
    MalformedBody,
    MalformedJSON,
    NumberPrecision,
    PayloadTooLarge,
    UnsupportedMediaType,
    echo,
)
from modelplatform.pointers import child


def _is_json_media_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


# orjson keeps integers in [-2**63, 2**64) exactly and silently turns larger ones into floats
_INT_MIN, _INT_LIMIT = -(2 ** 63), 2 ** 64
# A literal with at most 15 significant digits (DBL_DIG) and an exponent of at most two digits always
# reads as a double that prints back as the same decimal value, and an integer in range has at most 20
# digits; only a body with a run of 16 or more digits (a dot allowed among them) or a 3-digit exponent
# can hold a number that does not, so only such bodies get the exact (slower) check. The screen maps
# digits and dots to "0", "E" to "e" and "-" to "+", then looks for plain substrings: about 3x cheaper
# than one regular expression over a large body, under 1 µs for a quote (benchmarks/payload_numbers.py).
_SCREEN = bytes.maketrans(b"0123456789.E-", b"00000000000e+")
_SCREEN_HITS = (b"0" * 16, b"e000", b"e+000")
MAX_LISTED_NUMBERS = 100
MAX_SHOWN_LITERAL_CHARS = 40


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


class _Inexact:
    """Stands, in the checking parse, for a number literal the parsed document would not hold exactly."""

    __slots__ = ("literal", "read_as")

    def __init__(self, literal: str, read_as: str) -> None:
        self.literal = literal if len(literal) <= MAX_SHOWN_LITERAL_CHARS else literal[:MAX_SHOWN_LITERAL_CHARS] + "…"
        self.read_as = read_as

    def message(self) -> str:
        return (f"{self.literal} cannot be represented exactly as a 64-bit float ({self.read_as}); send a number "
                "with at most 15 significant digits, or the exact value as a string")


def _exact_int(token: str) -> int | _Inexact:
    try:
        value = int(token)
    except ValueError:  # over the interpreter's 4300-digit limit
        return _Inexact(token, "it has too many digits")
    if _INT_MIN <= value < _INT_LIMIT:
        return value
    return _Inexact(token, f"integers are exact in [-2**63, 2**64); it would be read as {float(token)!r}")


def _exact_float(token: str) -> float | _Inexact:
    value = float(token)
    # the double's shortest decimal form (repr) must be the literal's value: 0.1, 1.10 and 1e2 pass,
    # 16.99999999999999999999 (read as 17.0) and 1e-400 (read as 0.0) do not
    if math.isfinite(value) and Decimal(token) == Decimal(repr(value)):
        return value
    return _Inexact(token, f"it would be read as {value!r}")


def _inexact_numbers(document: Any) -> list[tuple[str, _Inexact]]:
    """``(JSON Pointer, marker)`` of every :class:`_Inexact` in ``document``, in document order."""
    found: list[tuple[str, _Inexact]] = []
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:  # iterative, like _contains_nul
        item, path = stack.pop()
        if isinstance(item, _Inexact):
            found.append((path, item))
        elif isinstance(item, dict):
            stack.extend((v, child(path, k)) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, child(path, i)) for i, v in reversed(list(enumerate(item))))
    return found


def check_numbers(raw: bytes) -> None:
    """Raise :class:`NumberPrecision` when a number literal would not reach the model exactly.

    A number is accepted only if the value the validator and the model receive (orjson's int, or a
    double) is exactly the literal's value, so the audit row (which stores the body as written) records
    what was validated and computed on. The check parses the body a second time with the stdlib parser,
    which hands every number token over as text, so it runs only on bodies the :data:`_SCREEN`
    flags; orjson has already refused invalid JSON and values a double cannot hold at all (``1e400``).
    """
    screened = raw.translate(_SCREEN)
    if not any(hit in screened for hit in _SCREEN_HITS):
        return
    try:
        document = json.loads(raw, parse_int=_exact_int, parse_float=_exact_float)
    except (ValueError, RecursionError):
        raise BadRequest("the body holds a number or nesting that cannot be read exactly") from None
    found = _inexact_numbers(document)
    if found:
        raise NumberPrecision(
            f"{len(found)} number(s) cannot be represented exactly as a 64-bit float, so the model would not "
            "receive the value as written" + (f"; the first {MAX_LISTED_NUMBERS} are listed"
                                              if len(found) > MAX_LISTED_NUMBERS else ""),
            errors=[{"path": path, "message": marker.message()} for path, marker in found[:MAX_LISTED_NUMBERS]],
            errors_total=len(found))


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


def _read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, at most ``max_bytes`` + 1 bytes of it.

    Raises :class:`MalformedBody` when the body does not arrive intact. gunicorn de-chunks the body
    while the app reads it, so its parser's errors (a chunk size like ``0x22`` or ``-1``, a missing
    CRLF, the connection ending mid-chunk: ``gunicorn.http.errors.ParseException`` and ``NoMoreData``,
    an ``IOError``) surface here, whatever the worker class, and are the client's error, not a crash.
    """
    try:
        if request.content_length is None and request.environ.get("wsgi.input_terminated"):
            raw = _read_bounded(request.environ["wsgi.input"], max_bytes)
        else:
            raw = request.get_data(cache=False)
    except (ParseException, OSError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise MalformedBody(f"the request body could not be read: {type(exc).__name__}: {reason[:200]} "
                            "(malformed chunked encoding, or the connection ended mid-body)") from None
    if request.content_length is not None and len(raw) < request.content_length:
        # a server that trusts the stream (wsgi.input_terminated) hands over what arrived: a prefix that
        # happens to be valid JSON must not be taken for the body the client meant
        raise MalformedBody(f"the request body ended after {len(raw)} of the {request.content_length} bytes "
                            "announced by Content-Length (truncated)")
    return raw


def read_json(request: Request, max_bytes: int) -> tuple[Any, bytes]:
    """The decoded body and its raw bytes.

    Raises :class:`UnsupportedMediaType` (415) unless ``Content-Type`` is JSON,
    :class:`PayloadTooLarge` (413) over ``max_bytes`` (checked on ``Content-Length`` before reading,
    and enforced while reading a chunked body), :class:`MalformedBody` (400) when the body does not
    arrive intact (bad chunking, shorter than ``Content-Length``), :class:`MalformedJSON` (400) for invalid JSON,
    invalid UTF-8, lone UTF-16 surrogate escapes, NaN/Infinity, numbers that overflow a double, or
    nesting deeper than 1024, and :class:`BadRequest` (400) for U+0000 in a string, which Postgres
    ``jsonb`` cannot store; :class:`NumberPrecision` (400) for numbers a 64-bit float cannot hold
    exactly (integers outside [-2**63, 2**64) included), which the model would receive rounded. Duplicate
    object keys are accepted and the last one wins, as in Postgres ``jsonb``, so the model and the audit row
    see the same document.
    """
    if not _is_json_media_type(request.mimetype):
        shown = echo(request.mimetype) if request.mimetype else "none"
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {shown}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the limit of {max_bytes} bytes")
    raw = _read_body(request, max_bytes)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    try:
        payload = encoding.loads(raw)
    except encoding.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if b"\\u0000" in raw and _contains_nul(payload):
        raise BadRequest("strings must not contain U+0000 (it cannot be stored in the audit trail)")
    check_numbers(raw)
    return payload, raw
