"""Inference ids are UUIDv7 (RFC 9562), time-ordered, and carry exactly their row's created_at millisecond."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from modelplatform.audit.ids import new_inference_id, uuid7, uuid7_time


def test_ids_are_version_7_rfc_variant_and_unique() -> None:
    ids = [uuid.UUID(new_inference_id()[0]) for _ in range(20000)]
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)


def test_the_ids_timestamp_is_created_at_truncated_to_the_millisecond() -> None:
    for _ in range(1000):
        inference_id, created_at = new_inference_id()
        assert created_at.tzinfo is not None
        assert uuid7_time(inference_id) == created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)


def test_ids_sort_by_time_across_milliseconds() -> None:
    start = 1_900_000_000_000
    ids = [uuid7(start + ms) for ms in range(0, 5000, 7)]
    assert sorted(ids) == ids and sorted(str(i) for i in ids) == [str(i) for i in ids]
    assert uuid7_time(ids[0]) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=start)


def test_a_v4_uuid_has_no_time() -> None:
    with pytest.raises(ValueError, match="version 4"):
        uuid7_time(uuid.uuid4())
