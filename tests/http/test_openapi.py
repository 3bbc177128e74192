"""``/openapi.json``: a valid OpenAPI 3.1 document built from the live registry."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from support.memory import MemoryPlatform
from support.models import Echo, Pricer

DATA = Path(__file__).parent.parent / "data"


def load(name: str):
    return json.loads((DATA / name).read_text())


@pytest.fixture
def documented(memory: MemoryPlatform) -> MemoryPlatform:
    memory.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
                 default="1.1.0", description="Auto insurance pricing",
                 schemas={"1.0.X": load("schema_quote_v1.json"), "1.1.X": load("schema_quote_v2.json")},
                 examples={"1.1.X": [{"input": {"vehicle": "suv", "driver_age": 40, "annual_km": 9000},
                                      "description": "a 40-year-old with an SUV"}],
                           "1.0.X": [{"input": load("quote_valid.json")}]})
    memory.add("drivers", {"3.0.0": Echo()}, schemas={"3.X.X": load("schema_with_defs.json")})
    return memory


def spec_of(client: FlaskClient) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def body_schema(spec: dict, path: str) -> dict:
    return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]


def resolve(spec: dict, ref: str) -> dict:
    node = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def validator_for(spec: dict, ref: str) -> jsonschema.Draft202012Validator:
    """A validator for a component schema, resolving refs against the whole document like an OpenAPI tool."""
    registry = Registry().with_resource("urn:doc", Resource.from_contents(spec, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": "urn:doc" + ref}, registry=registry)


def test_document_validates_against_openapi_31(documented: MemoryPlatform) -> None:
    spec = spec_of(documented.app().test_client())
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["version"].endswith("+config." + documented.registry().config.revision)


def test_one_pinned_operation_per_active_version_with_that_versions_schema(documented: MemoryPlatform) -> None:
    spec = spec_of(documented.app().test_client())
    for version, schema_file in (("1.0.0", "schema_quote_v1.json"), ("1.1.0", "schema_quote_v2.json")):
        media = body_schema(spec, f"/models/auto_pricing/versions/{version}/predict")
        assert resolve(spec, media["schema"]["$ref"]) == load(schema_file)
    examples = body_schema(spec, "/models/auto_pricing/versions/1.1.0/predict")["examples"]
    assert [e["value"] for e in examples.values()] == [{"vehicle": "suv", "driver_age": 40, "annual_km": 9000}]
    assert "/models/drivers/versions/3.0.0/predict" in spec["paths"]
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_unpinned_operation_takes_the_default_versions_schema(documented: MemoryPlatform) -> None:
    spec = spec_of(documented.app().test_client())
    media = body_schema(spec, "/models/auto_pricing/predict")
    assert resolve(spec, media["schema"]["$ref"]) == load("schema_quote_v2.json")
    params = {p["name"] for p in spec["paths"]["/models/auto_pricing/predict"]["post"]["parameters"]}
    assert params == {"X-Request-ID", "X-Routing-Key"}


def test_every_problem_response_is_documented_as_problem_json(documented: MemoryPlatform) -> None:
    spec = spec_of(documented.app().test_client())
    responses = spec["paths"]["/models/auto_pricing/versions/1.0.0/predict"]["post"]["responses"]
    assert set(responses) == {"200", "400", "404", "408", "413", "415", "422", "500", "503", "504"}
    for status, response in responses.items():
        if status != "200":
            assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert set(spec["paths"]) >= {"/models", "/models/{name}", "/models/{name}/versions/{version}",
                                  "/healthz", "/readyz", "/metrics", "/openapi.json"}


def test_local_refs_in_a_version_schema_still_resolve_inside_the_document(documented: MemoryPlatform) -> None:
    spec = spec_of(documented.app().test_client())
    ref = body_schema(spec, "/models/drivers/versions/3.0.0/predict")["schema"]["$ref"]
    component = resolve(spec, ref)
    # $defs become components of their own: code generators resolve refs to whole components only
    assert ref == "#/components/schemas/drivers__3_X_X"
    assert component["properties"]["driver"]["$ref"] == "#/components/schemas/drivers__3_X_X-driver"
    assert "$defs" not in component
    driver = load("schema_with_defs.json")["$defs"]["driver"]
    assert resolve(spec, "#/components/schemas/drivers__3_X_X-driver") == driver
    validator = validator_for(spec, ref)
    assert validator.is_valid({"driver": {"age": 30}})
    assert not validator.is_valid({"driver": {"age": 3}})


def test_documented_examples_and_responses_match_what_the_server_does(documented: MemoryPlatform) -> None:
    client = documented.app().test_client()
    spec = spec_of(client)
    path = "/models/auto_pricing/versions/1.1.0/predict"
    (example,) = body_schema(spec, path)["examples"].values()
    response = client.post(path, json=example["value"])
    assert response.status_code == 200
    assert validator_for(spec, "#/components/schemas/Prediction").is_valid(response.get_json())
    problem = client.post(path, json={"vehicle": 1})
    assert problem.status_code == 422
    assert validator_for(spec, "#/components/schemas/Problem").is_valid(problem.get_json())


def test_with_api_keys_the_document_declares_bearer_auth_and_401s(documented: MemoryPlatform) -> None:
    client = documented.app(API_KEYS="ci:0123456789abcdef").test_client()
    spec = spec_of(client)  # the document itself stays open
    validate(spec)
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": "An API key from API_KEYS / API_KEYS_FILE"}
    predict = spec["paths"]["/models/auto_pricing/predict"]["post"]
    assert predict["security"] == [{"apiKey": []}] and "401" in predict["responses"]
    assert spec["paths"]["/healthz"]["get"]["security"] == []


def test_unpinned_operation_under_an_ab_test_requires_every_weighted_versions_schema(
        documented: MemoryPlatform) -> None:
    # a routed call may reach either arm, and each checks its own schema: only a body both accept is
    # sure to pass, so the document says allOf (anyOf promised bodies that half the calls refuse)
    documented.config["auto_pricing"]["ab_test"] = {"name": "rollout", "weights": {"1.0.0": 50, "1.1.0": 50}}
    spec = spec_of(documented.app().test_client())
    validate(spec)
    media = body_schema(spec, "/models/auto_pricing/predict")
    assert sorted(resolve(spec, s["$ref"])["required"] for s in media["schema"]["allOf"]) == sorted(
        [load("schema_quote_v1.json")["required"], load("schema_quote_v2.json")["required"]])
    # the examples of either version are refused by the other, so none is shown for the routed call
    assert "examples" not in media


def test_docs_page_and_its_assets_come_from_this_server_only(documented: MemoryPlatform) -> None:
    client = documented.app().test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html and "//" not in html.replace("<!--", "")
    for asset in ("docs/static/docs.js", "docs/static/docs.css"):
        assert asset in html
        response = client.get("/" + asset)
        assert response.status_code == 200
        assert "http" not in response.get_data(as_text=True).replace("HTTP ", "")
