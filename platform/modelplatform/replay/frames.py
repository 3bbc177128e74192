"""Length-prefixed frames on a pipe: 4 bytes big-endian length, then that many bytes (orjson documents).

Both ends of the replay child's pipes use them: one frame per batch of inputs, one per batch of outcomes.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 2**32 - 1


def pack(payload: bytes) -> bytes:
    """``payload`` as one frame. Raises ``ValueError`` when it does not fit the 4-byte length."""
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"a frame holds at most {MAX_FRAME_BYTES} bytes, got {len(payload)}")
    return HEADER.pack(len(payload)) + payload


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload from a blocking stream; None at a clean end of stream.

    Raises ``EOFError`` when the stream ends inside a frame.
    """
    header = stream.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise EOFError("the stream ended inside a frame header")
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError(f"the stream ended inside a frame ({len(payload)} of {size} bytes)")
    return payload
