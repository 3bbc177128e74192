"""inferences.api_key_id: which API key called (its id, never the key)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable and without a default: adding it is a catalog-only change, no table rewrite
    op.add_column("inferences", sa.Column("api_key_id", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("inferences", "api_key_id")
