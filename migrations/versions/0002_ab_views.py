"""A/B readout: per experiment and version — calls, counts by status, latency p50/p95, first/last seen

``ab_arm_stats_since(since)`` aggregates the rows of every experiment from ``since`` on (a STABLE SQL
function, inlined by the planner, so the ``created_at`` index serves the window); the view
``ab_arm_stats`` is the same over all time. Arms (``routed_by = 'ab_test'``) and the experiment's shadow
calls (``routed_by = 'shadow'``) are separate rows: only arms count towards the split.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        create function ab_arm_stats_since(since timestamptz)
        returns table (
            model text, experiment text, version text, routed_by text,
            calls bigint, ok bigint, invalid_input bigint, rejected bigint, error bigint,
            latency_p50_ms double precision, latency_p95_ms double precision,
            first_seen timestamptz, last_seen timestamptz
        )
        language sql stable
        as $$
            select model, experiment, version, routed_by,
                   count(*),
                   count(*) filter (where status = 'ok'),
                   count(*) filter (where status = 'invalid_input'),
                   count(*) filter (where status = 'rejected'),
                   count(*) filter (where status = 'error'),
                   percentile_cont(0.5) within group (order by latency_ms),
                   percentile_cont(0.95) within group (order by latency_ms),
                   min(created_at), max(created_at)
            from inferences
            where experiment is not null and created_at >= since
            group by model, experiment, version, routed_by
        $$
    """)
    op.execute("""
        create view ab_arm_stats as
        select * from ab_arm_stats_since('-infinity'::timestamptz)
    """)


def downgrade() -> None:
    op.execute("drop view ab_arm_stats")
    op.execute("drop function ab_arm_stats_since(timestamptz)")
