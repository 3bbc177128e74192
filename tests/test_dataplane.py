"""The data plane on its own (route → validate → predict → encode → record), built from in-memory parts:
every outcome is returned or raised only with its record stored, and a model can do nothing worse than
fail its own inference."""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from modelplatform.audit.bounds import CLIPPED_INPUT_KEY, MAX_RECORDED_ERRORS, PREFIX_BYTES
from modelplatform.audit.ids import uuid7_time
from modelplatform.dataplane import DataPlane
from modelplatform.errors import (
    AuditUnavailable,
    DeadlineExceeded,
    InvalidInput,
    ModelFailed,
    Rejected,
    UnknownModel,
    UnknownVersion,
)
from modelplatform.failures import MAX_ERROR_MESSAGE_CHARS
from modelplatform.inference import Prediction, PredictRequest
from modelplatform.isolation import HostExit
from modelplatform.routing import assign
from support.memory import MemoryAuditLog, MemoryPlatform
from support.models import Blocks, Echo, ExitsProcess, Interrupts, Pricer, Raises, Returns, Sleeps

QUOTE = {"vehicle": "suv", "driver_age": 40}
QUOTE_SCHEMA = {"type": "object", "required": ["vehicle", "driver_age"], "additionalProperties": False,
                "properties": {"vehicle": {"type": "string"},
                               "driver_age": {"type": "integer", "minimum": 17, "maximum": 120},
                               "extras": {"type": "array", "items": {"type": "integer"}}}}
WEIGHTS = {"1.0.0": 50, "2.0.0": 50}


def predict(plane: DataPlane, model: str = "auto_pricing", payload: Any = QUOTE, *, version: str | None = None,
            **fields: Any) -> Prediction:
    """``plane.predict`` for a call to ``model`` (``version``: pinned), as the HTTP layer makes it: the one place
    these tests build a :class:`PredictRequest`."""
    fields.setdefault("request_id", "req-1")
    registered = plane.registry.model(model)  # the HTTP layer resolves model and pinned version from the URL
    pinned = registered.version(version) if version is not None else None
    return plane.predict(PredictRequest(model=registered, payload=payload, pinned=pinned, **fields))


class UnreadableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("even my message fails")


@pytest.fixture
def pricing(memory: MemoryPlatform) -> DataPlane:
    memory.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
               default="1.1.0", schemas={"1.X.X": QUOTE_SCHEMA})
    return memory.dataplane()


# -- routing ----------------------------------------------------------------------------------------------


def test_an_unpinned_call_goes_to_the_default_and_its_row_is_stored_before_it_returns(
        pricing: DataPlane, memory: MemoryPlatform) -> None:
    prediction = predict(pricing, request_id="req-123", routing_key="caller-key")

    assert (prediction.model, prediction.version, prediction.routed_by, prediction.experiment) == (
        "auto_pricing", "1.1.0", "default", None)
    assert json.loads(prediction.body()) == {
        "inference_id": prediction.inference_id, "model": "auto_pricing", "version": "1.1.0",
        "routed_by": "default", "experiment": None,
        "output": {"premium": 418.5, "currency": "EUR", "tag": "v2"}}
    (row,) = memory.rows()
    assert row["id"] == prediction.inference_id
    assert (row["model"], row["version"], row["routed_by"], row["experiment"], row["status"]) == (
        "auto_pricing", "1.1.0", "default", None, "ok")
    assert (row["input"], row["output"], row["error"]) == (QUOTE, json.loads(prediction.output_json), None)
    assert (row["request_id"], row["routing_key"], row["api_key_id"]) == ("req-123", "caller-key", None)
    assert row["artifact_sha256"] == memory.config["auto_pricing"]["sha256"]["1.1.0"]
    assert row["latency_ms"] == prediction.latency_ms > 0


def test_the_inference_id_is_a_uuid7_carrying_its_rows_created_at(pricing: DataPlane, memory: MemoryPlatform) -> None:
    ids = [predict(pricing).inference_id for _ in range(5)]
    rows = {row["id"]: row for row in memory.rows()}
    for inference_id in ids:
        assert uuid.UUID(inference_id).version == 7
        created_at = rows[inference_id]["created_at"]
        assert uuid7_time(inference_id) <= created_at < uuid7_time(inference_id) + timedelta(milliseconds=1)


def test_a_pinned_call_is_served_by_that_version(pricing: DataPlane, memory: MemoryPlatform) -> None:
    prediction = predict(pricing, version="1.0.0", payload={"vehicle": "hatchback", "driver_age": 19})
    assert (prediction.version, prediction.routed_by) == ("1.0.0", "pinned")
    assert json.loads(prediction.output_json) == {"premium": 450.0, "currency": "EUR", "tag": "v1"}
    (row,) = memory.rows()
    assert (row["version"], row["routed_by"], row["status"]) == ("1.0.0", "pinned", "ok")


@pytest.mark.parametrize("fields, error", [
    ({"model": "nope"}, UnknownModel), ({"version": "9.9.9"}, UnknownVersion), ({"version": "1.1"}, UnknownVersion),
])
def test_an_unknown_model_or_version_is_refused_and_not_recorded(pricing: DataPlane, memory: MemoryPlatform,
                                                                 fields: dict[str, str], error: type) -> None:
    with pytest.raises(error):
        predict(pricing, **fields)
    assert memory.rows() == []


def test_an_ab_test_routes_by_the_sticky_key_the_header_wins_and_a_pin_bypasses_it(memory: MemoryPlatform) -> None:
    memory.add("rollout", {"1.0.0": Echo(), "2.0.0": Echo()}, default="1.0.0",
               ab_test={"name": "exp", "weights": WEIGHTS, "sticky_key": "/customer_id"})
    plane = memory.dataplane()
    header = next(f"h{i}" for i in range(100) if assign("exp", WEIGHTS, f"h{i}") != assign("exp", WEIGHTS, "c1"))

    by_body = predict(plane, "rollout", {"customer_id": "c1"})
    by_header = predict(plane, "rollout", {"customer_id": "c1"}, routing_key=header)
    pinned = predict(plane, "rollout", {"customer_id": "c1"}, routing_key=header, version="1.0.0")

    assert (by_body.version, by_body.routed_by, by_body.experiment) == (assign("exp", WEIGHTS, "c1"), "ab_test", "exp")
    assert (by_header.version, by_header.routed_by) == (assign("exp", WEIGHTS, header), "ab_test")
    assert (pinned.version, pinned.routed_by, pinned.experiment) == ("1.0.0", "pinned", None)
    assert [(r["routed_by"], r["experiment"], r["routing_key"]) for r in memory.rows()] == [
        ("ab_test", "exp", "c1"), ("ab_test", "exp", header), ("pinned", None, header)]


def test_an_invalid_input_under_an_ab_test_is_recorded_on_its_arm(memory: MemoryPlatform) -> None:
    schema = {"type": "object", "required": ["vehicle"]}
    memory.add("rollout", {"1.0.0": Echo(), "2.0.0": Echo()}, default="1.0.0",
               schemas={"1.X.X": schema, "2.X.X": schema},
               ab_test={"name": "exp", "weights": WEIGHTS, "sticky_key": "/customer_id"})
    with pytest.raises(InvalidInput):
        predict(memory.dataplane(), "rollout", {"customer_id": "c9"})
    (row,) = memory.rows()
    assert (row["status"], row["routed_by"], row["experiment"], row["routing_key"]) == (
        "invalid_input", "ab_test", "exp", "c9")
    assert row["version"] == assign("exp", WEIGHTS, "c9")


# -- validation ---------------------------------------------------------------------------------------------


def test_schema_violations_are_all_listed_with_pointers_and_recorded(pricing: DataPlane,
                                                                     memory: MemoryPlatform) -> None:
    with pytest.raises(InvalidInput) as caught:
        predict(pricing, version="1.0.0", payload={"vehicle": 7, "driver_age": 12, "colour": "red"})

    problem = caught.value.to_problem()
    assert (problem["status"], problem["type"]) == (422, "urn:modelplatform:problem:invalid-input")
    errors = problem["errors"]
    # additionalProperties at the root, and both fields
    assert sorted(e["path"] for e in errors) == ["", "/driver_age", "/vehicle"]
    assert all(e["message"] for e in errors)
    (row,) = memory.rows()
    assert row["id"] == problem["inference_id"]
    assert (row["status"], row["output"]) == ("invalid_input", None)
    assert row["error"] == {"errors": errors}
    assert row["input"] == {"vehicle": 7, "driver_age": 12, "colour": "red"}


@pytest.mark.parametrize("payload", [[1, 2, 3], "a string", 42, None, True])
def test_a_body_that_is_not_an_object_is_a_recorded_violation_at_the_root(pricing: DataPlane, memory: MemoryPlatform,
                                                                          payload: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        predict(pricing, payload=payload)
    assert caught.value.extra["errors"][0]["path"] == ""
    (row,) = memory.rows()
    assert (row["status"], row["input"]) == ("invalid_input", payload)


def test_the_model_never_sees_an_invalid_input(memory: MemoryPlatform) -> None:
    # a call would raise ModelFailed instead of InvalidInput
    memory.add("m", {"1.0.0": Raises(exc=AssertionError("called"))},
               schemas={"1.0.0": {"type": "object", "required": ["x"]}})
    with pytest.raises(InvalidInput):
        predict(memory.dataplane(), "m", {})
    assert memory.rows()[0]["status"] == "invalid_input"


# -- what the model does -----------------------------------------------------------------------------------


def test_a_model_rejection_is_422_with_its_code_and_recorded(pricing: DataPlane, memory: MemoryPlatform) -> None:
    with pytest.raises(Rejected) as caught:
        predict(pricing, version="1.0.0", payload={"vehicle": "tractor", "driver_age": 40})
    problem = caught.value.to_problem()
    assert (problem["status"], problem["code"]) == (422, "unknown_vehicle")
    assert "tractor" in problem["detail"]
    (row,) = memory.rows()
    assert row["id"] == problem["inference_id"]
    assert (row["status"], row["output"]) == ("rejected", None)
    assert row["error"] == {"code": "unknown_vehicle", "message": "vehicle 'tractor' is not priced"}


@pytest.mark.parametrize("model, error_type, message", [
    (Raises("boom: secret internal detail"), "RuntimeError", "boom: secret internal detail"),
    (ExitsProcess(3), "SystemExit", "3"),
    (Interrupts(), "KeyboardInterrupt", "model interrupted itself"),
    (Raises(exc=GeneratorExit()), "GeneratorExit", ""),
    (Raises(exc=BaseException("the root of them all")), "BaseException", "the root of them all"),
    (Raises(exc=UnreadableError()), "UnreadableError", "<UnreadableError whose message cannot be read>"),
], ids=["exception", "system-exit", "keyboard-interrupt", "generator-exit", "base-exception", "unreadable"])
def test_anything_a_model_raises_is_its_recorded_500_and_the_plane_serves_on(
        memory: MemoryPlatform, model: Any, error_type: str, message: str) -> None:
    memory.add("m", {"1.0.0": model})
    plane = memory.dataplane()
    with pytest.raises(ModelFailed) as caught:
        predict(plane, "m", {"q": 1})
    problem = caught.value.to_problem()
    assert (problem["status"], problem["type"]) == (500, "urn:modelplatform:problem:model-error")
    assert "secret" not in json.dumps(problem) and "Traceback" not in json.dumps(problem)
    with pytest.raises(ModelFailed):  # and it serves on
        predict(plane, "m", {"q": 2})
    first, _ = memory.rows()
    assert first["id"] == problem["inference_id"]
    assert (first["status"], first["input"], first["output"]) == ("error", {"q": 1}, None)
    assert first["error"] == {"type": error_type, "message": message}


def test_a_long_exception_message_is_clipped_on_the_row(memory: MemoryPlatform) -> None:
    memory.add("m", {"1.0.0": Raises("x" * 10_000)})
    with pytest.raises(ModelFailed):
        predict(memory.dataplane(), "m", {})
    (row,) = memory.rows()
    assert row["error"]["message"] == "x" * MAX_ERROR_MESSAGE_CHARS + "…"


def test_the_hosts_own_exit_passes_through_unrecorded(memory: MemoryPlatform) -> None:
    memory.add("m", {"1.0.0": Raises(exc=HostExit(1))})
    with pytest.raises(HostExit):
        predict(memory.dataplane(), "m", {})
    assert memory.rows() == []


def test_an_answer_after_the_deadline_is_a_recorded_504_not_a_200(memory: MemoryPlatform) -> None:
    memory.add("slow", {"1.0.0": Sleeps(0.15)})
    with pytest.raises(DeadlineExceeded) as caught:
        predict(memory.dataplane(predict_timeout=0.05), "slow", {})
    problem = caught.value.to_problem()
    assert (problem["status"], problem["type"]) == (504, "urn:modelplatform:problem:deadline-exceeded")
    (row,) = memory.rows()
    assert (row["id"], row["status"], row["output"]) == (problem["inference_id"], "error", None)
    assert row["error"] == {"type": "DeadlineExceeded", "message": "no answer within 0.05 s"}


@pytest.mark.parametrize("output, reason", [
    (float("nan"), "non-finite number nan"), ({"p": float("inf")}, "non-finite number inf"),
    ({"s": {1, 2}}, "object of type set is not JSON-encodable"),
    (object(), "object of type object is not JSON-encodable"), (Decimal("NaN"), "non-finite Decimal NaN"),
], ids=["nan", "infinity", "set", "object", "decimal-nan"])
def test_an_output_with_no_faithful_json_form_is_a_recorded_500(memory: MemoryPlatform, output: Any,
                                                                reason: str) -> None:
    memory.add("broken", {"1.0.0": Returns(output)})
    with pytest.raises(ModelFailed) as caught:
        predict(memory.dataplane(), "broken", {"q": 1})
    (row,) = memory.rows()
    assert (row["id"], row["status"], row["input"], row["output"]) == (
        caught.value.inference_id, "error", {"q": 1}, None)
    assert row["error"] == {"type": "UnencodableOutput", "message": reason}


def test_a_decimal_output_keeps_its_exact_digits(pricing: DataPlane, memory: MemoryPlatform) -> None:
    prediction = predict(pricing, version="1.0.0")
    # 300.00 × 1.35 = 405.00: the Decimal's digits are written as they are, not through a float
    assert b'"premium":405.00' in prediction.output_json and b'"premium":405.00' in prediction.body()
    assert memory.audit.records[0].output_json == prediction.output_json.decode()


def test_the_row_keeps_the_body_as_received_and_the_model_gets_what_was_validated(memory: MemoryPlatform) -> None:
    memory.add("echo", {"1.0.0": Echo()})
    raw = b'{"n": 1.10, "big": 12345678901234567890}'
    prediction = predict(memory.dataplane(), "echo", json.loads(raw), raw_input=raw)
    assert json.loads(prediction.output_json) == {"echo": {"n": 1.1, "big": 12345678901234567890}}
    assert memory.audit.records[0].input_json == raw.decode()  # the digits as written: 1.10


# -- no answer without its record ------------------------------------------------------------------------


@pytest.mark.parametrize("payload, version", [(QUOTE, "1.0.0"), ({"vehicle": 1}, "1.0.0"),
                                              ({"vehicle": "tractor", "driver_age": 40}, "1.0.0")],
                         ids=["ok", "invalid", "rejected"])
def test_an_outcome_that_cannot_be_recorded_is_not_answered(memory: MemoryPlatform, payload: Any,
                                                            version: str) -> None:
    memory.add("auto_pricing", {"1.0.0": Pricer()}, schemas={"1.0.0": QUOTE_SCHEMA})
    down = MemoryAuditLog(reachable=False)
    with pytest.raises(AuditUnavailable) as caught:
        predict(memory.dataplane(audit=down), payload=payload, version=version)
    problem = caught.value.to_problem()
    assert (problem["status"], problem["type"]) == (503, "urn:modelplatform:problem:audit-unavailable")
    assert "inference_id" not in problem
    assert down.refused == 1 and down.rows() == []


def test_during_an_outage_with_a_spool_the_answer_is_given_once_the_record_is_spooled(memory: MemoryPlatform) -> None:
    memory.add("echo", {"1.0.0": Echo()})
    outage = MemoryAuditLog(reachable=False, spool=True)
    prediction = predict(memory.dataplane(audit=outage), "echo", {"a": 1})
    assert [r.id for r in outage.spooled] == [prediction.inference_id]


# -- the bound on invalid inputs ----------------------------------------------------------------------------


def test_an_invalid_input_over_the_limit_is_recorded_as_a_marked_stand_in(pricing: DataPlane,
                                                                          memory: MemoryPlatform) -> None:
    plane = memory.dataplane(max_invalid_input_bytes=4096)
    raw = json.dumps({"vehicle": "é" + "v" * 9000, "driver_age": "old"}).encode()
    with pytest.raises(InvalidInput) as caught:
        predict(plane, version="1.0.0", payload=json.loads(raw), raw_input=raw)

    (row,) = memory.rows()
    stand_in = row["input"][CLIPPED_INPUT_KEY]
    assert stand_in["bytes"] == len(raw)
    assert stand_in["sha256"] == hashlib.sha256(raw).hexdigest()
    assert raw.decode().startswith(stand_in["prefix"]) and len(stand_in["prefix"].encode()) <= PREFIX_BYTES
    assert stand_in["limit"] == 4096
    assert row["error"]["input_clipped"] is True
    assert row["error"]["errors"] == caught.value.extra["errors"] == [
        {"path": "/driver_age", "message": '"old" is not of type "integer"'}]


def test_an_invalid_input_within_the_limit_is_recorded_in_full(memory: MemoryPlatform, pricing: DataPlane) -> None:
    body = {"vehicle": "v" * 3000, "driver_age": "old"}
    with pytest.raises(InvalidInput):
        predict(memory.dataplane(max_invalid_input_bytes=4096), payload=body)
    (row,) = memory.rows()
    assert row["input"] == body
    assert "input_clipped" not in row["error"]


def test_an_input_that_reached_the_model_is_recorded_in_full_whatever_its_size(memory: MemoryPlatform) -> None:
    memory.add("echo", {"1.0.0": Echo()})
    body = {"blob": "x" * 200_000}
    predict(memory.dataplane(max_invalid_input_bytes=100), "echo", body)
    (row,) = memory.rows()
    assert row["input"] == body


def test_the_recorded_violations_are_cut_to_the_first_hundred_plus_a_count(pricing: DataPlane,
                                                                          memory: MemoryPlatform) -> None:
    body = {"vehicle": "suv", "driver_age": 40, "extras": ["x"] * 500}
    with pytest.raises(InvalidInput) as caught:
        predict(pricing, payload=body)
    errors = caught.value.extra["errors"]
    assert len(errors) == 500  # the caller still gets every violation
    (row,) = memory.rows()
    assert row["error"] == {"errors": errors[:MAX_RECORDED_ERRORS], "errors_total": 500}
    assert row["input"] == body


# -- shadows ---------------------------------------------------------------------------------------------


@pytest.fixture
def shadowed(memory: MemoryPlatform):
    """``shadowed(model, **entry)``: ``quote`` 1.0.0 (echo) live, ``model`` as shadow 2.0.0; its data plane."""
    def build(shadow_model: Any, **entry: Any) -> DataPlane:
        memory.add("quote", {"1.0.0": Echo(), "2.0.0": shadow_model}, default="1.0.0", shadow=["2.0.0"], **entry)
        return memory.dataplane()
    return build


def test_a_shadow_row_carries_the_primarys_request_and_never_alters_the_answer(shadowed,
                                                                              memory: MemoryPlatform) -> None:
    plane = shadowed(Returns({"shadow": "different answer"}))
    prediction = predict(plane, "quote", {"customer_id": "c1"}, request_id="req-shadow-1")

    assert (prediction.version, prediction.routed_by, prediction.experiment) == ("1.0.0", "default", None)
    assert json.loads(prediction.output_json) == {"echo": {"customer_id": "c1"}}
    (shadow,) = memory.wait_rows(1, routed_by="shadow")
    assert (shadow["version"], shadow["status"], shadow["output"]) == ("2.0.0", "ok", {"shadow": "different answer"})
    assert (shadow["request_id"], shadow["input"], shadow["experiment"]) == (
        "req-shadow-1", {"customer_id": "c1"}, None)
    assert shadow["id"] != prediction.inference_id
    (primary,) = memory.rows(routed_by="default")
    assert (primary["id"], primary["request_id"]) == (prediction.inference_id, "req-shadow-1")


def test_a_failing_shadow_is_recorded_and_leaves_the_primary_untouched(shadowed, memory: MemoryPlatform) -> None:
    plane = shadowed(Raises())
    prediction = predict(plane, "quote", {"a": 1}, request_id="req-raises")
    assert json.loads(prediction.output_json) == {"echo": {"a": 1}}
    (shadow,) = memory.wait_rows(1, routed_by="shadow")
    assert (shadow["status"], shadow["request_id"], shadow["error"]["type"]) == ("error", "req-raises", "RuntimeError")
    assert (plane.shadows.completed, plane.shadows.failed) == (0, 1)


def test_a_shadow_that_has_not_answered_does_not_hold_the_primary(shadowed, memory: MemoryPlatform) -> None:
    shadow_model = Blocks(answer={"late": True})
    plane = shadowed(shadow_model)
    prediction = predict(plane, "quote", {"a": 1})  # returns while the shadow is still blocked
    assert json.loads(prediction.output_json) == {"echo": {"a": 1}}
    assert memory.rows(routed_by="shadow") == []
    time.sleep(0.1)
    shadow_model.release.set()
    (shadow,) = memory.wait_rows(1, routed_by="shadow")
    assert shadow["output"] == {"late": True}
    assert shadow["latency_ms"] >= 100  # its own time, not the primary's


def test_shadows_get_calls_whose_primary_failed_validation(shadowed, memory: MemoryPlatform) -> None:
    # the live version requires "vehicle", the shadow does not: the shadow shows what it would answer
    plane = shadowed(Returns({"ok": True}), schemas={"1.0.0": {"type": "object", "required": ["vehicle"]},
                                                     "2.0.0": {"type": "object"}})
    with pytest.raises(InvalidInput):
        predict(plane, "quote", {"customer_id": "c1"})
    (shadow,) = memory.wait_rows(1, routed_by="shadow")
    assert (shadow["status"], shadow["output"]) == ("ok", {"ok": True})
    (primary,) = memory.rows(routed_by="default")
    assert primary["status"] == "invalid_input" and primary["request_id"] == shadow["request_id"]


def test_pinned_calls_and_unrecorded_calls_are_not_shadowed(shadowed, memory: MemoryPlatform) -> None:
    plane = shadowed(Returns(1))
    predict(plane, "quote", {}, version="1.0.0", request_id="pinned")
    memory.audit.go_down()
    with pytest.raises(AuditUnavailable):
        predict(plane, "quote", {}, request_id="unrecorded")
    memory.audit.reachable = True
    predict(plane, "quote", {}, request_id="unpinned")
    # one worker, FIFO: had either earlier call been copied, its copy would be recorded first
    assert [r["request_id"] for r in memory.wait_rows(1, routed_by="shadow")] == ["unpinned"]


def test_under_an_ab_test_shadow_rows_carry_the_experiment_and_skip_the_arm_that_served(
        shadowed, memory: MemoryPlatform) -> None:
    plane = shadowed(Returns("v2"), ab_test={"name": "exp", "weights": WEIGHTS, "sticky_key": "/customer_id"})
    to_v1 = next(f"k{i}" for i in range(100) if assign("exp", WEIGHTS, f"k{i}") == "1.0.0")
    to_v2 = next(f"k{i}" for i in range(100) if assign("exp", WEIGHTS, f"k{i}") == "2.0.0")

    assert predict(plane, "quote", {"customer_id": to_v2}, request_id="primary-is-shadow").version == "2.0.0"
    assert predict(plane, "quote", {"customer_id": to_v1}, request_id="primary-is-v1").version == "1.0.0"

    # one worker, FIFO: a copy of the first call would be recorded first
    (shadow,) = memory.wait_rows(1, routed_by="shadow")
    assert (shadow["request_id"], shadow["experiment"], shadow["routing_key"]) == ("primary-is-v1", "exp", to_v1)


def test_copies_are_dropped_never_waited_for_when_the_queue_is_full(memory: MemoryPlatform, caplog) -> None:
    shadow_model = Blocks(answer=1)
    memory.add("quote", {"1.0.0": Echo(), "2.0.0": shadow_model}, default="1.0.0", shadow=["2.0.0"])
    plane = memory.dataplane(shadow_queue=1)
    calls = 6
    with caplog.at_level("WARNING", logger="modelplatform.shadow"):
        for i in range(calls):
            predict(plane, "quote", {"n": i})
    assert memory.rows(routed_by="shadow") == []  # every primary answered while the first copy was still blocked
    # one copy running (blocked), at most one waiting: the others had no room
    dropped = plane.shadows.dropped
    assert dropped >= calls - 2
    assert any("shadow call dropped, queue full" in r.getMessage() for r in caplog.records)
    shadow_model.release.set()
    assert plane.shadows.close(timeout=10) == 0  # drains what was queued
    assert len(memory.rows(routed_by="shadow")) == calls - dropped
    assert len(memory.rows(routed_by="default")) == calls


def test_copies_over_the_byte_budget_are_dropped(memory: MemoryPlatform) -> None:
    memory.add("quote", {"1.0.0": Echo(), "2.0.0": Returns(1)}, default="1.0.0", shadow=["2.0.0"])
    plane = memory.dataplane(shadow_bytes=64)
    predict(plane, "quote", {"blob": "x" * 100})
    predict(plane, "quote", {"small": 1})
    plane.shadows.close(timeout=10)
    assert plane.shadows.dropped == 1
    assert [r["input"] for r in memory.rows(routed_by="shadow")] == [{"small": 1}]
