"""The package map holds: no import cycles, and the format packages never import what is built on them.

Read from the source with `ast`, so lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "neuco_io"

FOUNDATIONS = ("neuco_io.storage", "neuco_io.cube", "neuco_io.shards", "neuco_io.findings", "neuco_io.tasks")
"""Packages the commands are built on."""

BUILT_ON_THEM = ("neuco_io.converters", "neuco_io.loader", "neuco_io.validators", "neuco_io.submission",
                 "neuco_io.cli", "neuco_io.embed")


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def _imports() -> dict[str, set[str]]:
    modules = _module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                pytest.fail(f"{path}: relative import (imports inside neuco_io are absolute)")
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target):], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_foundations_never_import_what_is_built_on_them():
    upward = sorted(f"{name} imports {target}" for name, targets in _imports().items()
                    if _within(name, FOUNDATIONS) for target in targets if _within(target, BUILT_ON_THEM))
    assert not upward, upward
