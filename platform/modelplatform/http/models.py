"""Model endpoints: metadata and predict. Parsing and shaping only; the data plane does the work."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from modelplatform import encoding
from modelplatform.errors import BadRequest, ProblemError
from modelplatform.http import dataplane, observe, payload
from modelplatform.inference import PredictRequest
from modelplatform.registry import LoadedVersion, RegisteredModel
from modelplatform.routing import MAX_ROUTING_KEY_CHARS

ROUTING_KEY_HEADER = "X-Routing-Key"

bp = Blueprint("models", __name__)


def _json(document: Any, status: int = 200) -> Response:
    return Response(encoding.dumps(document), status=status, mimetype="application/json")


def describe_model(model: RegisteredModel) -> dict[str, Any]:
    spec = model.spec
    return {
        "name": spec.name,
        "description": spec.description,
        "default": spec.default,
        "active_versions": list(spec.active_versions),
        "ab_test": None if spec.ab_test is None else {
            "name": spec.ab_test.name, "weights": dict(spec.ab_test.weights), "sticky_key": spec.ab_test.sticky_key,
        },
        "shadow": list(spec.shadow),
    }


def describe_version(loaded: LoadedVersion, model: RegisteredModel) -> dict[str, Any]:
    return {
        "model": loaded.model,
        "version": loaded.version,
        "is_default": loaded.version == model.spec.default,
        "sha256": loaded.sha256,
        "schema_key": loaded.schema_key,
        "schema": loaded.schema,
        "examples": [
            {"input": ex.input, **({"output": ex.output} if ex.has_output else {})} for ex in loaded.examples
        ],
        "loaded_at": loaded.loaded_at.isoformat(),
        "source": loaded.source,
    }


@bp.get("/models")
def list_models() -> Response:
    return _json({"models": [describe_model(m) for m in dataplane().registry]})


@bp.get("/models/<name>")
def get_model(name: str) -> Response:
    return _json(describe_model(dataplane().registry.model(name)))


@bp.get("/models/<name>/versions/<version>")
def get_version(name: str, version: str) -> Response:
    model = dataplane().registry.model(name)
    return _json(describe_version(model.version(version), model))


def _routing_key() -> str | None:
    """The ``X-Routing-Key`` header as text: its bytes decoded as UTF-8, so the header means the same key
    as the same string in the body. Raises :class:`BadRequest` for bytes that are not UTF-8, and for a key
    that is empty, longer than :data:`MAX_ROUTING_KEY_CHARS` characters or not printable."""
    key = request.headers.get(ROUTING_KEY_HEADER)
    if key is None:
        return None
    try:
        # WSGI hands header bytes over as Latin-1 text (PEP 3333); undo that to get the bytes back
        key = key.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        pass  # not from a WSGI server's header bytes: already text
    except UnicodeDecodeError:
        raise BadRequest(f"{ROUTING_KEY_HEADER} must be UTF-8: send the key's UTF-8 bytes as they are (not "
                         "percent- or Latin-1-encoded), or put the key in the body at the A/B test's "
                         "sticky_key") from None
    if not key or len(key) > MAX_ROUTING_KEY_CHARS or not key.isprintable():
        raise BadRequest(f"{ROUTING_KEY_HEADER} must be 1–{MAX_ROUTING_KEY_CHARS} printable characters (UTF-8)")
    return key


def _predict(name: str, version: str | None) -> Response:
    plane = dataplane()
    # resolved once, here, and passed down: 404 before reading a body we would not use
    model = plane.registry.model(name)
    pinned = model.version(version) if version is not None else None
    body, raw = payload.read_json(request, g.max_body_bytes)
    try:
        prediction = plane.predict(PredictRequest(
            model=model, pinned=pinned, payload=body, raw_input=raw,
            request_id=g.request_id, routing_key=_routing_key(), api_key_id=g.get("api_key_id"),
        ))
    except ProblemError as exc:
        observe.note_inference(exc.recorded)  # None when nothing was recorded (e.g. 503 audit-unavailable)
        raise
    observe.note_inference(prediction.summary)
    response = Response(prediction.body(), status=200, mimetype="application/json")
    response.headers["X-Model-Version"] = prediction.version
    response.headers["X-Inference-ID"] = prediction.inference_id
    return response


@bp.post("/models/<name>/predict")
def predict(name: str) -> Response:
    return _predict(name, None)


@bp.post("/models/<name>/versions/<version>/predict")
def predict_pinned(name: str, version: str) -> Response:
    return _predict(name, version)
