"""Common-subexpression elimination: one node for a computation the graph spells twice.

Two nodes are *the same computation* when their op's record says it is ``pure`` (its outputs
follow from its inputs and attributes alone: no random numbers, no effects), they read the
same values in the same order and their attributes are equal (exactly: ``1`` is not ``1.0``
nor ``True``, floats compare bit for bit).  The later node (the *duplicate*) is dropped and its
readers, graph outputs included, read the earlier one's outputs, whose node keeps its name and
its provenance (``source``).  Nodes are visited in schedule order, so a chain spelled twice
(two identical reshapes, then the same op on each) merges whole in one sweep.

Merging holds the kept values until the duplicate's last reader.  Where the kept values are
still live when the duplicate runs, that never adds a byte at any step (the duplicate's own
outputs are gone), and the merge is made.  Where they died before it, the graph recomputes
them, as rematerialization does on purpose (chunkc.passes.remat): such merges are made only
when sizes are known and the estimated peak, all of them made together, does not rise;
otherwise they are left as written (``CseResult.left``).  Two duplicates that are both graph
outputs stay two (a caller gets two arrays, as the graph says).

    result = eliminate_common_subexpressions(graph, sizes={"L": 1024})
    result.graph, result.merged, result.left
    g = cse(graph)                                   # or the pipeline pass "cse"

``autochunk`` runs it first on the graphs it plans (with ``rewrite``, the default); see
docs/passes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Mapping

import sympy

from ..ir.graph import Graph, Node
from .manager import Pass, PassContext, register_pass


@dataclass(frozen=True)
class Merge:
    """Node ``dropped`` computed what node ``kept`` computes; its readers now read ``kept``."""

    kept: str
    dropped: str
    holds: bool  # the kept values were dead where the duplicate ran: the merge holds them longer

    def __str__(self) -> str:
        return f"{self.dropped} into {self.kept}"


@dataclass
class CseResult:
    graph: Graph  # the input graph itself when nothing merged
    merged: tuple[Merge, ...]
    left: tuple[Merge, ...]  # duplicates kept as written: merging them would hold values longer
    # and raise the estimated peak (or no sizes were given to tell)

    def describe(self) -> list[str]:
        """Notes for a plan: what merged, what was left and why."""
        notes = []
        if self.merged:
            notes.append(f"merged {len(self.merged)} duplicate node(s) (common subexpressions): "
                         f"{', '.join(str(m) for m in self.merged[:6])}{' ...' if len(self.merged) > 6 else ''}")
        if self.left:
            notes.append(f"left {len(self.left)} duplicate node(s) as written (they recompute what died before "
                         f"them; merging would hold it longer): {', '.join(str(m) for m in self.left[:6])}"
                         f"{' ...' if len(self.left) > 6 else ''}")
        return notes


def eliminate_common_subexpressions(graph: Graph, sizes: Mapping[str, int] | None = None,
                                    backend: str | None = None, device: str | None = None) -> CseResult:
    """``graph`` with its duplicate nodes merged (a copy; ``graph`` itself when there are none).
    ``sizes`` (every symbol bound, or a graph without symbols) lets the merges that hold values
    longer be judged by the estimated peak (``backend``/``device``: whose, as
    :func:`chunkc.passes.memory.estimate_memory`); without them those are left."""
    if not _has_duplicates(graph):
        return CseResult(graph, (), ())
    result = graph.copy()
    merged = _merge(result, hold=False)
    left: tuple[Merge, ...] = ()
    if _has_duplicates(result):
        held_graph = result.copy()
        held = _merge(held_graph, hold=True)
        if held and _judgeable(graph, sizes) and \
                _peak(held_graph, sizes, backend, device) <= _peak(result, sizes, backend, device):
            result, merged = held_graph, merged + held
        else:  # (with the merges that followed from them: their inputs stay two values)
            left = held
    if not merged:
        return CseResult(graph, (), left)
    return CseResult(result, merged, left)


def cse(graph: Graph, sizes: Mapping[str, int] | None = None, backend: str | None = None,
        device: str | None = None) -> Graph:
    """:func:`eliminate_common_subexpressions`'s graph."""
    return eliminate_common_subexpressions(graph, sizes, backend, device).graph


def _merge(graph: Graph, hold: bool) -> tuple[Merge, ...]:
    """Merge ``graph``'s duplicates in place, in schedule order; with ``hold`` also those whose
    kept values died before the duplicate ran."""
    position = {node: k for k, node in enumerate(graph.nodes)}
    end = len(position)
    seen: dict[Hashable, Node] = {}
    merges: list[Merge] = []
    for node in list(graph.nodes):
        if not node.op.pure:
            continue
        key = _key(node)
        if key is None:
            continue
        kept = seen.setdefault(key, node)
        if kept is node or not _same_types(kept, node):
            continue
        outputs = set(graph.outputs)
        if any(a in outputs and b in outputs for a, b in zip(kept.outputs, node.outputs)):
            continue  # both are graph outputs: the caller gets two arrays

        def last(value) -> int:
            if value in outputs:
                return end
            return max((position[u] for u in value.users), default=position[value.producer])

        # the kept values must be live where the duplicate runs, unless the duplicate's go unread
        holds = any((b.users or b in outputs) and last(a) < position[node] for a, b in zip(kept.outputs, node.outputs))
        if holds and not hold:
            continue
        for a, b in zip(kept.outputs, node.outputs):
            graph.replace_all_uses(b, a)
        graph.erase(node)
        merges.append(Merge(kept.name, node.name, holds))
    return tuple(merges)


def _has_duplicates(graph: Graph) -> bool:
    keys = [_key(n) for n in graph.nodes if n.op.pure]
    keys = [k for k in keys if k is not None]
    return len(set(keys)) < len(keys)


def _same_types(a: Node, b: Node) -> bool:
    return len(a.outputs) == len(b.outputs) and all(x.type == y.type for x, y in zip(a.outputs, b.outputs))


def _key(node: Node) -> Hashable | None:
    """What makes two nodes the same computation; None when an attribute has no exact key."""
    try:
        attrs = tuple(sorted((name, _exact(value)) for name, value in node.attrs.items()))
    except _NoKey:
        return None
    return node.op.name, tuple(id(v) for v in node.inputs), attrs


class _NoKey(Exception):
    pass


def _exact(value: Any) -> Hashable:
    """A key equal for equal attribute values only: typed (``1``, ``1.0`` and ``True`` differ),
    floats by their bits (``-0.0`` is not ``0.0``; a NaN equals itself)."""
    if isinstance(value, float):
        return "float", value.hex()
    if isinstance(value, tuple):
        return "tuple", tuple([_exact(v) for v in value])
    if isinstance(value, sympy.Basic):
        return "size", value  # sympy's equality is structural, on normalized sizes
    try:  # the other attribute types (chunkc.ir.graph): ints, bools, strings, None, dtypes
        hash(value)
    except TypeError:
        raise _NoKey from None
    return type(value).__module__, type(value).__qualname__, value


def _judgeable(graph: Graph, sizes: Mapping[str, int] | None) -> bool:
    return not (graph.symbols() - set(sizes or {}))


def _peak(graph: Graph, sizes: Mapping[str, int] | None, backend: str | None, device: str | None) -> int:
    from .memory import estimate_memory
    return estimate_memory(graph, sizes=dict(sizes or {}), backend=backend, device=device).peak_bytes


@register_pass
@dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge nodes of pure ops that read the same values with the same attributes (see
    chunkc.passes.cse); merges that hold a value longer only where the estimated peak, at
    the pipeline's sizes, does not rise."""

    name = "cse"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return cse(graph, ctx.sizes)


__all__ = ["CseResult", "Merge", "cse", "eliminate_common_subexpressions"]
