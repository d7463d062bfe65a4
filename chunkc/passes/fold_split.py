"""Fold a split into the chain that makes it: one producer per part, from slices of its weights.

A fused projection (GPT-2's ``c_attn``: one matmul makes queries, keys and
values, then a ``split`` takes them apart) forces the chunk search to compute
all three whole: the keys and values are needed whole by attention, so their
common producer is, so the queries are too.  When the split's axis comes, in
the producer's dimension record, from its constant inputs alone (the weight's
output columns, the bias), each part can be computed on its own from slices of
those constants — three projections instead of one, the same FLOPs — and the
query projection can then run a chunk at a time.

The walk from the split back to that producer passes through ops that carry the
axis from a single non-constant input (views, reshapes); each part clones the
chain with the attributes of a static slice of the axis (the same rule a chunk
loop uses: ``loop_attrs``).  Only chains whose values nothing else reads are
folded.  ``autochunk`` runs this before its search; it is also the pass
``fold-split``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from ..ir.dims import LOOP_START, LOOP_STOP
from ..ir.graph import Graph, Node, Value
from ..ir.sizes import normalize
from .manager import Pass, PassContext, register_pass
from .plan import ChunkedValue
from .plan_index import loop_attrs


@dataclass(frozen=True)
class _Link:
    node: Node
    axis: int  # the split axis, on this node's output 0
    unit: Fraction  # elements of this output's axis per element of the split axis


def _chain(split: Node) -> list[_Link] | None:
    """From the split's input back to the node whose axis comes from constants only
    (first in the list), or None when there is no such chain."""
    value, axis, unit = split.inputs[0], split.attrs["axis"] % split.inputs[0].rank, Fraction(1)
    chain: list[_Link] = []
    while True:
        node = value.producer
        if node is None or len(node.outputs) != 1 or len(value.users) != 1 or value in value.graph.outputs:
            return None
        flow = node.dims()[0][axis]
        if flow.kind != "carry" or not flow.sources or flow.positional:
            return None
        chain.append(_Link(node, axis, unit))
        moving = [s for s in flow.sources if not node.inputs[s.input].is_constant]
        constants = [s for s in flow.sources if node.inputs[s.input].is_constant]
        if not moving:
            if any(node.inputs[s.input].data is None for s in constants):
                return None  # a shape-only constant (IR read from text): nothing to slice
            return list(reversed(chain))
        if len(moving) != 1 or constants:
            return None
        value, axis, unit = node.inputs[moving[0].input], moving[0].axis, unit * moving[0].ratio


def _part(graph: Graph, split: Node, chain: list[_Link], lo: int, hi: int, name: str) -> Value:
    """The chain computed for elements [lo, hi) of the split axis, before ``split``."""
    value = None
    for k, link in enumerate(chain):
        node = link.node
        start, stop = lo * link.unit, hi * link.unit
        assert start.denominator == 1 and stop.denominator == 1
        attrs = _at(loop_attrs(node, ChunkedValue(node.outputs[0].name, link.axis)),
                    {LOOP_START: int(start), LOOP_STOP: int(stop)})
        inputs = list(node.inputs)
        if k == 0:  # slice the constants the axis comes from
            for s in node.dims()[0][link.axis].sources:
                c = node.inputs[s.input]
                index = [slice(None)] * c.rank
                index[s.axis] = slice(int(start * s.ratio), int(stop * s.ratio))
                inputs[s.input] = graph.add_constant(f"{c.name}_{name}", np.ascontiguousarray(c.data[tuple(index)]))
        else:
            inputs[[i for i, v in enumerate(node.inputs) if v is chain[k - 1].node.outputs[0]][0]] = value
        value = graph.add_node(node.op, inputs, attrs, name=f"{node.name}_{name}", before=split,
                               source=node.source).outputs[0]
    return value


def _at(attrs: dict, bounds: dict) -> dict:
    """``attrs`` with the loop's bounds replaced by numbers (the graph's own sizes stay)."""
    def sub(v):
        if isinstance(v, tuple):
            return tuple(sub(x) for x in v)
        if isinstance(v, sympy.Basic):
            return normalize(v.subs(bounds))
        return v
    return {k: sub(v) for k, v in attrs.items()}


def fold_splits(graph: Graph) -> Graph:
    """A copy of ``graph`` with every foldable split folded (``graph`` itself if none is)."""
    folds = [(s.name, chain) for s in graph.nodes if s.op.name == "split"
             and all(isinstance(n, int) for n in s.attrs["sizes"]) for chain in [_chain(s)] if chain is not None]
    if not folds:
        return graph
    g = graph.copy()
    for split_name, _ in folds:
        split = g.node(split_name)
        chain = _chain(split)  # the same chain, in the copy
        offset = 0
        for k, (size, out) in enumerate(zip(split.attrs["sizes"], split.outputs)):
            part = _part(g, split, chain, offset, offset + size, f"part{k}")
            g.replace_all_uses(out, part)
            offset += size
    g.dce()
    return g


@register_pass
@dataclass(frozen=True)
class FoldSplit(Pass):
    """Fold splits of fused projections into one projection per part (see the module docstring)."""

    name = "fold-split"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return fold_splits(graph)


__all__ = ["fold_splits"]
