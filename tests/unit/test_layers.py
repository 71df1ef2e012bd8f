"""The import direction between cds's layers (docs/architecture.md), read from the source.

Every ``import cds...`` in the package, at any depth (inside functions and ``TYPE_CHECKING``
blocks too), is checked against what its layer may use. The layers form a DAG, so a layer
also cannot reach a forbidden one through another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cds"

# Shared, dependency-free modules at the top of the package: any layer may use them.
BASE = frozenset({"cds", "errors", "logs", "loopback", "strict_yaml", "body_limit", "settings"})

# layer -> the layers (besides BASE) it may import
ALLOWED: dict[str, frozenset[str]] = {
    "protocol": frozenset(),
    "kb": frozenset({"protocol"}),
    "engine": frozenset({"kb", "protocol"}),
    "fhir": frozenset({"kb", "protocol"}),
    "store": frozenset({"protocol"}),
    "trust": frozenset(),
    "call": frozenset({"engine", "kb", "fhir", "store", "protocol"}),
    "web": frozenset({"call", "engine", "kb", "fhir", "store", "protocol"}),
    "metrics": frozenset(),
    "server": frozenset({"app"}),
    "runtime": frozenset({"kb", "store", "trust", "metrics"}),
    "api": frozenset({"call", "kb", "protocol", "store", "trust", "web", "runtime", "metrics"}),
    "app": frozenset(
        {"api", "engine", "fhir", "kb", "metrics", "protocol", "runtime", "store", "trust"}
    ),
    "cli": frozenset(
        {"app", "call", "fhir", "server", "kb", "metrics", "protocol", "store", "trust"}
    ),
}
ALLOWED |= {name: frozenset() for name in BASE}


def layer_of(module: str) -> str:
    """``cds.kb.loader`` -> ``kb``; ``cds.settings`` -> ``settings``; ``cds`` -> ``cds``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def cds_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) for every absolute import of a ``cds`` module in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "cds":
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "cds"]
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    out: list[str] = []
    for path in sorted(package.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic scripts: they import the store's tables, by design
        module = module_name(path, package)
        own = layer_of(module)
        may = ALLOWED.get(own)
        for line, target in cds_imports(path.read_text(encoding="utf-8")):
            other = layer_of(target)
            if other == own or other in BASE - {own}:
                continue
            if may is None:
                out.append(f"{module}: layer {own!r} is not in the layer table")
            elif other not in may:
                out.append(f"{path.relative_to(package.parent)}:{line}: {own} imports {target}")
    return out


def test_every_import_goes_down_the_layers() -> None:
    assert violations() == []


def test_the_layer_table_has_no_cycle() -> None:
    state: dict[str, int] = {}

    def visit(layer: str, trail: tuple[str, ...]) -> None:
        assert state.get(layer) != 1, f"cycle: {' -> '.join((*trail, layer))}"
        if state.get(layer) == 2:
            return
        state[layer] = 1
        for other in ALLOWED.get(layer, frozenset()):
            visit(other, (*trail, layer))
        state[layer] = 2

    for layer in ALLOWED:
        visit(layer, ())


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (layer, other)
        for layer in ("protocol", "kb", "engine")
        for other in ("api", "store", "trust", "web")
    ]
    + [(layer, other) for layer in ("store", "trust") for other in ("fhir", "kb")],
)
def test_the_rules_the_architecture_promises(layer: str, forbidden: str) -> None:
    """The issue's rules, stated directly: also through another layer (the closure)."""
    reach: set[str] = set()
    todo = [layer]
    while todo:
        for other in ALLOWED[todo.pop()]:
            if other not in reach:
                reach.add(other)
                todo.append(other)
    assert forbidden not in reach


def test_a_wrong_import_is_caught(tmp_path: Path) -> None:
    """The checker itself: an engine module importing the store is reported with its line."""
    package = tmp_path / "cds"
    (package / "engine").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "engine" / "__init__.py").write_text("")
    (package / "engine" / "bad.py").write_text(
        "from cds.errors import CdsError\n\ndef f() -> None:\n    from cds.store import sql\n"
    )
    assert violations(package) == ["cds/engine/bad.py:4: engine imports cds.store"]


def test_the_module_map_lists_every_module() -> None:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
        and (path.name != "__init__.py" or path.parent == PACKAGE)
        and f"`{path.relative_to(PACKAGE.parent)}`" not in text
    ]
    assert missing == [], "docs/architecture.md's module map misses these"
