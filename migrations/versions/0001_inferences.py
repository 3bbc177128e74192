"""inferences: one row per request that reached a model version

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inferences",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("routed_by", sa.Text, nullable=False),
        sa.Column("experiment", sa.Text),
        sa.Column("routing_key", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("input", JSONB, nullable=False),
        sa.Column("output", JSONB),
        sa.Column("error", JSONB),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("artifact_sha256", sa.Text, nullable=False),
        sa.CheckConstraint("routed_by in ('pinned', 'default', 'ab_test', 'shadow')", name="inferences_routed_by"),
        sa.CheckConstraint("status in ('ok', 'invalid_input', 'rejected', 'error')", name="inferences_status"),
    )
    # what analysts filter on: a time window, one model version over time, one caller's request
    op.create_index("inferences_created_at", "inferences", ["created_at"])
    op.create_index("inferences_model_version_created_at", "inferences", ["model", "version", "created_at"])
    op.create_index("inferences_request_id", "inferences", ["request_id"])


def downgrade() -> None:
    op.drop_table("inferences")
