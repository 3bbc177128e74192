"""``GET /openapi.json``: an OpenAPI 3.1 document built from the live registry.

One pinned predict operation per active version (request body: that version's JSON Schema, with its
examples), one unpinned predict operation per model (the schemas of every version it can route to),
the metadata, health and metrics routes, and every problem+json response each can give. Built once
per app: the registry never changes while a worker lives.
"""
from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from modelplatform import encoding
from modelplatform.registry import LoadedVersion, RegisteredModel, Registry

bp = Blueprint("openapi", __name__)

PROBLEM = {"$ref": "#/components/schemas/Problem"}
SECURITY_SCHEME = "apiKey"

_PROBLEM_TEXT = {
    400: "Malformed JSON, invalid UTF-8, a number out of range, or a bad header",
    401: "Missing or unknown API key",
    404: "Unknown model or version",
    408: "The request head or body did not arrive within the server's read deadline",
    413: "Request body too large",
    415: "Content-Type is not JSON",
    422: "Input violates the version's schema (`errors` lists every violation), or the model rejected it (`code`)",
    500: "The model failed on this input (no stack trace is sent)",
    503: "Not ready, or the inference could not be recorded (retry)",
    504: "The model gave no answer within PREDICT_TIMEOUT (recorded)",
}

_COMPONENT_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "inference_id": {"type": "string", "format": "uuid",
                             "description": "Present when the request was recorded in the inferences table"},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["path", "message"],
                "properties": {"path": {"type": "string", "description": "JSON Pointer into the input"},
                               "message": {"type": "string"}}}},
            "code": {"type": "string", "description": "The model's rejection code"},
        },
    },
    "Prediction": {
        "type": "object",
        "required": ["inference_id", "model", "version", "routed_by", "experiment", "output"],
        "properties": {
            "inference_id": {"type": "string", "format": "uuid"},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "routed_by": {"enum": ["pinned", "default", "ab_test"]},
            "experiment": {"type": ["string", "null"]},
            "output": {"description": "Whatever the model version returns"},
        },
    },
    "Model": {
        "type": "object",
        "required": ["name", "description", "default", "active_versions", "ab_test", "shadow"],
        "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}, "default": {"type": "string"},
            "active_versions": {"type": "array", "items": {"type": "string"}},
            "ab_test": {"type": ["object", "null"]},
            "shadow": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ModelVersion": {
        "type": "object",
        "required": ["model", "version", "sha256", "schema", "examples", "loaded_at"],
        "properties": {
            "model": {"type": "string"}, "version": {"type": "string"}, "is_default": {"type": "boolean"},
            "sha256": {"type": "string"}, "schema_key": {"type": "string"}, "schema": {},
            "examples": {"type": "array"}, "loaded_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
        },
    },
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _PROBLEM_TEXT[s], "content": {"application/problem+json": {"schema": PROBLEM}}}
            for s in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _rebase_refs(schema: Any, base: str) -> Any:
    """Point a schema's local ``$ref``s (``#/$defs/x``) at where the schema now lives in the document.

    Without an ``$id`` a schema embedded in OpenAPI takes the document as its base, so ``#/...`` would
    resolve against the document root.
    """
    if isinstance(schema, dict):
        return {k: (base + v[1:] if k == "$ref" and isinstance(v, str) and v.startswith("#")
                    else _rebase_refs(v, base)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase_refs(v, base) for v in schema]
    return schema


def _schema_name(loaded: LoadedVersion) -> str:
    return f"{loaded.model}.{loaded.schema_key}"


def _examples(versions: list[LoadedVersion]) -> dict[str, Any]:
    examples: dict[str, Any] = {}
    for loaded in versions:
        for n, example in enumerate(loaded.examples, 1):
            name = f"{loaded.schema_key} #{n}"
            if name not in examples:
                examples[name] = {"summary": example.description or f"example {n} for {loaded.schema_key}",
                                  "value": example.input}
    return examples


def _request_body(versions: list[LoadedVersion]) -> dict[str, Any]:
    refs = list(dict.fromkeys(f"#/components/schemas/{_schema_name(v)}" for v in versions))
    schema = {"$ref": refs[0]} if len(refs) == 1 else {"anyOf": [{"$ref": r} for r in refs]}
    media: dict[str, Any] = {"schema": schema}
    examples = _examples(versions)
    if examples:
        media["examples"] = examples
    return {"required": True, "content": {"application/json": media}}


REQUEST_ID_PARAM = {"name": "X-Request-ID", "in": "header", "required": False,
                    "description": "Echoed back; replaced by a fresh UUID unless 1-128 of [A-Za-z0-9._:@/+=-]",
                    "schema": {"type": "string", "maxLength": 128}}
ROUTING_KEY_PARAM = {"name": "X-Routing-Key", "in": "header", "required": False,
                     "description": "Overrides the A/B test's sticky key (1-256 printable characters)",
                     "schema": {"type": "string", "minLength": 1, "maxLength": 256}}

PREDICTION_HEADERS = {
    "X-Model-Version": {"schema": {"type": "string"}, "description": "The version that answered"},
    "X-Inference-ID": {"schema": {"type": "string"}, "description": "The row in the inferences table"},
    "X-Request-ID": {"schema": {"type": "string"}},
}


def _routable(model: RegisteredModel) -> list[LoadedVersion]:
    ab = model.spec.ab_test
    names = [v for v, w in ab.weights.items() if w > 0] if ab is not None else [model.spec.default]
    return [model.versions[v] for v in names]


def _predict_operation(operation_id: str, summary: str, versions: list[LoadedVersion], tag: str,
                       secured: bool, routing_key: bool) -> dict[str, Any]:
    statuses = (400, 401, 404, 408, 413, 415, 422, 500, 503, 504) if secured else (400, 404, 408, 413, 415, 422, 500, 503, 504)
    prediction = _json({"$ref": "#/components/schemas/Prediction"}, "The prediction, recorded before this answer")
    prediction["headers"] = PREDICTION_HEADERS
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [REQUEST_ID_PARAM] + ([ROUTING_KEY_PARAM] if routing_key else []),
        "requestBody": _request_body(versions),
        "responses": {"200": prediction, **_problems(*statuses)},
    }


def _safe_id(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def build_openapi(registry: Registry, *, secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``registry``; ``secured`` adds the Bearer scheme and 401s."""
    schemas: dict[str, Any] = copy.deepcopy(_COMPONENT_SCHEMAS)
    paths: dict[str, Any] = {}
    security = [{SECURITY_SCHEME: []}] if secured else []
    names = [m.name for m in registry]

    for model in registry:
        for loaded in model.versions.values():
            name = _schema_name(loaded)
            schemas.setdefault(name, _rebase_refs(loaded.schema, f"#/components/schemas/{name}"))
        description = model.spec.description or model.name
        paths[f"/models/{model.name}/predict"] = {"post": {
            **_predict_operation(f"predict_{model.name}", f"Predict with {model.name} (routed)", _routable(model),
                                 model.name, secured, routing_key=True),
            "description": f"{description}. Routed by the A/B test when there is one, else to the default "
                           f"version {model.spec.default}.",
            "security": security,
        }}
        for version, loaded in model.versions.items():
            paths[f"/models/{model.name}/versions/{version}/predict"] = {"post": {
                **_predict_operation(f"predict_{model.name}_{_safe_id(version)}",
                                     f"Predict with {model.name} {version} (pinned)", [loaded], model.name,
                                     secured, routing_key=False),
                "security": security,
            }}

    auth_problems = (401,) if secured else ()
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": names}}
    version_param = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    paths["/models"] = {"get": {
        "operationId": "list_models", "summary": "Every model", "tags": ["metadata"], "security": security,
        "responses": {"200": _json({"type": "object", "required": ["models"], "properties": {
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}}, "Every model"),
            **_problems(*auth_problems)},
    }}
    paths["/models/{name}"] = {"get": {
        "operationId": "get_model", "summary": "One model", "tags": ["metadata"], "security": security,
        "parameters": [name_param],
        "responses": {"200": _json({"$ref": "#/components/schemas/Model"}, "The model"),
                      **_problems(*auth_problems, 404)},
    }}
    paths["/models/{name}/versions/{version}"] = {"get": {
        "operationId": "get_model_version", "summary": "One active version: sha256, schema, examples",
        "tags": ["metadata"], "security": security, "parameters": [name_param, version_param],
        "responses": {"200": _json({"$ref": "#/components/schemas/ModelVersion"}, "The version"),
                      **_problems(*auth_problems, 404)},
    }}
    paths["/healthz"] = {"get": {
        "operationId": "healthz", "summary": "Liveness", "tags": ["operations"], "security": [],
        "responses": {"200": _json({"type": "object"}, "The process answers")},
    }}
    paths["/readyz"] = {"get": {
        "operationId": "readyz", "summary": "Readiness: models loaded and database reachable",
        "tags": ["operations"], "security": [],
        "responses": {"200": _json({"type": "object"}, "Ready"), **_problems(503)},
    }}
    paths["/metrics"] = {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics", "tags": ["operations"], "security": [],
        "responses": {"200": {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }}
    paths["/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["operations"], "security": [],
        "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
    }}

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "modelplatform",
            "version": f"{metadata.version('modelplatform')}+config.{registry.config.revision}",
            "description": "Versioned model serving. Every predict answer (errors included) that reached a "
                           "model version is recorded in the inferences table before it is sent.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if secured:
        document["components"]["securitySchemes"] = {SECURITY_SCHEME: {
            "type": "http", "scheme": "bearer", "description": "An API key from API_KEYS / API_KEYS_FILE"}}
    return document


def register(app: Flask, registry: Registry, *, secured: bool) -> None:
    app.extensions["modelplatform.openapi"] = encoding.dumps(build_openapi(registry, secured=secured))
    app.register_blueprint(bp)


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return Response(current_app.extensions["modelplatform.openapi"], mimetype="application/json")
