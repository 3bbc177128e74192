"""Build a candidate ``auto_pricing`` 2.2.0, as a data scientist would before replaying it.

    .venv/bin/python examples/build_candidate.py [--out build/auto_pricing-2.2.0.dill]

2.2.0 is the published 2.1.1 refitted: a base premium of 318 instead of 315 and a young-driver load
of 1.45 instead of 1.40, so every premium moves by about 1% and young drivers' by about 4.6%. It starts
from the committed 2.1.1 artifact (verified against ``config/models.json`` first: loading runs code),
whose classes dill stored by value, so the new file loads on a server that has nothing but
``modelplatform``. Then ``modelplatform publish`` it and ``modelplatform replay`` it (docs/models.md,
"Before you ship: replay").
"""
from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import dill

from modelplatform.artifacts import verify
from modelplatform.authoring import dump_by_value
from modelplatform.config import load_config

ROOT = Path(__file__).resolve().parent.parent
MODEL, BASE_VERSION = "auto_pricing", "2.1.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/auto_pricing-2.2.0.dill"))
    args = parser.parse_args()
    data = (ROOT / "examples" / "models" / MODEL / f"{BASE_VERSION}.dill").read_bytes()
    verify(MODEL, BASE_VERSION, data, load_config(ROOT / "config" / "models.json").models[MODEL].sha256[BASE_VERSION])
    candidate = dill.loads(data)
    candidate.base = Decimal("318.00")
    candidate.young_driver_load = Decimal("1.45")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sha256 = dump_by_value(candidate, args.out)
    print(f"wrote {args.out} (sha256 {sha256})")


if __name__ == "__main__":
    main()
