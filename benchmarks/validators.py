"""Which JSON Schema validator for the hot path? Speed and error quality, measured in one run.

    .venv/bin/python benchmarks/validators.py

Compares, on the pricing schema of the example config (2020-12), each validator compiled once:
``jsonschema`` (the reference), ``jsonschema-rs`` and, where installed, ``fastjsonschema``
(draft-07 only, and stops at the first error). Prints µs per call for a valid and an invalid input,
the ratio to ``jsonschema``, and whether each reports the same set of violation paths as the reference.
"""
from __future__ import annotations

import timeit

import jsonschema
import jsonschema_rs

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["customer_id", "vehicle", "driver_age", "annual_km"],
    "additionalProperties": False,
    "properties": {
        "customer_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "vehicle": {"type": "string", "enum": ["hatchback", "suv", "van", "tractor"]},
        "driver_age": {"type": "integer", "minimum": 17, "maximum": 120},
        "annual_km": {"type": "integer", "minimum": 0, "maximum": 200000},
        "extras": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
    },
}
VALID = {"customer_id": "c-123", "vehicle": "suv", "driver_age": 40, "annual_km": 12000, "extras": ["glass"]}
INVALID = {"customer_id": "", "vehicle": "bike", "driver_age": 12, "extras": ["a", 3], "colour": "red"}


def ptr(parts) -> str:
    return "".join("/" + str(p) for p in parts)


def main(number: int = 20000) -> None:
    reference = jsonschema.Draft202012Validator(SCHEMA)
    rs = jsonschema_rs.Draft202012Validator(SCHEMA)
    ref_paths = sorted(ptr(e.absolute_path) for e in reference.iter_errors(INVALID))

    candidates = {
        "jsonschema": (lambda: reference.is_valid(VALID),
                       lambda: [ptr(e.absolute_path) for e in reference.iter_errors(INVALID)]),
        "jsonschema-rs": (lambda: rs.is_valid(VALID),
                          lambda: [ptr(e.instance_path) for e in rs.iter_errors(INVALID)]),
    }
    try:
        import fastjsonschema

        draft7 = {k: v for k, v in SCHEMA.items() if k != "$schema"}
        fast = fastjsonschema.compile(draft7)

        def fast_errors() -> list[str]:
            try:
                fast(INVALID)
                return []
            except fastjsonschema.JsonSchemaValueException as exc:
                return [exc.path and "/" + "/".join(str(p) for p in exc.path[1:]) or ""]

        candidates["fastjsonschema"] = (lambda: fast(VALID), fast_errors)
    except ImportError:
        pass

    base_valid = base_invalid = None
    print(f"reference violations ({len(ref_paths)}): {ref_paths}\n")
    print(f"{'validator':16} {'valid µs':>9} {'ratio':>7} {'invalid µs':>11} {'ratio':>7}  "
          "same violations as reference")
    for name, (valid, invalid) in candidates.items():
        t_valid = min(timeit.repeat(valid, number=number, repeat=3)) / number * 1e6
        t_invalid = min(timeit.repeat(invalid, number=number // 10, repeat=3)) / (number // 10) * 1e6
        base_valid = base_valid or t_valid
        base_invalid = base_invalid or t_invalid
        same = sorted(invalid()) == ref_paths
        print(f"{name:16} {t_valid:9.2f} {t_valid / base_valid:7.3f} {t_invalid:11.2f} "
              f"{t_invalid / base_invalid:7.3f}  {same} ({len(invalid())} reported)")


if __name__ == "__main__":
    main()
