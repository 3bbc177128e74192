"""Partition upkeep of ``inferences`` (``modelplatform db maintain``): partitions ahead, the default
partition emptied, retention by dropping whole partitions.

The table is range-partitioned on ``created_at``, one partition per UTC day (``inferences_pYYYYMMDD``;
why daily: ``docs/performance.md``), plus ``inferences_default`` for any row whose day has no
partition and, after migration 0004 on a table that had rows, ``inferences_legacy`` (the old table,
``[MINVALUE, day after its newest row)``).

Safe to run from cron on every host at once: each change is its own short transaction that first takes
one transaction-level advisory lock (so it also works through PgBouncer in transaction mode) and then
re-reads the catalog, so a second runner waits, finds the work done and does nothing. Every transaction
sets ``lock_timeout``: a DDL statement waiting behind an analyst's long query would otherwise queue the
audit writer's inserts behind itself; it gives up instead (:class:`MaintenanceBusy`) and the next run
retries.

Rows in the default partition (written while their day had no partition, e.g. a spool replayed days
later) would make ``CREATE TABLE … PARTITION OF`` fail; a partition is therefore created as a plain
table, the default's rows of its range are moved into it, and it is attached, all in one transaction
holding the default partition's lock, so no row is lost, duplicated or left in the default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from modelplatform.audit.tables import inferences

PARENT = inferences.name
DEFAULT_PARTITION = f"{PARENT}_default"
DAY = timedelta(days=1)
DEFAULT_DAYS_AHEAD = 7
DEFAULT_LOCK_TIMEOUT = "3s"
# pg_advisory_xact_lock key shared by every runner of `db maintain` (any constant; this spells "mplat-pa")
LOCK_KEY = 0x6D706C61742D7061

_BOUND = re.compile(r"FOR VALUES FROM \((?P<start>[^)]*)\) TO \((?P<end>[^)]*)\)")
_COLUMNS = ", ".join(c.name for c in inferences.columns)


class MaintenanceBusy(RuntimeError):
    """A lock could not be taken within ``lock_timeout`` (e.g. a long query holds the table); retry later."""


@dataclass(frozen=True)
class Partition:
    """One range partition; ``start`` None is MINVALUE, ``end`` None is MAXVALUE."""

    name: str
    start: datetime | None
    end: datetime | None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return (self.start is None or self.start < end) and (self.end is None or start < self.end)

    def describe(self) -> str:
        start = "MINVALUE" if self.start is None else self.start.isoformat()
        end = "MAXVALUE" if self.end is None else self.end.isoformat()
        return f"{self.name} [{start}, {end})"


@dataclass(frozen=True)
class DroppedPartition:
    partition: Partition
    rows_estimate: int  # pg_class.reltuples (counting would scan the whole partition)
    total_bytes: int


@dataclass
class MaintenanceReport:
    created: list[Partition] = field(default_factory=list)
    moved_rows: dict[str, int] = field(default_factory=dict)  # partition name -> rows moved from the default
    dropped: list[DroppedPartition] = field(default_factory=list)
    covered_until: datetime | None = None  # end of the last contiguous partition from today on
    default_rows: int = 0


def day_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y%m%d}"


def _bound(text: str) -> datetime | None:
    text = text.strip()
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(text.strip("'"))


def list_partitions(conn: sa.Connection) -> list[Partition]:
    """The range partitions of ``inferences`` (not the default one), ordered by start. The caller's
    transaction must have ``timezone`` set to UTC (bounds are printed in the session's zone)."""
    rows = conn.execute(sa.text(
        "select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i "
        "join pg_class c on c.oid = i.inhrelid where i.inhparent = cast(:parent as regclass)"),
        {"parent": PARENT}).all()
    found = []
    for name, bound in rows:
        match = _BOUND.match(bound or "")
        if match:
            found.append(Partition(name, _bound(match["start"]), _bound(match["end"])))
    return sorted(found, key=lambda p: (p.start is not None, p.start or datetime.min.replace(tzinfo=UTC)))


def _begin(conn: sa.Connection, lock_timeout: str) -> None:
    conn.execute(sa.text("select set_config('timezone', 'UTC', true), set_config('lock_timeout', :t, true)"),
                 {"t": lock_timeout})
    conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def _busy(exc: OperationalError) -> bool:
    return getattr(exc.orig, "pgcode", None) == "55P03"  # lock_not_available


def _days_needed(conn: sa.Connection, today: datetime, days_ahead: int) -> list[datetime]:
    days = {today + DAY * i for i in range(days_ahead + 1)}
    stray = conn.execute(sa.text(
        f"select distinct date_trunc('day', created_at) from {DEFAULT_PARTITION}")).scalars().all()
    days.update(day_start(d) for d in stray)
    return sorted(days)


def _create(conn: sa.Connection, start: datetime) -> int | None:
    """Create the partition for the day at ``start`` (moving the default's rows of that day into it)
    unless a partition already covers any of it; return the rows moved, or None when nothing was done."""
    end = start + DAY
    if any(p.overlaps(start, end) for p in list_partitions(conn)):
        return None
    name = partition_name(start)
    params = {"start": start, "end": end}
    # held to the end: no row may enter the default's range between the move and the attach
    conn.execute(sa.text(f"lock table {DEFAULT_PARTITION} in access exclusive mode"))
    conn.execute(sa.text(f"create table {name} (like {PARENT} including defaults including constraints)"))
    moved = conn.execute(sa.text(
        f"with moved as (delete from {DEFAULT_PARTITION} where created_at >= :start and created_at < :end "
        f"returning {_COLUMNS}) insert into {name} ({_COLUMNS}) select {_COLUMNS} from moved"), params).rowcount
    # ATTACH (unlike CREATE … PARTITION OF) takes only SHARE UPDATE EXCLUSIVE on the parent: inserts go on
    conn.execute(sa.text(f"alter table {PARENT} attach partition {name} "
                         f"for values from ('{start.isoformat()}') to ('{end.isoformat()}')"))
    return max(moved, 0)


def _drop(conn: sa.Connection, partition: Partition) -> DroppedPartition:
    rows, size = conn.execute(sa.text(
        "select greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) from pg_class c "
        "where c.oid = cast(:name as regclass)"), {"name": partition.name}).one()
    conn.execute(sa.text(f"alter table {PARENT} detach partition {partition.name}"))
    conn.execute(sa.text(f"drop table {partition.name}"))
    return DroppedPartition(partition, int(rows), int(size))


def maintain(engine: sa.Engine, *, keep: timedelta | None = None, days_ahead: int = DEFAULT_DAYS_AHEAD,
             now: datetime | None = None, lock_timeout: str = DEFAULT_LOCK_TIMEOUT) -> MaintenanceReport:
    """Create the daily partitions from today through ``days_ahead`` days ahead and for every day with
    rows in the default partition; then, when ``keep`` is given, drop every partition that lies entirely
    before ``now - keep`` (never the default partition). One short transaction per change.

    Raises :class:`MaintenanceBusy` when a lock was not granted within ``lock_timeout`` (what was done
    before stays done), and ``SQLAlchemyError`` when the database cannot be used.
    """
    now = now if now is not None else datetime.now(UTC)
    today = day_start(now)
    report = MaintenanceReport()
    try:
        with engine.begin() as conn:
            _begin(conn, lock_timeout)
            conn.execute(sa.text(f"create table if not exists {DEFAULT_PARTITION} partition of {PARENT} default"))
            days = _days_needed(conn, today, days_ahead)
        for start in days:
            with engine.begin() as conn:
                _begin(conn, lock_timeout)
                moved = _create(conn, start)
            if moved is not None:
                report.created.append(Partition(partition_name(start), start, start + DAY))
                if moved:
                    report.moved_rows[partition_name(start)] = moved
        if keep is not None:
            cutoff = now - keep
            with engine.begin() as conn:
                _begin(conn, lock_timeout)
                expired = [p for p in list_partitions(conn) if p.end is not None and p.end <= cutoff]
            for partition in expired:
                with engine.begin() as conn:
                    _begin(conn, lock_timeout)
                    if partition in list_partitions(conn):  # another runner may have dropped it
                        report.dropped.append(_drop(conn, partition))
    except OperationalError as exc:
        if _busy(exc):
            raise MaintenanceBusy(f"a lock on {PARENT} was not granted within {lock_timeout} (a long query or "
                                  "another DDL holds it); nothing half-done, run again later") from None
        raise
    with engine.begin() as conn:
        conn.execute(sa.text("select set_config('timezone', 'UTC', true)"))
        report.covered_until = covered_until(list_partitions(conn), today)
        report.default_rows = conn.execute(sa.text(f"select count(*) from {DEFAULT_PARTITION}")).scalar_one()
    return report


def covered_until(partitions: list[Partition], today: datetime) -> datetime | None:
    """End of the contiguous run of partitions that covers ``today`` (None when today has none): inserts
    up to then land in a real partition, not the default."""
    until: datetime | None = None
    for partition in partitions:
        if partition.overlaps(today, today + DAY) and until is None:
            until = partition.end
        elif until is not None and partition.start == until:
            until = partition.end
    return until
