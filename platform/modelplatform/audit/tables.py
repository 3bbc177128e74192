"""SQLAlchemy Core definition of the audit tables (the schema itself changes only through Alembic).

``inferences`` is range-partitioned on ``created_at`` (one partition per UTC day, created ahead by
``modelplatform db maintain``, plus a default partition; migration 0004). A unique constraint on a
partitioned table must contain the partition key, so the primary key is ``(id, created_at)``: the
writer's ``ON CONFLICT`` target (:mod:`modelplatform.audit.rows`) is derived from it, and a replayed
record carries the ``created_at`` it was first written with, so a duplicate is still caught.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

inferences = sa.Table(
    "inferences",
    metadata,
    sa.Column("id", UUID(as_uuid=False), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), primary_key=True, server_default=sa.func.now()),
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
    sa.Column("api_key_id", sa.Text),
    sa.CheckConstraint("routed_by in ('pinned', 'default', 'ab_test', 'shadow')", name="inferences_routed_by"),
    sa.CheckConstraint("status in ('ok', 'invalid_input', 'rejected', 'error')", name="inferences_status"),
    sa.Index("inferences_created_at", "created_at"),
    sa.Index("inferences_model_version_created_at", "model", "version", "created_at"),
    sa.Index("inferences_request_id", "request_id"),
    postgresql_partition_by="RANGE (created_at)",
)
