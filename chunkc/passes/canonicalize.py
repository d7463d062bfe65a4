"""Canonicalization: rewrite nodes into what eager PyTorch runs, by asking their op records.

An op record may carry ``canonicalize(node, analysis)``: the same op on other inputs, with
other attributes, that computes the node's value faster (MLIR's canonicalization patterns,
kept beside the op).  The pass offers every node to its record's rule, with the graph's
element formulas (:class:`~chunkc.ir.elements.ElementAnalysis`) to prove what a subgraph
computes, then drops what no longer reaches an output.  Today:

* ``scaled_dot_product_attention`` with a bool mask proven to be ``key <= query`` (the causal
  mask transformers builds from positions under torch.export) takes ``is_causal=True``
  instead: no L x L mask is built, and the kernel skips the masked half;
* its k and v, when proven to repeat the heads of earlier values (transformers' ``repeat_kv``
  for grouped-query attention), read those values with ``enable_gqa=True``: no copy of the
  repeated heads;
* a value computed elementwise from a position difference ``j - i`` (relative position
  biases), and a table lookup by it, computed once per difference and spread over
  ``[L, L]`` by one Toeplitz copy (:mod:`chunkc.passes.difference_tables`): O(L) work
  instead of a chain of L x L ops.  It runs after the records' rules, on their result.

    g = chunkc.passes.canonicalize.canonicalize(g)      # or the pipeline "canonicalize"
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.elements import ElementAnalysis
from ..ir.graph import Graph, Value
from ..ir.registry import Forward
from .difference_tables import tabulate_differences
from .manager import Pass, PassContext, register_pass


def canonicalize(graph: Graph) -> Graph:
    """A copy of ``graph`` with every node its record's rule rewrites rewritten and every value
    of a position difference computed from a table (dead nodes dropped); ``graph`` itself when
    nothing applies."""
    return tabulate_differences(_record_rules(graph))[0]


def _record_rules(graph: Graph) -> Graph:
    analysis = ElementAnalysis(graph)
    rewrites = {}
    for node in graph.nodes:
        rule = node.op.canonicalize
        if rule is None:
            continue
        found = rule(node, analysis)
        if found is not None:
            rewrites[node] = found
    if not rewrites:
        return graph
    result = graph.copy()
    renames = []
    now: dict[str, Value] = {}  # a value a rewrite replaced -> its replacement (later rules read that)

    def current(v: Value) -> Value:
        return now.get(v.name) or result.value(v.name)

    for node, found in rewrites.items():
        old = result.node(node.name)
        if isinstance(found, Forward):
            target = current(found.value)
            result.replace_all_uses(old.outputs[0], target)
            now[old.outputs[0].name] = target
            continue
        inputs, attrs = found
        new = result.add_node(old.op, [current(v) for v in inputs], attrs, before=old, source=old.source)
        for a, b in zip(old.outputs, new.outputs):
            result.replace_all_uses(a, b)
            now[a.name] = b
            renames.append((b, a.name))
        renames.append((new, old.name))
    result.dce()
    for obj, name in renames:  # the rewritten node keeps its name (the old one is gone)
        result.rename(obj, name)
    return result


@register_pass
@dataclass(frozen=True)
class Canonicalize(Pass):
    """Rewrite nodes into faster equivalents their op records know (causal masks to
    ``is_causal``, repeated key/value heads to ``enable_gqa``); see the module docstring."""

    name = "canonicalize"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return canonicalize(graph)
