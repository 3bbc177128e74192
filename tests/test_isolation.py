"""Calling model code (isolation.py): the host's own control flow is told apart from the model's, and a caller
without gevent still refuses a late answer. What the data plane records for each outcome: test_dataplane.py."""
from __future__ import annotations

import time

import pytest

from modelplatform.isolation import DeadlineExpired, HostExit, ModelCaller, is_host_control_flow
from support.models import Sleeps


def test_host_control_flow_is_recognised() -> None:
    import gevent

    assert is_host_control_flow(HostExit(1)) and is_host_control_flow(gevent.GreenletExit())
    assert is_host_control_flow(gevent.Timeout(1))
    assert not is_host_control_flow(SystemExit(3)) and not is_host_control_flow(KeyboardInterrupt())


def test_a_caller_without_gevent_checks_the_deadline_after_the_call() -> None:
    caller = ModelCaller(0.05)
    assert caller(Sleeps(0.0), {}) == {"slept": 0.0}
    started = time.monotonic()
    with pytest.raises(DeadlineExpired):
        caller(Sleeps(0.1), {})
    assert time.monotonic() - started >= 0.1


def test_a_deadline_must_be_positive() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="positive"):
            ModelCaller(bad)
