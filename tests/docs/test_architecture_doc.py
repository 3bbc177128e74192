"""docs/architecture.md is the map a newcomer reads first: it names every module of the package, and every
module it names exists (a module removed or renamed without the map following fails here)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "platform" / "modelplatform"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
NAMED = set(re.findall(r"`([\w/]+\.py)`", DOC))


def modules() -> list[str]:
    """Every module a reader could open, as a path under the package (bare package markers left out)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name == "__main__.py" or (path.name == "__init__.py" and rel not in {"http/__init__.py",
                                                                                      "cli/__init__.py"}):
            continue
        found.append(rel)
    return found


def test_every_module_of_the_package_is_on_the_map() -> None:
    # the replay package's modules are listed by their file names in its own row
    missing = [rel for rel in modules() if rel not in NAMED and not (
        rel.startswith("replay/") and Path(rel).name in NAMED)]
    assert missing == [], f"docs/architecture.md does not name {missing}"


def test_every_module_the_map_names_exists() -> None:
    gone = [name for name in sorted(NAMED)
            if not any((where / name).is_file() for where in (PACKAGE, PACKAGE / "replay", ROOT))]
    assert gone == [], f"docs/architecture.md names modules that do not exist: {gone}"
