"""The interface between the data plane and whatever stores inference records."""
from __future__ import annotations

from typing import Protocol

from modelplatform.audit.records import InferenceRecord


class AuditLog(Protocol):
    def record(self, record: InferenceRecord) -> None:
        """Return only once ``record`` is durably stored.

        Raises :class:`~modelplatform.errors.AuditUnavailable` when it cannot be; the caller must
        then not answer as if the inference had happened.
        """

    def ping(self) -> bool:
        """True when the store can take records now (used by ``/readyz``)."""

    def close(self) -> None:
        """Release connections; called at worker exit."""
