"""The request id (http/context.py): a caller's safe ``X-Request-ID`` is echoed and stored on the row; an absent
or unsafe one is replaced by a fresh UUID before it reaches the logs and the table, on every answer."""
from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from modelplatform.http.context import request_id_from
from support.memory import MemoryPlatform

PINNED = "/models/auto_pricing/versions/1.0.0/predict"


@pytest.mark.parametrize("request_id", ["req-123", "a" * 128, "A-Za-z0-9._:@/+="])
def test_a_safe_request_id_is_echoed_and_stored(client: FlaskClient, pricing: MemoryPlatform, payload,
                                                request_id: str) -> None:
    response = client.post(PINNED, json=payload("quote_valid.json"), headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == request_id
    (row,) = pricing.rows()
    assert row["request_id"] == request_id


@pytest.mark.parametrize("request_id", [None, "", "x" * 129, "x" * 500, "a\x01b", "a b", "é" * 10, "id\t1"],
                         ids=["absent", "empty", "129", "500", "control", "space", "non-ascii", "tab"])
def test_an_absent_or_unsafe_request_id_is_replaced_before_logs_and_table(client: FlaskClient,
                                                                          pricing: MemoryPlatform, payload,
                                                                          request_id: str | None) -> None:
    headers = {} if request_id is None else {"X-Request-ID": request_id}
    response = client.post(PINNED, json=payload("quote_valid.json"), headers=headers)
    assert response.status_code == 200
    generated = response.headers["X-Request-ID"]
    assert uuid.UUID(generated).version == 4 and generated != request_id
    (row,) = pricing.rows()
    assert row["request_id"] == generated


def test_every_answer_carries_a_request_id_problems_and_health_too(client: FlaskClient) -> None:
    for response in (client.get("/healthz"), client.get("/no/such/route"), client.get("/models/nope"),
                     client.post(PINNED, data=b"{", content_type="application/json")):
        assert uuid.UUID(response.headers["X-Request-ID"]).version == 4
    assert client.get("/healthz", headers={"X-Request-ID": "probe-1"}).headers["X-Request-ID"] == "probe-1"


def test_each_replacement_is_fresh() -> None:
    assert len({request_id_from("bad id") for _ in range(100)}) == 100
