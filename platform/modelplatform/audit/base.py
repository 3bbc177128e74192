"""The interface between the data plane and whatever stores inference records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modelplatform.audit.records import InferenceRecord


@dataclass(frozen=True)
class AuditHealth:
    """What ``/readyz`` reports about the audit trail.

    ``database``: Postgres answers now. ``spool_depth``: records held in the local outage spool, not yet
    replayed. ``can_record``: a record handed over now would be durably stored (in Postgres or the spool).
    """

    database: bool
    spool_depth: int
    can_record: bool

    @property
    def degraded(self) -> bool:
        return not self.database or self.spool_depth > 0


class AuditLog(Protocol):
    def record(self, record: InferenceRecord) -> None:
        """Return only once ``record`` is durably stored.

        Raises :class:`~modelplatform.errors.AuditUnavailable` when it cannot be; the caller must
        then not answer as if the inference had happened.
        """

    def health(self) -> AuditHealth:
        """Database reachability, spool depth and whether records can be taken (used by ``/readyz``)."""

    def close(self) -> None:
        """Write what is queued and release connections; called when the app closes (at worker exit)."""


class AuditMeter(Protocol):
    """What the audit writer reports as it goes, for ``/metrics`` (:class:`~modelplatform.metrics.Metrics`)."""

    def batch_committed(self, rows: int, rejected: int) -> None:
        """A batch of ``rows`` was sent; ``rejected`` of them were refused by the database (data errors)."""

    def spool_changed(self, depth: int, *, spooled: int = 0, replayed: int = 0, dead_lettered: int = 0) -> None:
        """The outage spool now holds ``depth`` records; so many were just appended, replayed or dead-lettered."""


class NoMeter:
    """An :class:`AuditMeter` that reports nothing (an audit log built outside an app, as in the tests)."""

    def batch_committed(self, rows: int, rejected: int) -> None:
        pass

    def spool_changed(self, depth: int, *, spooled: int = 0, replayed: int = 0, dead_lettered: int = 0) -> None:
        pass
