"""A/B readout tests: an ``inferences`` table seeded in SQL, and a config holding the tests' weights."""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from ab_seed_support import RECENT, SEED
from support import model_entry

Seed = Callable[..., None]


@pytest.fixture
def seed(clean_db: sa.Engine) -> Seed:
    def insert(experiment: str | None, version: str, n: int, *, model: str = "rollout", routed_by: str = "ab_test",
               t0: datetime = RECENT) -> None:
        with clean_db.begin() as conn:
            conn.execute(SEED, {"experiment": experiment, "version": version, "n": n, "model": model,
                                 "routed_by": routed_by, "t0": t0})
    return insert


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """``rollout`` runs test ``clean`` (50/50), ``other`` runs ``skewed`` (50/50) and ``three`` (0 weight)."""
    sha = "0" * 64
    ab = lambda name, weights: {"name": name, "weights": weights, "sticky_key": "/customer_id"}  # noqa: E731
    config = {
        "rollout": model_entry({"1.0.0": sha, "2.0.0": sha, "3.0.0": sha}, default="1.0.0", shadow=["3.0.0"],
                               ab_test=ab("clean", {"1.0.0": 50, "2.0.0": 50})),
        "other": model_entry({"1.0.0": sha, "2.0.0": sha}, ab_test=ab("skewed", {"1.0.0": 50, "2.0.0": 50})),
        "third": model_entry({"1.0.0": sha, "2.0.0": sha}, ab_test=ab("zeroed", {"1.0.0": 100, "2.0.0": 0})),
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(config))
    return path
