"""SQLAlchemy Core definition of the replay tables (migration 0006 creates them; only Alembic changes them)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

replay_runs = sa.Table(
    "replay_runs",
    metadata,
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
)

replay_results = sa.Table(
    "replay_results",
    metadata,
    sa.Column("run_id", UUID(as_uuid=False), nullable=False),
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
)

#: the column order of the COPY that writes ``replay_results``
RESULT_COLUMNS = tuple(c.name for c in replay_results.columns)
