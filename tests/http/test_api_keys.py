"""Optional API keys: 401 problem+json without a valid Bearer key, the key id (never the key) on the row."""
from __future__ import annotations

import hashlib

import pytest
from flask.testing import FlaskClient

from modelplatform.auth import ApiKeys
from modelplatform.errors import StartupError
from support.memory import MemoryPlatform
from support.problems import assert_problem

PINNED = "/models/auto_pricing/versions/1.0.0/predict"
PRICING_KEY = "pr1c1ng-s3cret-key"
BARE_KEY = "bare-key-0123456789"


@pytest.fixture
def keyed(pricing: MemoryPlatform, tmp_path) -> FlaskClient:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# batch jobs\nbatch:b4tch-job-key-xyz\n\n{BARE_KEY}\n")
    return pricing.app(API_KEYS=f"pricing:{PRICING_KEY}", API_KEYS_FILE=str(keys_file)).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("headers", [
    {}, bearer("wrong-key-123456"), {"Authorization": PRICING_KEY}, {"Authorization": f"Basic {PRICING_KEY}"},
    {"Authorization": "Bearer "}, bearer(PRICING_KEY + "x"), bearer("x" * 5000),
], ids=["none", "unknown", "no-scheme", "basic", "empty", "suffix", "huge"])
def test_predict_and_metadata_need_a_valid_key(keyed: FlaskClient, pricing: MemoryPlatform, payload, headers) -> None:
    for response in (keyed.post(PINNED, json=payload("quote_valid.json"), headers=headers),
                     keyed.post("/models/auto_pricing/predict", json=payload("quote_valid.json"), headers=headers),
                     keyed.get("/models", headers=headers),
                     keyed.get("/models/auto_pricing", headers=headers),
                     keyed.get("/models/auto_pricing/versions/1.0.0", headers=headers),
                     keyed.get("/models/nope", headers=headers)):  # 401 before 404: no probing for names
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="modelplatform"'
    assert pricing.rows() == []


def test_key_id_is_recorded_never_the_key(keyed: FlaskClient, pricing: MemoryPlatform, payload) -> None:
    ok = keyed.post(PINNED, json=payload("quote_valid.json"), headers=bearer(PRICING_KEY))
    from_file = keyed.post(PINNED, json=payload("quote_valid.json"),
                           headers={"Authorization": "bearer b4tch-job-key-xyz"})
    bare = keyed.post(PINNED, json={"vehicle": "boat", "driver_age": 40}, headers=bearer(BARE_KEY))
    assert (ok.status_code, from_file.status_code, bare.status_code) == (200, 200, 422)

    rows = {str(r["id"]): r for r in pricing.rows()}
    assert rows[ok.get_json()["inference_id"]]["api_key_id"] == "pricing"
    assert rows[from_file.get_json()["inference_id"]]["api_key_id"] == "batch"
    bare_id = "key-" + hashlib.sha256(BARE_KEY.encode()).hexdigest()[:8]
    assert rows[bare.get_json()["inference_id"]]["api_key_id"] == bare_id
    for row in rows.values():
        assert PRICING_KEY not in str(row) and BARE_KEY not in str(row)


def test_metadata_answers_with_a_key(keyed: FlaskClient) -> None:
    assert keyed.get("/models", headers=bearer(PRICING_KEY)).status_code == 200


def test_health_stays_open_with_keys(keyed: FlaskClient) -> None:
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200


def test_without_keys_the_service_is_open_and_rows_have_no_key_id(client: FlaskClient, pricing: MemoryPlatform,
                                                                  payload) -> None:
    assert client.post(PINNED, json=payload("quote_valid.json")).status_code == 200
    (row,) = pricing.rows()
    assert row["api_key_id"] is None


@pytest.mark.parametrize("env, fragment", [
    ({"API_KEYS": "short"}, "8-512"),
    ({"API_KEYS": "a b:12345678901"}, "key id"),
    ({"API_KEYS": "a:123456789,a:987654321"}, "duplicate"),
    ({"API_KEYS": " , "}, "hold no key"),
    ({"API_KEYS_FILE": "/nonexistent/keys"}, "cannot read"),
])
def test_malformed_key_settings_refuse_to_start(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(StartupError) as info:
        ApiKeys.from_env(env)
    assert fragment in str(info.value)
    for value in env.values():
        key = value.split(":")[-1].split(",")[0]
        if len(key) >= 8 and "/" not in key:
            assert key not in str(info.value)  # a problem message never prints a key


def test_no_key_variables_means_open() -> None:
    assert ApiKeys.from_env({}) is None
