"""Audit adapters: where every inference is durably recorded."""
from modelplatform.audit.records import InferenceRecord
from modelplatform.audit.base import AuditLog

__all__ = ["AuditLog", "InferenceRecord"]
