"""The replay child: runs a candidate model on batches of recorded inputs, in its own process.

Started by :class:`modelplatform.replay.process.CandidateProcess` as::

    python -P -m modelplatform.replay.child

with only :func:`modelplatform.childenv.loading_env` as its environment (no database URL, no cloud
credentials). It reads frames (:mod:`modelplatform.replay.frames`) on stdin:

1. a JSON document ``{"model", "version", "sha256", "schema"}``;
2. the model file's bytes, which it checks against ``sha256`` before dill sees them (the parent has
   already checked them: this is the second lock on the same door);
3. then any number of JSON arrays of inputs, each answered by one JSON array of outcomes
   ``[status, output_json, error]``, classified exactly as the data plane classifies a request
   (the same :mod:`modelplatform.failures`): ``invalid_input`` with every schema violation,
   ``rejected`` with the ``ModelRejected`` code, ``error`` for anything else the model raises
   (``SystemExit`` included) or an output with no JSON form, else ``ok`` with the output encoded by
   :func:`modelplatform.encoding.encode_output`. An input that cannot be decoded is ``not_replayable``.

The first answer is ``{"ready": true, "predictor_type": …}`` or ``{"error": "…"}``. Frames go to the
original stdout; anything the model prints goes to stderr, so it cannot corrupt a frame.
"""
from __future__ import annotations

import os
import resource
import sys
from typing import Any, BinaryIO

from modelplatform import artifacts, encoding, failures
from modelplatform.errors import ModelRejected
from modelplatform.replay.frames import pack, read_frame
from modelplatform.validation import CompiledSchema

NOT_REPLAYABLE = "not_replayable"


def peak_rss_kib() -> int:
    """This process's peak resident memory since it started (``VmHWM``). ``ru_maxrss`` is not used where
    ``/proc`` has it: Linux carries it over from the parent across fork and exec, so a child started by a
    big process would report the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def classify(predictor: Any, schema: CompiledSchema, payload: Any) -> list[Any]:
    """``[status, output_json, error]`` for one input, as the data plane would record it."""
    violations = schema.violations(payload)
    if violations:
        return ["invalid_input", None, {"errors": [v.as_dict() for v in violations]}]
    try:
        output_json = encoding.encode_output(predictor.predict(payload))
    except ModelRejected as exc:
        return ["rejected", None, failures.rejected(exc)]
    except encoding.UnencodableOutput as exc:
        return ["error", None, failures.unencodable(exc)]
    except BaseException as exc:  # noqa: BLE001 - foreign code: SystemExit too is this input's failure
        return ["error", None, failures.raised(exc)]
    return ["ok", output_json.decode(), None]


def _decode_batch(frame: bytes) -> list[Any]:
    """The batch's inputs; an input orjson cannot decode is marked rather than failing the batch."""
    try:
        return encoding.loads(frame)
    except encoding.JSONDecodeError:
        pass
    import json  # the slow path: split the array with the stdlib parser, then decode each like the server

    decoded: list[Any] = []
    for item in json.loads(frame):
        try:
            decoded.append(encoding.loads(json.dumps(item)))
        except (encoding.JSONDecodeError, TypeError, ValueError) as exc:
            decoded.append(_Undecodable(str(exc)))
    return decoded


class _Undecodable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    def send(document: Any) -> None:
        out.write(pack(encoding.dumps(document)))
        out.flush()

    hello_frame, data = read_frame(inp), read_frame(inp)
    if hello_frame is None or data is None:
        return 1
    hello = encoding.loads(hello_frame)
    model, version = hello["model"], hello["version"]
    try:
        artifacts.verify(model, version, data, hello["sha256"])
        predictor = artifacts.load_predictor(model, version, data)
        schema = CompiledSchema(hello["schema"])
    except artifacts.ArtifactRejected as exc:
        send({"error": str(exc)})
        return 0
    except Exception as exc:  # noqa: BLE001 - e.g. a schema the validator cannot compile
        send({"error": f"{model} {version}: {type(exc).__name__}: {exc}"})
        return 0
    del data
    send({"ready": True, "predictor_type": type(predictor).__name__})
    while (frame := read_frame(inp)) is not None:
        outcomes = []
        for payload in _decode_batch(frame):
            if isinstance(payload, _Undecodable):
                outcomes.append([NOT_REPLAYABLE, None, {"message": payload.reason}])
            else:
                outcomes.append(classify(predictor, schema, payload))
        send(outcomes)
    # the parent reads the peak memory of this process from the last frame it gets, the "bye"
    send({"bye": True, "max_rss_kib": peak_rss_kib()})
    return 0


def main() -> int:
    # keep the real stdout for frames; whatever the model prints lands on stderr
    frames_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with os.fdopen(frames_fd, "wb") as out:
        return serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    sys.exit(main())
