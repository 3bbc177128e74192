"""inferences: range-partitioned on created_at (one partition per UTC day, a default partition)

The existing table is not copied: it becomes the partition ``inferences_legacy`` for
``[MINVALUE, the day after its newest row)``, so a table of any size converts in one catalog change plus
one index build (the ``(id, created_at)`` key that every partition needs; the old ``(id)`` key is
dropped). Its three analyst indexes are reused as the partitions' indexes, not rebuilt. Every row
stays exactly where it was: none lost, none duplicated. ``inferences_default`` takes any row whose day
has no partition yet; daily partitions from today on are created here for a few days and then by
``modelplatform db maintain`` (run by the Procfile ``release:`` step and from cron), which also moves
rows out of the default partition and drops partitions past retention. ``ab_arm_stats_since`` and
``ab_arm_stats`` (0002) are plain SQL over the same columns and keep working unchanged.

On a large existing table the ``(id, created_at)`` index build is the slow part, and it blocks writes
while it runs. Build it beforehand without blocking writes and this migration reuses it:
``create unique index concurrently inferences_legacy_id_created_at on inferences (id, created_at)``.

Downgrade copies every row back into one unpartitioned table keyed by ``id`` (a copy: partitions
cannot be merged in place), in one transaction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DAYS_AHEAD = 3  # `db maintain` (release step, cron) keeps more ahead; this is only a safe start

COLUMNS = """
    id uuid not null,
    created_at timestamptz not null default now(),
    model text not null,
    version text not null,
    routed_by text not null,
    experiment text,
    routing_key text,
    status text not null,
    input jsonb not null,
    output jsonb,
    error jsonb,
    latency_ms double precision not null,
    request_id text not null,
    artifact_sha256 text not null,
    api_key_id text,
    constraint inferences_routed_by check (routed_by in ('pinned', 'default', 'ab_test', 'shadow')),
    constraint inferences_status check (status in ('ok', 'invalid_input', 'rejected', 'error'))
"""

ANALYST_INDEXES = {  # name: columns (what analysts filter on: a time window, a version over time, a request)
    "inferences_created_at": "created_at",
    "inferences_model_version_created_at": "model, version, created_at",
    "inferences_request_id": "request_id",
}


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("set local timezone = 'UTC'")
    # writers wait for the conversion instead of writing into a table that is being renamed
    op.execute("lock table inferences in exclusive mode")
    newest = bind.exec_driver_sql("select max(created_at) from inferences").scalar()

    op.execute("alter table inferences rename to inferences_legacy")
    op.execute("alter table inferences_legacy drop constraint inferences_pkey")
    for name in ANALYST_INDEXES:
        op.execute(f"alter index {name} rename to {name.replace('inferences_', 'inferences_legacy_', 1)}")

    op.execute(f"create table inferences ({COLUMNS}, primary key (id, created_at)) "
               "partition by range (created_at)")
    for name, columns in ANALYST_INDEXES.items():
        op.execute(f"create index {name} on inferences ({columns})")
    op.execute("create table inferences_default partition of inferences default")

    first_day = "date_trunc('day', now())"
    if newest is None:
        op.execute("drop table inferences_legacy")
    else:
        op.execute("create unique index if not exists inferences_legacy_id_created_at "
                   "on inferences_legacy (id, created_at)")
        # ATTACH reuses an index for the parent's primary key only when it backs a constraint
        op.execute("alter table inferences_legacy add constraint inferences_legacy_pkey "
                   "primary key using index inferences_legacy_id_created_at")
        bound = bind.exec_driver_sql(
            "select date_trunc('day', max(created_at)) + interval '1 day' from inferences_legacy").scalar()
        # a validated CHECK that implies the partition bound spares ATTACH its own scan of the table
        op.execute(f"alter table inferences_legacy add constraint inferences_legacy_bound "
                   f"check (created_at < '{bound.isoformat()}')")
        op.execute(f"alter table inferences attach partition inferences_legacy "
                   f"for values from (minvalue) to ('{bound.isoformat()}')")
        op.execute("alter table inferences_legacy drop constraint inferences_legacy_bound")
        first_day = f"greatest(date_trunc('day', now()), '{bound.isoformat()}'::timestamptz)"

    days = bind.exec_driver_sql(
        f"select day from generate_series({first_day}, date_trunc('day', now()) + interval '{DAYS_AHEAD} days', "
        "interval '1 day') as day").scalars().all()
    for day in days:
        op.execute(f"create table inferences_p{day:%Y%m%d} partition of inferences "
                   f"for values from ('{day.isoformat()}') to ('{day.isoformat()}'::timestamptz + interval '1 day')")


def downgrade() -> None:
    op.execute("lock table inferences in exclusive mode")
    op.execute(f"create table inferences_unpartitioned ({COLUMNS}, constraint inferences_unpartitioned_pkey "
               "primary key (id))")
    # every row of every partition, default and legacy included; a repeated id fails the downgrade loudly
    op.execute("insert into inferences_unpartitioned select id, created_at, model, version, routed_by, "
               "experiment, routing_key, status, input, output, error, latency_ms, request_id, "
               "artifact_sha256, api_key_id from inferences")
    op.execute("drop table inferences")  # drops every partition with it
    op.execute("alter table inferences_unpartitioned rename to inferences")
    op.execute("alter index inferences_unpartitioned_pkey rename to inferences_pkey")
    for name, columns in ANALYST_INDEXES.items():
        op.execute(f"create index {name} on inferences ({columns})")
