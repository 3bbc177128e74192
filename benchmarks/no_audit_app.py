"""Diagnostic only, never a deployment: the platform with an audit log that stores nothing, to split the
cost of a request between serving (routing, validation, model, encoding) and durable audit."""
from __future__ import annotations

from flask import Flask

from modelplatform.app import create_app as platform_app
from modelplatform.audit import InferenceRecord
from modelplatform.audit.base import AuditHealth


class DiscardingAuditLog:
    def record(self, record: InferenceRecord) -> None:
        record.as_params()

    def ping(self) -> bool:
        return True

    def health(self) -> AuditHealth:
        return AuditHealth(database=True, spool_depth=0, can_record=True)

    def close(self) -> None:
        pass


def create_app() -> Flask:
    return platform_app(audit=DiscardingAuditLog())
