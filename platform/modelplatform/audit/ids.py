"""Time-ordered inference ids: UUIDv7 (RFC 9562 §5.7), taken from the same clock reading as ``created_at``.

Why v7: ``inferences`` is keyed by ``(id, created_at)``. A random UUIDv4 puts each new key on a random
leaf page of the primary-key index, so at a billion rows every insert is a cache miss; a v7 id starts
with the Unix time in milliseconds, so new keys land on the rightmost leaf pages, like ``created_at``.

Why a few lines and not a library: the layout is 48 bits of Unix milliseconds, the version, 74 random
bits and the variant, nothing more (no counter: RFC 9562 makes monotonicity within a millisecond
optional, and ids are not compared within one millisecond by anything here). Building the id here lets
``created_at`` and the id's timestamp come from **one** ``time.time_ns()`` reading, so the id's
millisecond is exactly ``created_at`` truncated to the millisecond (tested), which a library's
``uuid7()`` with its own clock reading cannot promise. Python 3.14's ``uuid.uuid7()`` is the same
layout; the cost per id is measured in ``docs/performance.md``.
"""
from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = ((1 << 12) - 1) << 64
_RAND_B = (1 << 62) - 1


def uuid7(unix_ms: int) -> uuid.UUID:
    """A UUIDv7 for the Unix time ``unix_ms`` (milliseconds) with 74 random bits."""
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 for rand_a, 62 for rand_b, 6 unused
    value = ((unix_ms & 0xFFFF_FFFF_FFFF) << 80) | _VERSION_7 | (rand & _RAND_A) | _VARIANT | (rand & _RAND_B)
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID | str) -> datetime:
    """The millisecond timestamp carried by a UUIDv7 (UTC). Raises ``ValueError`` for another version."""
    parsed = value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"{parsed} is a version {parsed.version} UUID, not 7")
    return _EPOCH + timedelta(milliseconds=parsed.int >> 80)


def new_inference_id() -> tuple[str, datetime]:
    """A new inference id and its ``created_at``, from one clock reading: the id's timestamp is
    ``created_at`` truncated to the millisecond."""
    now_ns = time.time_ns()
    created_at = _EPOCH + timedelta(microseconds=now_ns // 1000)
    return str(uuid7(now_ns // 1_000_000)), created_at
