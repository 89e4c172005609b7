"""The house rules, read from the code: `shared` (the library) imports no project and no tool,
a project imports no other project and no tool, and no two modules import each other (a cycle
hidden in a function body counts too)."""

from __future__ import annotations

import ast
from itertools import combinations
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("shared", "projects", "tools")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (annotations only, never imported)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports(path: Path) -> set[str]:
    """Every module `path` imports at run time, anywhere in the file (`from a import b` counts
    as a.b too: b may be a module)."""
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in out if name.split(".")[0] in PACKAGES}


GRAPH = {
    _module_name(p): _imports(p)
    for package in PACKAGES
    for p in sorted((REPO / package).rglob("*.py"))
    if "__pycache__" not in p.parts
}


def test_the_graph_is_read():
    assert "shared.pruning" in GRAPH["shared.lightning"]
    assert "tools.registry" in GRAPH["tools.sweep"]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("shared")))
def test_the_library_imports_no_project_and_no_tool(module):
    above = sorted(i for i in GRAPH[module] if i.split(".")[0] in ("projects", "tools"))
    assert not above, f"{module} imports {above}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("projects.")))
def test_a_project_imports_only_itself_and_the_library(module):
    own = module.split(".")[1]
    other = sorted(
        i
        for i in GRAPH[module]
        if i.startswith("tools") or (i.startswith("projects.") and i.split(".")[1] != own)
    )
    assert not other, f"{module} imports {other}"


def test_no_two_modules_import_each_other():
    cycles = [(a, b) for a, b in combinations(sorted(GRAPH), 2) if b in GRAPH[a] and a in GRAPH[b]]
    assert not cycles, f"import cycles: {cycles}"
