"""replay_runs and replay_results: each `modelplatform replay` run and its per-row outcome

One ``replay_runs`` row per run (what was replayed, against what, and the whole report in ``summary``);
one ``replay_results`` row per replayed inference. ``replay_results`` carries the recorded inference's
``inference_id``, ``inference_created_at`` and ``request_id``, so analysts join it with ``inferences``
(``on i.id = r.inference_id and i.created_at = r.inference_created_at``: the second condition lets a
partitioned ``inferences`` prune to one partition) and with their own outcome tables by ``request_id``.
There is deliberately no foreign key to ``inferences``: retention drops old partitions, and a replay
result outlives the row it replayed.

Revision ID: 0006
Revises: 0003 (re-chained after 0004/0005 at merge)
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_runs",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("candidate_version", sa.Text, nullable=False),
        sa.Column("candidate_sha256", sa.Text, nullable=False),
        sa.Column("baseline", sa.Text, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("until", sa.DateTime(timezone=True)),
        sa.Column("sample", sa.Float),
        sa.Column("row_limit", sa.BigInteger),
        sa.Column("tolerance", sa.Text),
        sa.Column("fail_on", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="running"),
        sa.Column("rows_replayed", sa.BigInteger),
        sa.Column("rows_changed", sa.BigInteger),
        sa.Column("exit_status", sa.SmallInteger),
        sa.Column("summary", JSONB),
        sa.CheckConstraint("state in ('running', 'done', 'aborted', 'failed')", name="replay_runs_state"),
    )
    op.create_index("replay_runs_model_started_at", "replay_runs", ["model", "started_at"])
    op.create_table(
        "replay_results",
        sa.Column("run_id", UUID(as_uuid=False), sa.ForeignKey("replay_runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("inference_id", UUID(as_uuid=False), nullable=False),
        sa.Column("inference_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("baseline_version", sa.Text, nullable=False),
        sa.Column("baseline_status", sa.Text, nullable=False),
        sa.Column("candidate_status", sa.Text, nullable=False),
        sa.Column("changed", sa.Boolean, nullable=False),
        sa.Column("candidate_output", JSONB),
        sa.Column("candidate_error", JSONB),
        sa.Column("diffs", JSONB),
        sa.Column("max_abs_diff", sa.Float),
        sa.Column("max_rel_diff", sa.Float),
        sa.PrimaryKeyConstraint("run_id", "inference_id", name="replay_results_pkey"),
        sa.CheckConstraint("candidate_status in ('ok', 'invalid_input', 'rejected', 'error')",
                           name="replay_results_candidate_status"),
    )
    # joins back to inferences and to the analysts' outcome tables
    op.create_index("replay_results_inference_id", "replay_results", ["inference_id"])
    op.create_index("replay_results_request_id", "replay_results", ["request_id"])


def downgrade() -> None:
    op.drop_table("replay_results")
    op.drop_table("replay_runs")
