"""How a large graph is grouped for a picture: by module, and index arithmetic folded.

* **Module levels.**  A node's module path (``node.source.module``) splits at
  dots into levels, an all-digit part staying with the part before it
  (``model.h.2.attn`` -> ``model`` / ``h.2`` / ``attn``): one layer of a
  ``ModuleList`` is one level, the list itself none.  ``depth=K`` in a view
  keeps the first K levels of every node's path (:func:`module_at_depth`).
* **Index arithmetic.**  A node is index arithmetic when its value is computed
  only from sizes, integer or boolean inputs, and literals (constants of at most
  :data:`LITERAL_ELEMENTS` elements): position ids, causal and padding masks,
  ``arange``/compare/``where`` chains.  Neither a float graph input (an
  activation) nor a weight reaches it (:func:`index_arithmetic`).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from ..ir.graph import Graph, Node, Value

LITERAL_ELEMENTS = 16  # a constant this small is a literal (a scale, -inf, 0), not a weight


def module_levels(path: str) -> tuple[str, ...]:
    """``'model.h.2.attn'`` -> ``('model', 'h.2', 'attn')``; the top level is ``()``."""
    levels: list[str] = []
    for part in path.split(".") if path else ():
        if part.isdigit() and levels:
            levels[-1] += "." + part
        else:
            levels.append(part)
    return tuple(levels)


def module_of(node: Node) -> tuple[str, ...]:
    return module_levels(node.source.module) if node.source is not None else ()


def module_at_depth(node: Node, depth: int) -> tuple[str, ...]:
    """The node's module path cut to ``depth`` levels."""
    return module_of(node)[:depth]


def dotted(levels: Sequence[str]) -> str:
    return ".".join(levels)


def _weight_or_activation(v: Value) -> bool:
    if v.dtype.is_floating and v.kind == "input":
        return True
    if v.is_constant and v.dtype.is_floating:
        n = 1
        for s in v.shape:
            if not isinstance(s, int):
                return True
            n *= s
        return n > LITERAL_ELEMENTS
    return False


def index_arithmetic(graph: Graph) -> set[Node]:
    """The nodes computed only from sizes, integer or bool inputs and literals (module docstring)."""
    index: set[Node] = set()
    for node in graph.nodes:
        if all(not _weight_or_activation(v) and (v.producer is None or v.producer in index) for v in node.inputs):
            index.add(node)
    return index


def connected_groups(nodes: Iterable[Node]) -> list[list[Node]]:
    """The weakly connected groups of ``nodes`` (edges between them only), each in schedule order."""
    members = list(nodes)
    inside = set(members)
    parent = {n: n for n in members}

    def find(n: Node) -> Node:
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n in members:
        for v in n.inputs:
            if v.producer in inside:
                a, b = find(n), find(v.producer)
                if a is not b:
                    parent[a] = b
    groups: dict[Node, list[Node]] = {}
    for n in members:
        groups.setdefault(find(n), []).append(n)
    return list(groups.values())


def op_summary(nodes: Sequence[Node], top: int = 4) -> str:
    """``arange x3, lt x2, where, ...``: the most frequent ops of a group."""
    counts = Counter(n.op.name for n in nodes).most_common()
    parts = [f"{op} x{k}" if k > 1 else op for op, k in counts[:top]]
    return ", ".join(parts) + (", ..." if len(counts) > top else "")


__all__ = ["LITERAL_ELEMENTS", "module_levels", "module_of", "module_at_depth", "dotted", "index_arithmetic",
           "connected_groups", "op_summary"]
