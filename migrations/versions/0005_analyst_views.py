"""Analysts' views: live traffic without shadow rows, and each shadow answer beside the live one

``live_inferences``: the rows a caller was answered with (``routed_by`` pinned, default or ab_test),
so "premiums by version" never counts shadow answers no customer saw.

``shadow_comparisons``: one row per shadow call, with the live call of the same request (same
``request_id`` and model, recorded before the shadow and at most 10 minutes earlier; the latest such
call when a caller reuses request ids) in ``live_*`` columns, null when none is found.

Plain SQL views over ``inferences``' columns, so they hold whatever ``inferences`` is (a plain table or
the partitioned one of 0004); the lateral lookup uses the ``request_id`` index and its time bound lets
the planner skip old partitions.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# how long after the live call its shadow may run (shadow copies wait in a bounded queue)
SHADOW_LAG = "10 minutes"


def upgrade() -> None:
    op.execute("""
        create view live_inferences as
        select id, created_at, model, version, routed_by, experiment, routing_key, status, input, output, error,
               latency_ms, request_id, artifact_sha256, api_key_id
        from inferences
        where routed_by <> 'shadow'
    """)
    op.execute(f"""
        create view shadow_comparisons as
        select s.request_id,
               s.model,
               s.experiment,
               s.routing_key,
               s.input                as shadow_input,
               live.id                as live_id,
               live.created_at        as live_created_at,
               live.version           as live_version,
               live.routed_by         as live_routed_by,
               live.status            as live_status,
               live.output            as live_output,
               live.error             as live_error,
               live.latency_ms        as live_latency_ms,
               s.id                   as shadow_id,
               s.created_at           as shadow_created_at,
               s.version              as shadow_version,
               s.status               as shadow_status,
               s.output               as shadow_output,
               s.error                as shadow_error,
               s.latency_ms           as shadow_latency_ms
        from inferences s
        left join lateral (
            select p.id, p.created_at, p.version, p.routed_by, p.status, p.output, p.error, p.latency_ms
            from inferences p
            where p.request_id = s.request_id
              and p.model = s.model
              and p.routed_by <> 'shadow'
              and p.created_at <= s.created_at
              and p.created_at >= s.created_at - interval '{SHADOW_LAG}'
            order by p.created_at desc
            limit 1
        ) live on true
        where s.routed_by = 'shadow'
    """)
    op.execute("comment on view live_inferences is "
               "'inferences a caller was answered with: every row except shadow calls'")
    op.execute("comment on view shadow_comparisons is "
               f"'each shadow call beside the live call of the same request (within {SHADOW_LAG} before it)'")


def downgrade() -> None:
    op.execute("drop view shadow_comparisons")
    op.execute("drop view live_inferences")
