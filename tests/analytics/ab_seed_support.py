"""Seeding ``inferences`` for the readout tests, in SQL, with statistics known in closed form."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

NOW = datetime.now(UTC).replace(microsecond=0)
RECENT = NOW - timedelta(hours=1)
OLD = NOW - timedelta(days=10)

# n rows numbered i = 1..n: latency i ms, created t0 + i s; per 20 rows one error, one rejected,
# one invalid input, 17 ok — so every statistic of the seed is known in closed form
SEED = sa.text("""
    insert into inferences (id, created_at, model, version, routed_by, experiment, routing_key, status,
                            input, latency_ms, request_id, artifact_sha256)
    select gen_random_uuid(), :t0 + i * interval '1 second', :model, :version, :routed_by, :experiment,
           'unit-' || i, case i % 20 when 0 then 'error' when 1 then 'rejected' when 2 then 'invalid_input'
                                     else 'ok' end,
           '{}'::jsonb, i, 'req-' || i, repeat('0', 64)
    from generate_series(1, :n) as i
""")
