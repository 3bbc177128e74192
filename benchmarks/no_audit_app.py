"""Diagnostic only, never a deployment: the platform with audit logs that store nothing, to split the cost
of a request between serving (routing, validation, model, encoding), merely waiting, and durable audit."""
from __future__ import annotations

import time

from flask import Flask

from modelplatform.app import create_app as platform_app
from modelplatform.audit import InferenceRecord
from modelplatform.audit.base import AuditHealth


class DiscardingAuditLog:
    def record(self, record: InferenceRecord) -> None:
        record.as_params()

    def health(self) -> AuditHealth:
        return AuditHealth(database=True, spool_depth=0, can_record=True)

    def close(self) -> None:
        pass


def create_app() -> Flask:
    return platform_app(audit=DiscardingAuditLog())


class WaitingAuditLog(DiscardingAuditLog):
    """Blocks each request for 2 ms (about one WAL fsync on the benchmark machine) and stores nothing:
    what any design that makes a request wait for its commit costs under gthread, database aside."""

    def record(self, record: InferenceRecord) -> None:
        time.sleep(0.002)


def create_waiting_app() -> Flask:
    return platform_app(audit=WaitingAuditLog())
