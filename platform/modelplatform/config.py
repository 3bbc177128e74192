"""``config/models.json`` parsed once into typed, validated objects.

:func:`load_config` reads and validates a file; :func:`parse_config` does the same for an
already-decoded document. Both raise :class:`ConfigError` listing *every* problem found: first the
structure (the JSON Schema shipped as ``modelplatform/schemas/models-config.schema.json``), then the
semantic rules of the spec, for each model whose core (versions, digests, schemas) is sound.

:func:`inspect_config` never raises: it returns every problem, the warnings (keys that cover no
active version, fine while a version is being prepared), and a spec for every model whose versions
can still be checked, broken entries included, so ``check-config`` can list every problem at once.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonpointer
import jsonschema
import jsonschema_rs

from modelplatform import versions
from modelplatform.errors import StartupError
from modelplatform.pointers import pointer

CONFIG_SCHEMA_FILE = "models-config.schema.json"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the config, located as precisely as known."""

    message: str
    model: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.model:
            where = f"{self.model}" + (f" {self.version}" if self.version else "") + ": "
        return where + self.message

    def as_dict(self) -> dict[str, str | None]:
        return {"model": self.model, "version": self.version, "message": self.message}


class ConfigError(StartupError):
    """The config is unusable; ``problems`` holds every :class:`ConfigProblem`."""

    def __init__(self, problems: list[ConfigProblem], source: str = "config") -> None:
        self.config_problems = list(problems)
        self.source = source
        super().__init__([f"{source}: {p}" for p in problems])


@dataclass(frozen=True)
class Example:
    input: Any
    output: Any = None
    has_output: bool = False
    description: str = ""


@dataclass(frozen=True)
class ABTest:
    """Integer ``weights`` summing to 100 over active versions; ``sticky_key`` a JSON Pointer or None."""

    name: str
    weights: Mapping[str, int]
    sticky_key: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    active_versions: tuple[str, ...]
    default: str
    sha256: Mapping[str, str]
    schemas: Mapping[str, Any]
    examples: Mapping[str, tuple[Example, ...]] = field(default_factory=dict)
    ab_test: ABTest | None = None
    shadow: tuple[str, ...] = ()

    def schema_key(self, version: str) -> str:
        """The schema key that governs ``version`` (validated to be exactly one for active versions)."""
        (key,) = versions.resolve(version, self.schemas)
        return key

    def schema_for(self, version: str) -> Any:
        return self.schemas[self.schema_key(version)]

    def examples_for(self, version: str) -> tuple[Example, ...]:
        keys = versions.resolve(version, self.examples)
        return tuple(ex for k in keys for ex in self.examples[k])


@dataclass(frozen=True)
class ModelsConfig:
    models: Mapping[str, ModelSpec]
    revision: str
    source: str = "config"

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models.values())


@cache
def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, shipped inside the package."""
    text = resources.files("modelplatform").joinpath("schemas", CONFIG_SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class ConfigInspection:
    """Everything known about a config file, whether or not it is valid.

    ``specs`` holds every model whose versions can be checked: valid ones, and broken ones whose
    ``active_model_versions``, ``sha256`` and ``schemas`` are sound (their broken optional parts left
    out). ``problems`` make the config invalid; ``warnings`` do not.
    """

    specs: Mapping[str, ModelSpec]
    problems: tuple[ConfigProblem, ...]
    warnings: tuple[ConfigProblem, ...]
    revision: str | None = None


def load_config(path: str | Path) -> ModelsConfig:
    """Read, decode and validate a config file. Raises :class:`ConfigError`."""
    inspection = inspect_config(path)
    if inspection.problems:
        raise ConfigError(list(inspection.problems), str(path))
    assert inspection.revision is not None
    return ModelsConfig(models=MappingProxyType(dict(inspection.specs)), revision=inspection.revision,
                        source=str(path))


def inspect_config(path: str | Path) -> ConfigInspection:
    """Read and decode a config file and list its problems and warnings; never raises."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return ConfigInspection({}, (ConfigProblem(f"cannot read config file: {exc.strerror or exc}"),), ())
    try:
        data, duplicates = decode_config(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ConfigInspection({}, (ConfigProblem(f"not valid JSON: {exc}"),), ())
    specs, problems = inspect_document(data)
    return ConfigInspection(MappingProxyType(specs), tuple(duplicates + problems), tuple(config_warnings(specs)),
                            hashlib.sha256(raw).hexdigest()[:12])


def decode_config(raw: bytes | str) -> tuple[Any, list[ConfigProblem]]:
    """Decode config JSON; also return a problem for every key repeated within one object.

    Python's ``json`` (like most parsers) silently keeps the last of two equal keys, so a pasted-in
    second ``"sha256"`` block would replace the first without anyone noticing in review.
    Raises :class:`json.JSONDecodeError`/:class:`UnicodeDecodeError` for text that is not JSON.
    """
    repeated: list[tuple[str, dict[str, Any]]] = []

    def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                repeated.append((key, obj))
            obj[key] = value
        return obj

    data = json.loads(raw, object_pairs_hook=unique_pairs)
    owner = {}  # id of every object inside a model's entry → that model
    if isinstance(data, dict):
        for name, body in data.items():
            stack = [body]
            while stack:
                node = stack.pop()
                if isinstance(node, dict):
                    owner[id(node)] = name
                    stack.extend(node.values())
                elif isinstance(node, list):
                    stack.extend(node)
    problems = [
        ConfigProblem(f"key {key!r} appears more than once in the same object; only the last would count, "
                      "so keep one", model=owner.get(id(obj)) if obj is not data else key)
        for key, obj in repeated
    ]
    return data, problems


def parse_config(data: Any, *, source: str = "config", revision: str | None = None) -> ModelsConfig:
    """Validate a decoded config document and build :class:`ModelsConfig`. Raises :class:`ConfigError`."""
    specs, problems = inspect_document(data)
    if problems:
        raise ConfigError(problems, source)
    if revision is None:
        revision = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return ModelsConfig(models=MappingProxyType(specs), revision=revision, source=source)


# what a model's versions need to be checked at all; the other fields can be left out when broken
CORE_FIELDS = ("active_model_versions", "sha256", "schemas")


def inspect_document(data: Any) -> tuple[dict[str, ModelSpec], list[ConfigProblem]]:
    """Every problem of a decoded config, and a spec for each model whose versions can be checked.

    A model whose structure is broken only outside :data:`CORE_FIELDS` (weights written ``50.5``, a
    misspelt key, a missing ``default``) still gets a spec without the broken parts, and the semantic
    rules are checked on what remains, so one mistake never hides the others.
    """
    errors = structural_errors(data)
    problems = structural_problems(data, errors)
    if not isinstance(data, dict):
        return {}, problems
    broken_fields: dict[str, set[str]] = {}
    for error_model, field_name in _structural_locations(errors):
        broken_fields.setdefault(error_model, set()).add(field_name)
    specs: dict[str, ModelSpec] = {}
    for name, body in data.items():
        if name == "$schema" or not isinstance(body, dict):
            continue
        broken = broken_fields.get(name, set())
        if any(f in broken or f not in body for f in CORE_FIELDS):
            continue  # nothing to check the versions against until the structure is fixed
        if broken:
            body = {k: v for k, v in body.items() if k not in broken}
            if "default" not in body:  # reported already; any active version lets the rest be checked
                body["default"] = body["active_model_versions"][0]
        spec = _build_spec(name, body)
        problems.extend(semantic_problems(spec))
        specs[name] = spec
    return specs, problems


def _structural_locations(errors: list[jsonschema.ValidationError]) -> list[tuple[str, str]]:
    """``(model, field)`` of every structural error inside a model's entry: the field it sits in, each
    missing required field, or ``*`` when the entry is not an object."""
    found = []
    for error in errors:
        path = list(error.absolute_path)
        if not path:
            continue
        model = str(path[0])
        if len(path) >= 2:
            found.append((model, str(path[1])))
        elif error.validator == "required" and isinstance(error.instance, dict):
            required: list[str] = error.validator_value  # type: ignore[assignment]  # "required" holds names
            found.extend((model, f) for f in required if f not in error.instance)
        elif error.validator == "type":
            found.append((model, "*"))  # the entry is not an object at all
    return found


def config_warnings(specs: Mapping[str, ModelSpec]) -> list[ConfigProblem]:
    """What is allowed but worth a look: ``schemas`` and ``examples`` keys that cover no active version.

    Such a key is how a version is prepared before it is published and activated
    (:mod:`modelplatform.testing` runs its examples against a local file); otherwise it is a typo or a
    leftover of a retired version.
    """
    warnings = []
    for spec in specs.values():
        for field_name, keys in (("schemas", spec.schemas), ("examples", spec.examples)):
            for key in keys:
                if not any(versions.matches(key, v) for v in spec.active_versions):
                    warnings.append(ConfigProblem(
                        f"{field_name} key {key!r} covers no active version: fine while that version is "
                        "being prepared; otherwise a typo or a leftover, remove it", model=spec.name))
    return warnings


def structural_errors(data: Any) -> list[jsonschema.ValidationError]:
    """Violations of the config's JSON Schema, sorted by where they are."""
    validator = jsonschema.Draft202012Validator(config_json_schema())
    return sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))


def structural_problems(data: Any, errors: list[jsonschema.ValidationError] | None = None) -> list[ConfigProblem]:
    """Violations of the config's JSON Schema (``errors``, if already found), attributed to their model."""
    problems = []
    for error in structural_errors(data) if errors is None else errors:
        path = list(error.absolute_path)
        model = str(path[0]) if path else None
        if not path and "propertyNames" in error.schema_path:
            model = None
            bad_name = error.instance if isinstance(error.instance, str) else None
            error.message = (f"{bad_name!r} is not a valid model name: use lower-case letters, digits "
                             "and underscores, starting with a letter") if bad_name else error.message
        problems.append(ConfigProblem(f"{pointer(path) or '/'}: {error.message}", model=model))
    return problems


def _build_spec(name: str, body: dict[str, Any]) -> ModelSpec:
    ab = body.get("ab_test")
    return ModelSpec(
        name=name,
        description=body.get("description", ""),
        active_versions=tuple(body["active_model_versions"]),
        default=body["default"],
        sha256=MappingProxyType(dict(body["sha256"])),
        schemas=MappingProxyType(dict(body["schemas"])),
        examples=MappingProxyType({
            key: tuple(
                Example(input=ex["input"], output=ex.get("output"), has_output="output" in ex,
                        description=ex.get("description", ""))
                for ex in items
            )
            for key, items in body.get("examples", {}).items()
        }),
        ab_test=None if ab is None else ABTest(
            # the JSON Schema's "integer" also admits 50.0: store whole numbers as int, as they are meant
            name=ab["name"], weights=MappingProxyType({v: int(w) for v, w in ab["weights"].items()}),
            sticky_key=ab.get("sticky_key"),
        ),
        shadow=tuple(body.get("shadow", ())),
    )


def semantic_problems(spec: ModelSpec) -> list[ConfigProblem]:
    """The spec's rules that a JSON Schema cannot express, for one structurally valid model."""
    problems: list[ConfigProblem] = []
    name, active = spec.name, set(spec.active_versions)

    def problem(message: str, version: str | None = None) -> None:
        problems.append(ConfigProblem(message, model=name, version=version))

    if spec.default not in active:
        problem(f"default {spec.default} is not one of active_model_versions {list(spec.active_versions)}; "
                "add it there or pick an active version")
    for version in spec.active_versions:
        if version not in spec.sha256:
            problem("no sha256 for this active version; add the digest printed by `modelplatform publish`",
                    version)

    for key, schema in spec.schemas.items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema_rs.validator_for(schema)
        except jsonschema.SchemaError as exc:
            problem(f"schemas[{key!r}] is not a valid JSON Schema 2020-12: {exc.message}")
        except (ValueError, jsonschema_rs.ValidationError) as exc:  # e.g. a regex the validator cannot compile
            problem(f"schemas[{key!r}] cannot be compiled: {exc}")
    for version in spec.active_versions:
        keys = versions.resolve(version, spec.schemas)
        if not keys:
            problem("no schema covers this version; add a schemas key such as "
                    f"{version!r} or {'.'.join(version.split('.')[:-1] + ['X'])!r}", version)
        elif len(keys) > 1:
            problem(f"schema keys {keys} are equally specific for this version; make one more specific", version)

    if spec.ab_test is not None:
        ab = spec.ab_test
        for version in ab.weights:
            if version not in active:
                problem(f"ab_test {ab.name!r} weights a version that is not active; "
                        "add it to active_model_versions or drop the weight", version)
        total = sum(ab.weights.values())
        if total != 100:
            problem(f"ab_test {ab.name!r} weights sum to {total}, they must sum to 100")
        if ab.sticky_key is not None:
            try:
                jsonpointer.JsonPointer(ab.sticky_key)
            except jsonpointer.JsonPointerException as exc:
                problem(f"ab_test {ab.name!r} sticky_key {ab.sticky_key!r} is not a JSON Pointer "
                        f"(write it like /customer_id): {exc}")
    for version in spec.shadow:
        if version not in active:
            problem("shadow version is not active; shadow versions must be loaded, add it to "
                    "active_model_versions", version)
    return problems
