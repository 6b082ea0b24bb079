"""The packages of ``attune`` form layers: no package imports one that (directly or through
others) imports it back (docs/development.md, "Where a query belongs / operations")."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import attune

SOURCE = Path(attune.__file__).parent


def unit_of(module: str) -> str:
    """``attune.db.repos.x`` → ``db``; a top-level module is its own unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_edges() -> dict[str, dict[str, set[str]]]:
    """unit → imported unit → the files that import it (function-level imports included)."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        unit = unit_of(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                if name.startswith("attune."):
                    target = unit_of(name)
                    if target != unit:
                        edges[unit][target].add(str(relative))
    return edges


def reachable(edges: dict[str, dict[str, set[str]]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in edges.get(todo.pop(), {}):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_package_imports_one_that_imports_it_back() -> None:
    edges = import_edges()
    assert {"db", "operations", "workflow", "api"} <= set(edges)  # the walk saw the packages
    cycles = sorted(
        f"{unit} -> {target} ({', '.join(sorted(files))}) but {target} reaches {unit}"
        for unit, targets in edges.items()
        for target, files in targets.items()
        if unit in reachable(edges, target)
    )
    assert cycles == []
