"""inferences: a partial index that answers the A/B readout from the index alone

``inferences_ab_arm_stats`` on ``(experiment, model, version, routed_by, created_at) include (status,
latency_ms) where experiment is not null``. Its keys are the readout's groups in the order
``ab_arm_stats_since`` (0002) groups them, so ``modelplatform ab-report`` becomes an index-only scan of
the window's A/B rows, already in group order: no heap read (~100 B of index per A/B row instead of ~900 B
of table) and no sort of the window's rows before the aggregate; only each arm's latencies are sorted,
for ``percentile_cont``, so every figure stays exact. ``created_at`` last keeps inserts at the right
edge of each arm's key range (a few hot pages, as for the time-ordered primary key), and rows of no
experiment are not indexed at all. Designs measured against it (a ``(experiment, created_at)`` index,
no index with parallel workers): docs/performance.md.

Created on the partitioned parent, so every partition has it — default and legacy included — and every
partition created later (``db maintain``: ``CREATE … PARTITION OF`` and ``ATTACH PARTITION`` both build
it). ``CREATE INDEX`` on a partitioned table blocks inserts while it builds (it cannot run
``CONCURRENTLY``); on a large table, build each partition's index beforehand without blocking writes
and this migration only attaches them (``CREATE INDEX`` on the parent adopts an equivalent index it
finds on a partition). From psql, before ``db upgrade``::

    select format('create index concurrently if not exists %I on %I '
                  '(experiment, model, version, routed_by, created_at) include (status, latency_ms) '
                  'where experiment is not null', c.relname || '_ab_arm_stats', c.relname)
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'inferences'::regclass \\gexec

Downgrade drops the index (with every partition's).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEX = "inferences_ab_arm_stats"
DEFINITION = ("(experiment, model, version, routed_by, created_at) include (status, latency_ms) "
              "where experiment is not null")


def upgrade() -> None:
    op.execute(f"create index {INDEX} on inferences {DEFINITION}")


def downgrade() -> None:
    op.execute(f"drop index {INDEX}")
