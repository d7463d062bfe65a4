"""Layering: the import graph of chunkc/ (and frontends/) has no cycle.

Every module is parsed (not imported); an edge ``a -> b`` is any import of
``b`` written in ``a``, at module level or inside a function.  Only imports
under ``if TYPE_CHECKING:`` are exempt (they never run).  ``from p import x``
is an edge to ``p.x`` when that is a module, else to ``p``.  The package
``__init__`` that Python runs on the way to a submodule is not an edge: a cycle
through a parent package's ``__init__`` only bites when that ``__init__``
imports its children, and those imports are edges of their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chunkc", "frontends")


def module_files(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (file ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.add(alias.name)
            continue
        if node.level:
            base_parts = package.split(".")
            if node.level > 1:
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            target = f"{base}.{alias.name}"
            if target in known:
                found.add(target)
            elif base in known:
                found.add(base)
    found.discard(name)
    return found


def import_graph(packages=PACKAGES) -> nx.DiGraph:
    files: dict[str, Path] = {}
    for package in packages:
        files.update(module_files(package))
    known = set(files)
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for name, path in files.items():
        for target in imported_modules(name, path, known):
            g.add_edge(name, target)
    return g


def cycles(g: nx.DiGraph) -> list[list[str]]:
    """One cycle (as a module path) for each strongly connected component with more than one module."""
    out = []
    for component in nx.strongly_connected_components(g):
        if len(component) < 2:
            continue
        edges = nx.find_cycle(g.subgraph(component))
        out.append([a for a, _ in edges] + [edges[0][0]])
    return sorted(out)


def describe(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("package", PACKAGES)
def test_import_graph_has_no_cycle(package):
    g = import_graph()
    found = [c for c in cycles(g) if any(m.split(".")[0] == package for m in c)]
    assert not found, f"import cycles in {package}/:\n{describe(found)}"


def test_chunkc_does_not_import_benchmarks_or_tests():
    files = module_files("chunkc")
    bad = []
    for name, path in files.items():
        for node in _imports(ast.parse(path.read_text(), str(path))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if not getattr(node, "level", 0) and any(m.split(".")[0] in ("benchmarks", "tests") for m in mods):
                bad.append(name)
    assert not bad, f"chunkc modules import benchmarks/tests: {sorted(set(bad))}"


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    """The checker itself: a function-level import closes a cycle; TYPE_CHECKING does not."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import g\n    return g\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
                              "else:\n    import os\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n"
                              "def h():\n    from pkg.a import x\n")
    files = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(tmp_path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    known = set(files)
    g = nx.DiGraph()
    for name, path in files.items():
        for target in imported_modules(name, path, known):
            g.add_edge(name, target)
    assert not cycles(g)  # c's import of a is under TYPE_CHECKING
    (pkg / "c.py").write_text("def g():\n    from .a import x\n")
    g = nx.DiGraph()
    for name, path in files.items():
        for target in imported_modules(name, path, known):
            g.add_edge(name, target)
    assert describe(cycles(g)) in ("pkg.a -> pkg.b -> pkg.c -> pkg.a", "pkg.b -> pkg.c -> pkg.a -> pkg.b",
                                   "pkg.c -> pkg.a -> pkg.b -> pkg.c")
