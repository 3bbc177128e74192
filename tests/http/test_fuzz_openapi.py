"""Schemathesis fuzzing against ``/openapi.json``: generated (valid and invalid) calls never get a 5xx, and
every answer is what the document says (status, content type, headers, body schema; invalid calls refused).

Bounded: a fixed number of examples per operation and mode (valid and invalid calls), derandomized so a
failure reproduces. Every check of ``schemathesis run --checks all`` runs except
``positive_data_acceptance``: a schema-valid input may still be refused, by design, for reasons JSON Schema
cannot state (documented as 400/422): the model's business rules (422 ``rejected``), U+0000 in a string
(Postgres ``jsonb`` cannot store it), a number a double cannot hold exactly (``number-precision``).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from support.memory import MemoryPlatform
from support.models import Echo, Pricer

DATA = Path(__file__).parent.parent / "data"
# slow: hundreds of generated calls, seconds of CPU (about 4 s on an idle machine) that the unit tier cannot spend;
# schemathesis and Hypothesis are imported in the test, so that merely collecting it costs the unit tier nothing
pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def api_schema(memory: MemoryPlatform):
    import schemathesis

    schemas = {name: json.loads((DATA / f"{name}.json").read_text())
               for name in ("schema_quote_v1", "schema_quote_v2", "schema_with_defs")}
    memory.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
               default="1.1.0", schemas={"1.0.X": schemas["schema_quote_v1"], "1.1.X": schemas["schema_quote_v2"]})
    memory.add("drivers", {"3.0.0": Echo()}, schemas={"3.X.X": schemas["schema_with_defs"]})
    return schemathesis.openapi.from_wsgi("/openapi.json", memory.app(MAX_BODY_BYTES=65536))


def test_generated_calls_get_no_server_error_and_answers_match_the_document(api_schema) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance, negative_data_rejection]
    # driven through Hypothesis directly: schemathesis' own pytest fixture glue does not run on pytest 9
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10  # predicts (pinned + unpinned), metadata, health, metrics, openapi
    seen: set[int] = set()
    calls: list[int] = []  # the statuses of one operation and mode
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):
        calls.clear()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            response = case.call()
            calls.append(response.status_code)
            case.validate_response(response, checks=checks)
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])
            if response.status_code >= 400:
                headers = {name.lower(): value for name, value in response.headers.items()}
                content_type = headers["content-type"]
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), response.text[:200]

        try:
            fuzz()
        except Unsatisfiable:
            if mode is schemathesis.GenerationMode.POSITIVE:
                raise
            continue  # nothing in this operation can be made invalid (e.g. GET /healthz)
        assert calls, (operation.label, mode)
        seen.update(calls)
    # the fuzzing reached models (200) and their error paths (400/404/415/422), not only one answer
    assert {200, 422} <= seen and seen & {400, 404, 415}, seen
