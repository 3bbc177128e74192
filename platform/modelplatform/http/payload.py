"""Reading a predict request body: media type, size, JSON syntax, and what the audit table can store."""
from __future__ import annotations

from typing import Any

from flask import Request

from modelplatform import encoding
from modelplatform.errors import BadRequest, MalformedJSON, PayloadTooLarge, UnsupportedMediaType


def _is_json_media_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def read_json(request: Request, max_bytes: int) -> tuple[Any, bytes]:
    """The decoded body and its raw bytes.

    Raises :class:`UnsupportedMediaType` (415) unless ``Content-Type`` is JSON,
    :class:`PayloadTooLarge` (413) over ``max_bytes`` (checked on ``Content-Length`` before reading,
    and enforced while reading a chunked body), :class:`MalformedJSON` (400) for invalid JSON,
    invalid UTF-8, NaN/Infinity or nesting deeper than 1024, and :class:`BadRequest` (400) for
    U+0000 in a string, which Postgres ``jsonb`` cannot store.
    """
    if not _is_json_media_type(request.mimetype):
        shown = request.mimetype or "none"
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {shown}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the limit of {max_bytes} bytes")
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH bounds chunked bodies while reading
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    try:
        payload = encoding.loads(raw)
    except encoding.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if b"\\u0000" in raw and _contains_nul(payload):
        raise BadRequest("strings must not contain U+0000 (it cannot be stored in the audit trail)")
    return payload, raw
