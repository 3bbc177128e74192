"""A/B routing through the app: sticky keys from the input or the header, random without a key,
pinned calls bypassing the test, and the routing recorded on every row."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter

from flask.testing import FlaskClient

from modelplatform.routing import MAX_ROUTING_KEY_CHARS, assign
from support import Platform
from support.models import Echo

from ab_routing_support import TEST_NAME, ab_model, predict

WEIGHTS = {"1.0.0": 50, "2.0.0": 50}


def test_split_over_distinct_keys_is_within_tolerance_and_every_row_records_the_route(
        client: FlaskClient, rollout: Platform) -> None:
    n = 1000
    versions = Counter(predict(client, {"customer_id": f"c{i}"})["version"] for i in range(n))
    assert set(versions) == {"1.0.0", "2.0.0"}
    assert abs(versions["1.0.0"] - n / 2) <= 4 * math.sqrt(n * 0.25), versions  # 4 σ of Binomial(1000, ½)

    rows = rollout.rows()
    assert len(rows) == n
    assert {(r["routed_by"], r["experiment"]) for r in rows} == {("ab_test", TEST_NAME)}
    assert {r["routing_key"] for r in rows} == {f"c{i}" for i in range(n)}
    assert all(r["version"] == assign(TEST_NAME, WEIGHTS, r["routing_key"]) for r in rows)


def test_response_names_the_arm_and_the_experiment(client: FlaskClient) -> None:
    response = client.post("/models/rollout/predict", json={"customer_id": 7})
    doc = response.get_json()
    assert (doc["routed_by"], doc["experiment"]) == ("ab_test", TEST_NAME)
    assert doc["version"] == assign(TEST_NAME, WEIGHTS, "7")  # a number and the header "7" are one unit
    assert response.headers["X-Model-Version"] == doc["version"]


def test_two_separately_built_apps_assign_every_key_alike(rollout: Platform) -> None:
    first, second = rollout.app().test_client(), rollout.app().test_client()
    keys = [f"k{i}" for i in range(200)]
    assert [predict(first, {"customer_id": k})["version"] for k in keys] == \
           [predict(second, {"customer_id": k})["version"] for k in keys]


RESTARTED = """
import json, sys
from modelplatform.app import create_app
client = create_app().test_client()
versions = [client.post("/models/rollout/predict", json={"customer_id": k}).get_json()["version"]
            for k in json.load(sys.stdin)]
print(json.dumps(versions))
"""


def test_a_restarted_process_with_another_hash_seed_assigns_every_key_alike(rollout: Platform,
                                                                             client: FlaskClient) -> None:
    keys = [f"k{i}" for i in range(200)]
    here = [predict(client, {"customer_id": k})["version"] for k in keys]
    # a fresh interpreter, its own app built from the environment: only the hash scheme is shared
    env = {**os.environ, **rollout.env(), "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", RESTARTED], input=json.dumps(keys), env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here


def test_header_overrides_the_sticky_key(client: FlaskClient, rollout: Platform) -> None:
    # a payload key and a header key that fall in different arms, so the override is visible
    header = next(f"h{i}" for i in range(100) if assign(TEST_NAME, WEIGHTS, f"h{i}") != assign(TEST_NAME, WEIGHTS, "p"))
    doc = predict(client, {"customer_id": "p"}, **{"X-Routing-Key": header})
    assert doc["version"] == assign(TEST_NAME, WEIGHTS, header)
    (row,) = rollout.rows()
    assert row["routing_key"] == header


def test_without_a_key_calls_are_assigned_at_random_by_the_weights(platform: Platform) -> None:
    ab_model(platform, {"1.0.0": 50, "2.0.0": 50})
    client = platform.app().test_client()
    n = 400
    # no customer_id, or one that is not a scalar: no key, so no stickiness
    bodies = [{"other": 1}, {"customer_id": None}, {"customer_id": {"nested": 1}}, {"customer_id": [1]}]
    versions = Counter(predict(client, bodies[i % len(bodies)])["version"] for i in range(n))
    assert abs(versions["1.0.0"] - n / 2) <= 4 * math.sqrt(n * 0.25), versions
    rows = platform.rows()
    assert {(r["routed_by"], r["experiment"], r["routing_key"]) for r in rows} == {("ab_test", TEST_NAME, None)}


def test_a_test_without_sticky_key_uses_the_header_or_chance(platform: Platform) -> None:
    ab_model(platform, {"1.0.0": 50, "2.0.0": 50}, sticky_key=None)
    client = platform.app().test_client()
    assert {predict(client, {"customer_id": "c1"}, **{"X-Routing-Key": "u1"})["version"] for _ in range(20)} == \
           {assign(TEST_NAME, WEIGHTS, "u1")}
    assert len({predict(client, {"customer_id": "c1"})["version"] for _ in range(60)}) == 2  # (½)^59 to fail


def test_weight_zero_arm_is_never_chosen_with_or_without_key(platform: Platform) -> None:
    ab_model(platform, {"1.0.0": 0, "2.0.0": 100})
    client = platform.app().test_client()
    assert {predict(client, {"customer_id": f"c{i}"})["version"] for i in range(100)} == {"2.0.0"}
    assert {predict(client, {})["version"] for _ in range(100)} == {"2.0.0"}


def test_raising_a_weight_moves_units_only_into_that_arm(platform: Platform) -> None:
    ab_model(platform, {"1.0.0": 50, "2.0.0": 50})
    keys = [f"k{i}" for i in range(300)]
    before = [predict(platform.app().test_client(), {"customer_id": k})["version"] for k in keys]
    platform.config["rollout"]["ab_test"]["weights"] = {"1.0.0": 20, "2.0.0": 80}
    client = platform.app().test_client()  # the deploy with new weights
    after = [predict(client, {"customer_id": k})["version"] for k in keys]
    moves = Counter((x, y) for x, y in zip(before, after) if x != y)
    assert set(moves) == {("1.0.0", "2.0.0")}
    assert abs(moves[("1.0.0", "2.0.0")] - 0.3 * 300) <= 4 * math.sqrt(300 * 0.3 * 0.7), moves


def test_pinned_call_bypasses_the_test(client: FlaskClient, rollout: Platform) -> None:
    key = next(f"k{i}" for i in range(100) if assign(TEST_NAME, WEIGHTS, f"k{i}") == "2.0.0")
    response = client.post("/models/rollout/versions/1.0.0/predict", json={"customer_id": key},
                           headers={"X-Routing-Key": key})
    doc = response.get_json()
    assert (doc["version"], doc["routed_by"], doc["experiment"]) == ("1.0.0", "pinned", None)
    (row,) = rollout.rows()
    assert (row["version"], row["routed_by"], row["experiment"]) == ("1.0.0", "pinned", None)


def test_a_model_without_test_serves_its_default_and_records_the_callers_key(platform: Platform) -> None:
    platform.add("plain", {"1.0.0": Echo(), "2.0.0": Echo()}, default="1.0.0")
    client = platform.app().test_client()
    doc = client.post("/models/plain/predict", json={"customer_id": "c1"}, headers={"X-Routing-Key": "u1"}).get_json()
    assert (doc["version"], doc["routed_by"], doc["experiment"]) == ("1.0.0", "default", None)
    (row,) = platform.rows()
    assert (row["routed_by"], row["experiment"], row["routing_key"]) == ("default", None, "u1")


def test_long_keys_are_recorded_as_a_bounded_digest_and_stay_sticky(client: FlaskClient, rollout: Platform) -> None:
    key = "x" * 5000
    first = predict(client, {"customer_id": key})
    second = predict(client, {"customer_id": key})
    assert first["version"] == second["version"]
    recorded = {r["routing_key"] for r in rollout.rows()}
    assert len(recorded) == 1
    (value,) = recorded
    assert value.startswith("blake2b:") and len(value) <= MAX_ROUTING_KEY_CHARS


def test_invalid_routing_key_header_is_a_problem_not_a_route(client: FlaskClient, rollout: Platform) -> None:
    response = client.post("/models/rollout/predict", json={"customer_id": "c"},
                           headers={"X-Routing-Key": "k" * (MAX_ROUTING_KEY_CHARS + 1)})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert rollout.rows() == []


def test_invalid_input_under_a_test_is_recorded_on_its_arm(platform: Platform) -> None:
    schema = {"type": "object", "required": ["vehicle"]}
    ab_model(platform, {"1.0.0": 50, "2.0.0": 50}, schemas={"1.0.0": schema, "2.0.0": schema})
    client = platform.app().test_client()
    response = client.post("/models/rollout/predict", json={"customer_id": "c9"})
    assert response.status_code == 422
    (row,) = platform.rows()
    assert (row["status"], row["routed_by"], row["experiment"], row["routing_key"]) == \
           ("invalid_input", "ab_test", TEST_NAME, "c9")
    assert row["version"] == assign(TEST_NAME, WEIGHTS, "c9")
