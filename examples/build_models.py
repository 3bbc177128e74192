"""Build the example ``auto_pricing`` models, the way a data scientist would in a notebook.

Run from the project root::

    .venv/bin/python examples/build_models.py                 # build missing versions, refresh their digests
    .venv/bin/python examples/build_models.py --rebuild       # overwrite the artifacts too (new digests!)
    .venv/bin/python examples/build_models.py --reset-config  # rewrite the whole auto_pricing entry

The model classes are defined right here, in ``__main__``, so dill stores them *by value*: the server
loads the files without this script. Each version is written to
``examples/models/auto_pricing/<version>.dill``. When ``config/models.json`` has no ``auto_pricing``
entry (or with ``--reset-config``), the entry is written whole: the example versions, their sha256, the
per-version-family schemas, examples with the outputs the model gives for them, and the A/B test.
Otherwise only the example versions' ``sha256`` values are updated: what a user added (a version
published into the demo, a shadow, examples, routing) is never removed.

Published artifacts are immutable, and dill's bytes are not reproducible across Python/dill
versions, so an existing ``.dill`` file is kept (its digest is re-read) unless ``--rebuild`` is given.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from modelplatform import ModelRejected
from modelplatform.artifacts import sha256_hex
from modelplatform.authoring import dumps_by_value
from modelplatform.encoding import encode_output

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "examples" / "models"
CONFIG = ROOT / "config" / "models.json"
CONFIG_SCHEMA_REF = "../platform/modelplatform/schemas/models-config.schema.json"
MODEL = "auto_pricing"
CENT = Decimal("0.01")


# --- the models -------------------------------------------------------------------------------

@dataclass
class Quote:
    """What the pricing service gets back: a premium in exact cents, valid until the tariff ends."""

    premium: Decimal
    currency: str
    tariff: str
    valid_until: date
    factors: dict[str, Decimal]


class AutoPricing20:
    """2.0.x: premium = base × vehicle factor × driver-age factor."""

    vehicle_factors = {"hatchback": Decimal("1.00"), "sedan": Decimal("1.15"),
                       "suv": Decimal("1.35"), "van": Decimal("1.25")}

    def __init__(self, tariff: str, base: str, young_driver_load: str, valid_until: date) -> None:
        self.tariff = tariff
        self.base = Decimal(base)
        self.young_driver_load = Decimal(young_driver_load)
        self.valid_until = valid_until

    def factors(self, quote: dict[str, Any]) -> dict[str, Decimal]:
        vehicle = quote["vehicle"]
        if vehicle not in self.vehicle_factors:
            raise ModelRejected("unknown_vehicle",
                                f"no tariff for vehicle {vehicle!r}; priced vehicles: "
                                f"{', '.join(sorted(self.vehicle_factors))}")
        age = quote["driver_age"]
        return {"vehicle": self.vehicle_factors[vehicle],
                "driver_age": self.young_driver_load if age < 25 else Decimal("1.00")}

    def predict(self, quote: dict[str, Any]) -> Quote:
        factors = self.factors(quote)
        premium = self.base
        for factor in factors.values():
            premium *= factor
        return Quote(premium=premium.quantize(CENT, rounding=ROUND_HALF_UP), currency="EUR",
                     tariff=self.tariff, valid_until=self.valid_until, factors=factors)


class AutoPricing21(AutoPricing20):
    """2.1.x: adds a mileage factor, so callers must now send ``annual_km``."""

    mileage_bands = ((5_000, Decimal("0.90")), (15_000, Decimal("1.00")), (30_000, Decimal("1.10")))
    high_mileage = Decimal("1.25")

    def factors(self, quote: dict[str, Any]) -> dict[str, Decimal]:
        factors = super().factors(quote)
        km = quote["annual_km"]
        factors["mileage"] = next((f for limit, f in self.mileage_bands if km <= limit), self.high_mileage)
        return factors


VERSIONS = {
    "2.0.3": AutoPricing20("2026-H1", base="320.00", young_driver_load="1.50", valid_until=date(2026, 12, 31)),
    "2.1.0": AutoPricing21("2026-H2", base="315.00", young_driver_load="1.50", valid_until=date(2027, 6, 30)),
    # 2.1.1 softens the young-driver load; the A/B test compares it with 2.1.0
    "2.1.1": AutoPricing21("2026-H2", base="315.00", young_driver_load="1.40", valid_until=date(2027, 6, 30)),
}


# --- what the platform needs to know: schemas, examples, rollout --------------------------------

DRIVER_AGE = {"type": "integer", "minimum": 17, "maximum": 120, "description": "Age of the main driver in years"}
VEHICLE = {"type": "string", "minLength": 1, "maxLength": 40,
           "description": "Vehicle class; an unknown one is rejected with code unknown_vehicle"}

SCHEMAS = {
    "2.0.X": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "auto_pricing 2.0 quote request",
        "type": "object",
        "required": ["vehicle", "driver_age"],
        "additionalProperties": False,
        "properties": {"vehicle": VEHICLE, "driver_age": DRIVER_AGE,
                       "customer_id": {"type": "string", "minLength": 1, "maxLength": 64}},
    },
    "2.1.X": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "auto_pricing 2.1 quote request",
        "type": "object",
        "required": ["customer_id", "vehicle", "driver_age", "annual_km"],
        "additionalProperties": False,
        "properties": {
            "customer_id": {"type": "string", "minLength": 1, "maxLength": 64,
                            "description": "Stable customer id; keeps a customer in the same A/B arm"},
            "vehicle": VEHICLE,
            "driver_age": DRIVER_AGE,
            "annual_km": {"type": "integer", "minimum": 0, "maximum": 200_000,
                          "description": "Expected kilometres driven per year"},
        },
    },
}

EXAMPLE_INPUTS = {
    "2.0.X": [
        ("an SUV with an experienced driver", {"vehicle": "suv", "driver_age": 42}),
        ("a young driver pays the young-driver load", {"vehicle": "hatchback", "driver_age": 21}),
    ],
    "2.1.X": [
        ("an SUV, average mileage", {"customer_id": "c-1001", "vehicle": "suv", "driver_age": 42, "annual_km": 12000}),
        ("a van, high mileage", {"customer_id": "c-1002", "vehicle": "van", "driver_age": 35, "annual_km": 40000}),
    ],
}


def examples_for(models: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Examples per schema family with the output every version of the family gives for them.

    An example is a contract for the whole family: if two versions disagree on it, stop and say so.
    """
    examples: dict[str, list[dict[str, Any]]] = {}
    for key, items in EXAMPLE_INPUTS.items():
        members = [v for v in VERSIONS if v.startswith(key.rstrip("X"))]
        examples[key] = []
        for description, example in items:
            outputs = {v: json.loads(encode_output(models[v].predict(example))) for v in members}
            if len({json.dumps(o, sort_keys=True) for o in outputs.values()}) != 1:
                raise SystemExit(f"examples[{key!r}] {description!r}: versions disagree: {outputs}")
            examples[key].append({"description": description, "input": example, "output": outputs[members[0]]})
    return examples


def load_models(rebuild: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Write each version's artifact (unless kept) and return the loaded models and their digests."""
    import dill

    folder = ARTIFACTS / MODEL
    folder.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {}
    digests: dict[str, str] = {}
    for version, model in VERSIONS.items():
        path = folder / f"{version}.dill"
        if rebuild or not path.exists():
            path.write_bytes(dumps_by_value(model))
            print(f"wrote {path.relative_to(ROOT)}")
        else:
            print(f"kept  {path.relative_to(ROOT)} (published artifacts are immutable; --rebuild overwrites)")
        data = path.read_bytes()
        digests[version] = sha256_hex(data)
        models[version] = dill.loads(data)  # the examples are computed by the artifact itself
    return models, digests


def update_config(digests: dict[str, str], models: dict[str, Any], reset: bool = False) -> dict[str, Any]:
    """Write the example entry into the config when it has none (or ``reset``); else refresh only the
    example versions' digests, keeping everything else of the entry as the user left it."""
    config = json.loads(CONFIG.read_text()) if CONFIG.exists() else {}
    entry = config.get(MODEL)
    if isinstance(entry, dict) and not reset:
        pinned = entry.setdefault("sha256", {})
        changed = [v for v, digest in digests.items() if v in pinned and pinned[v] != digest]
        for version in changed:
            pinned[version] = digests[version]
        CONFIG.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        print(f"kept the {MODEL!r} entry of {CONFIG.relative_to(ROOT)} as it is"
              + (f", except the sha256 of {', '.join(changed)}" if changed else "")
              + " (--reset-config rewrites it whole, dropping what you added)")
        return config
    config["$schema"] = CONFIG_SCHEMA_REF
    config[MODEL] = {
        "description": "Auto insurance pricing: yearly premium in EUR for a vehicle and its main driver",
        "active_model_versions": list(VERSIONS),
        "default": "2.1.1",
        "sha256": digests,
        "schemas": SCHEMAS,
        "examples": examples_for(models),
        "ab_test": {"name": "pricing-2.1.1-rollout", "weights": {"2.1.0": 50, "2.1.1": 50},
                    "sticky_key": "/customer_id"},
    }
    ordered = {"$schema": config.pop("$schema"), **config}
    CONFIG.write_text(json.dumps(ordered, indent=2) + "\n")
    return ordered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="overwrite existing artifacts (changes digests)")
    parser.add_argument("--reset-config", action="store_true",
                        help=f"rewrite the whole {MODEL!r} entry of the config, dropping versions, shadows and "
                             "examples you added (without it only the example versions' sha256 are updated)")
    args = parser.parse_args()

    models, digests = load_models(args.rebuild)
    update_config(digests, models, reset=args.reset_config)
    for version, digest in digests.items():
        print(f"{MODEL} {version} sha256 {digest}")
    print(f"updated {CONFIG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
