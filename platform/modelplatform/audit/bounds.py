"""How much of an input the audit row keeps, so the audit trail cannot be used to fill the database.

An input that reached the model is recorded in full: the row must hold what the model computed on, and
``MAX_BODY_BYTES`` and the version's schema already bound it. An input the model never saw (status
``invalid_input``) costs an attacker nothing to send, so it is recorded in full only up to
``AUDIT_MAX_INVALID_INPUT_BYTES``; beyond that the ``input`` column holds a stand-in::

    {"$clipped_input": {"bytes": 1048576, "sha256": "<hex of the whole body>", "limit": 16384,
                        "prefix": "<the body's first 1 KiB, as text>"}}

and the ``error`` column says ``"input_clipped": true`` (the ``error`` column is written only by the
platform, so that flag, unlike a key in the input, can never come from a caller). The recorded
violations are cut to the first :data:`MAX_RECORDED_ERRORS`, with ``errors_total`` when there were more;
the 422 answer itself still lists every one.
"""
from __future__ import annotations

import hashlib
from typing import Any

from modelplatform import encoding

DEFAULT_MAX_INVALID_INPUT_BYTES = 16 * 1024
CLIPPED_INPUT_KEY = "$clipped_input"
PREFIX_BYTES = 1024
MAX_RECORDED_ERRORS = 100


def invalid_input_json(input_json: str, limit: int) -> tuple[str, bool]:
    """What the row records for an invalid input (JSON text), and whether it is the clipped stand-in."""
    data = input_json.encode("utf-8")
    if len(data) <= limit:
        return input_json, False
    stand_in = {CLIPPED_INPUT_KEY: {
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "limit": limit,
        # cut on a character boundary; the body is valid UTF-8 JSON, so the prefix holds no U+0000
        "prefix": data[:PREFIX_BYTES].decode("utf-8", "ignore"),
    }}
    return encoding.dumps(stand_in).decode(), True


def invalid_input_error(errors: list[dict[str, str]], *, input_clipped: bool) -> dict[str, Any]:
    """The ``error`` column of an invalid input: the first :data:`MAX_RECORDED_ERRORS` violations."""
    error: dict[str, Any] = {"errors": errors[:MAX_RECORDED_ERRORS]}
    if len(errors) > MAX_RECORDED_ERRORS:
        error["errors_total"] = len(errors)
    if input_clipped:
        error["input_clipped"] = True
    return error
