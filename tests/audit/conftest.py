"""Audit test fixtures (helpers live in ``audit_support``)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelplatform.audit.group_commit import GroupCommitAuditLog


@pytest.fixture
def audit_logs() -> Iterator[Callable[..., GroupCommitAuditLog]]:
    """Build writers that are closed (queue flushed, thread stopped) at the end of the test."""
    made: list[GroupCommitAuditLog] = []

    def build(url: str, **kwargs: Any) -> GroupCommitAuditLog:
        kwargs.setdefault("wait_timeout", 10.0)
        log = GroupCommitAuditLog(url, **kwargs)
        made.append(log)
        return log

    yield build
    for log in made:
        log.close()
