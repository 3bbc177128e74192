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
from modelplatform.pointers import child
from modelplatform.registry import LoadedVersion, RegisteredModel, Registry
from modelplatform.routing import MAX_ROUTING_KEY_CHARS

bp = Blueprint("openapi", __name__)

PROBLEM = {"$ref": "#/components/schemas/Problem"}
SECURITY_SCHEME = "apiKey"

_PROBLEM_TEXT = {
    400: "Malformed JSON or body, invalid UTF-8, U+0000 in a string, a number a 64-bit float cannot hold "
         "exactly (number-precision), or a bad X-Routing-Key",
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
            "errors_total": {"type": "integer",
                             "description": "How many numbers were refused (number-precision lists the first 100)"},
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
            "routed_by": {"type": "string", "enum": ["pinned", "default", "ab_test"]},
            "experiment": {"type": ["string", "null"]},
            "output": {"description": "Whatever the model version returns"},
        },
    },
    "ABTest": {
        "type": "object",
        "required": ["name", "weights", "sticky_key"],
        "properties": {
            "name": {"type": "string"},
            "weights": {"type": "object", "additionalProperties": {"type": "integer"},
                        "description": "Integer weight per active version, summing to 100"},
            "sticky_key": {"type": ["string", "null"], "description": "JSON Pointer into the input"},
        },
    },
    "Model": {
        "type": "object",
        "required": ["name", "description", "default", "active_versions", "ab_test", "shadow"],
        "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}, "default": {"type": "string"},
            "active_versions": {"type": "array", "items": {"type": "string"}},
            "ab_test": {"anyOf": [{"$ref": "#/components/schemas/ABTest"}, {"type": "null"}]},
            "shadow": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Example": {
        "type": "object",
        "required": ["input"],
        "properties": {"input": {"description": "An input the version accepts"},
                       "output": {"description": "Its expected output, when the config gives one"}},
    },
    "ModelVersion": {
        "type": "object",
        "required": ["model", "version", "is_default", "sha256", "schema_key", "schema", "examples", "loaded_at"],
        "properties": {
            "model": {"type": "string"}, "version": {"type": "string"}, "is_default": {"type": "boolean"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "schema_key": {"type": "string"},
            "schema": {"type": "object", "description": "The version's JSON Schema (2020-12)"},
            "examples": {"type": "array", "items": {"$ref": "#/components/schemas/Example"}},
            "loaded_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
        },
    },
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _PROBLEM_TEXT[s], "content": {"application/problem+json": {"schema": PROBLEM}}}
            for s in statuses}


# any operation can meet the server's own refusals, before the app sees the request
MALFORMED_HTTP = {"400": {"description": "Malformed HTTP request, refused by the server (problem+json)",
                          "content": {"application/problem+json": {"schema": PROBLEM}}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _schema_name(loaded: LoadedVersion) -> str:
    """``auto_pricing__2_1_X`` for schema key ``2.1.X`` of ``auto_pricing``: no dots (code generators read
    ``a.b`` as a module path). Unique: model names have no dots and keys no underscores, and the key's
    components are never empty, so the last ``__`` always separates model from key."""
    return f"{loaded.model}__{loaded.schema_key.replace('.', '_')}"


def _component_schemas(name: str, schema: Any) -> dict[str, Any]:
    """``schema`` as the component ``name``, its top-level ``$defs`` hoisted to components of their own
    (``<name>-<def>``: a hyphen appears in no model name or version key, so these never meet a version's
    component) and every local ``$ref`` rewritten to where its target now lives.

    Embedded in OpenAPI without an ``$id``, a schema's ``#/...`` refs would resolve against the document
    root; and code generators resolve refs only to whole components, not into one
    (``#/components/schemas/x/$defs/y``), so each definition becomes a component.
    """
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}
    def_names = {key: f"{name}-{_safe_id(key)}" for key in defs}
    if len(set(def_names.values())) < len(def_names):  # two names that differ only in punctuation
        def_names = {key: f"{name}-def{n}" for n, key in enumerate(defs, 1)}

    def target(ref: str) -> str:
        pointer = ref[1:]
        for key, component in def_names.items():
            prefix = child("/$defs", key)
            if pointer == prefix or pointer.startswith(prefix + "/"):
                return f"#/components/schemas/{component}{pointer[len(prefix):]}"
        return f"#/components/schemas/{name}{pointer}"

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (target(v) if k == "$ref" and isinstance(v, str) and v.startswith("#") else rebase(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [rebase(v) for v in node]
        return node

    components = {component: rebase(defs[key]) for key, component in def_names.items()}
    main = rebase({k: v for k, v in schema.items() if k != "$defs"} if def_names else schema)
    return {name: main, **components}


def _examples(versions: list[LoadedVersion]) -> dict[str, Any]:
    """The config's examples for ``versions``, keeping only inputs every one of them accepts (a routed call
    may reach any of them)."""
    examples: dict[str, Any] = {}
    for loaded in versions:
        for n, example in enumerate(loaded.examples, 1):
            name = f"{loaded.schema_key} #{n}"
            if name not in examples and all(not v.validator.violations(example.input) for v in versions):
                examples[name] = {"summary": example.description or f"example {n} for {loaded.schema_key}",
                                  "value": example.input}
    return examples


def _request_body(versions: list[LoadedVersion]) -> dict[str, Any]:
    refs = list(dict.fromkeys(f"#/components/schemas/{_schema_name(v)}" for v in versions))
    if len(refs) == 1:
        schema: dict[str, Any] = {"$ref": refs[0]}
    else:
        # the call may be routed to any of these versions, and each checks its own schema: only a body
        # that satisfies all of them is sure to be accepted (anyOf would promise more than the service keeps)
        schema = {"allOf": [{"$ref": r} for r in refs],
                  "description": "The call may be routed to any of these versions' schemas, so a body must "
                                 "satisfy all of them to be accepted whatever the route; pin a version to "
                                 "use its schema alone"}
    media: dict[str, Any] = {"schema": schema}
    examples = _examples(versions)
    if examples:
        media["examples"] = examples
    return {"required": True, "content": {"application/json": media}}


REQUEST_ID_PARAM = {"name": "X-Request-ID", "in": "header", "required": False,
                    "description": "Your id for this call, stored on its audit row and echoed in the response's "
                                   "X-Request-ID. Any value is accepted: one that is not 1-128 of "
                                   "[A-Za-z0-9._:@/+=-] is replaced by a fresh UUID (never refused).",
                    "schema": {"type": "string"}}
ROUTING_KEY_PARAM = {"name": "X-Routing-Key", "in": "header", "required": False,
                     "description": "Overrides the A/B test's sticky key: the same key always gets the same "
                                    "version. 1-256 printable characters; 400 otherwise. Read as UTF-8, so a "
                                    "non-ASCII key sent as its UTF-8 bytes is the same unit as that string in "
                                    "the body; the pattern shows the portable, ASCII form.",
                     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ROUTING_KEY_CHARS,
                                # printable ASCII, no leading or trailing space (HTTP strips those)
                                "pattern": "^[!-~](?:[ -~]*[!-~])?$"}}

PREDICTION_HEADERS = {
    "X-Model-Version": {"schema": {"type": "string"}, "description": "The version that answered"},
    "X-Inference-ID": {"schema": {"type": "string"}, "description": "The row in the inferences table"},
    "X-Request-ID": {"schema": {"type": "string"},
                     "description": "The caller's X-Request-ID, or the UUID that replaced it"},
}


def _routable(model: RegisteredModel) -> list[LoadedVersion]:
    ab = model.spec.ab_test
    names = [v for v, w in ab.weights.items() if w > 0] if ab is not None else [model.spec.default]
    return [model.versions[v] for v in names]


def _predict_operation(operation_id: str, summary: str, versions: list[LoadedVersion], tag: str,
                       secured: bool, routing_key: bool) -> dict[str, Any]:
    statuses = ((400, 401, 404, 408, 413, 415, 422, 500, 503, 504) if secured
                else (400, 404, 408, 413, 415, 422, 500, 503, 504))
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
    security: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}] if secured else []
    names = [m.name for m in registry]

    for model in registry:
        for loaded in model.versions.values():
            name = _schema_name(loaded)
            if name not in schemas:
                schemas.update(_component_schemas(name, loaded.schema))
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

    # tag names are unique: a model named "metadata" shares that tag
    tags = {"metadata": "Models, versions, schemas and examples",
            "operations": "Health, readiness, metrics and this document"}
    for model in registry:
        tags.setdefault(model.name, f"Predict with {model.name}")
    auth_problems = (401,) if secured else ()
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": names}}
    version_param = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    paths["/models"] = {"get": {
        "operationId": "list_models", "summary": "Every model", "tags": ["metadata"], "security": security,
        "responses": {"200": _json({"type": "object", "required": ["models"], "properties": {
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}}, "Every model"),
            **MALFORMED_HTTP, **_problems(*auth_problems)},
    }}
    paths["/models/{name}"] = {"get": {
        "operationId": "get_model", "summary": "One model", "tags": ["metadata"], "security": security,
        "parameters": [name_param],
        "responses": {"200": _json({"$ref": "#/components/schemas/Model"}, "The model"),
                      **MALFORMED_HTTP, **_problems(*auth_problems, 404)},
    }}
    paths["/models/{name}/versions/{version}"] = {"get": {
        "operationId": "get_model_version", "summary": "One active version: sha256, schema, examples",
        "tags": ["metadata"], "security": security, "parameters": [name_param, version_param],
        "responses": {"200": _json({"$ref": "#/components/schemas/ModelVersion"}, "The version"),
                      **MALFORMED_HTTP, **_problems(*auth_problems, 404)},
    }}
    paths["/healthz"] = {"get": {
        "operationId": "healthz", "summary": "Liveness", "tags": ["operations"], "security": [],
        "responses": {"200": _json({"type": "object", "required": ["status"],
                                    "properties": {"status": {"type": "string", "const": "ok"}}},
                                   "The process answers"),
                      **MALFORMED_HTTP},
    }}
    paths["/readyz"] = {"get": {
        "operationId": "readyz", "summary": "Readiness: models loaded and database reachable",
        "tags": ["operations"], "security": [],
        "responses": {"200": _json({"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded"]}}}, "Ready (degraded: the audit spools)"),
            **MALFORMED_HTTP, **_problems(503)},
    }}
    paths["/metrics"] = {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics", "tags": ["operations"], "security": [],
        "responses": {"200": {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      **MALFORMED_HTTP},
    }}
    paths["/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["operations"], "security": [],
        "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), **MALFORMED_HTTP},
    }}

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "modelplatform",
            # setup.cfg's licence, as an SPDX expression (LicenseRef- is SPDX's form for a licence of one's own)
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
            "version": f"{metadata.version('modelplatform')}+config.{registry.config.revision}",
            "description": "Versioned model serving. Every predict answer (errors included) that reached a "
                           "model version is recorded in the inferences table before it is sent.",
        },
        # relative: the host that served this document
        "servers": [{"url": "/", "description": "This service"}],
        "tags": [{"name": name, "description": text} for name, text in tags.items()],
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
