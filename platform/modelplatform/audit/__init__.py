"""Audit adapters: where every inference is durably recorded."""
from modelplatform.audit.base import AuditLog
from modelplatform.audit.records import InferenceRecord

__all__ = ["AuditLog", "InferenceRecord"]
