"""Scheduling for the chunk search: work that a node reads whole comes before work it slices.

A chunk region is a contiguous span of the schedule; inside it, nodes whose
output the loop needs whole (the keys and values of attention over a chunk of
queries) are hoisted and run unchunked before the loop.  When the exporter
scheduled them between the sliced work (queries, then keys, then values), no
other region can chunk them: they sit inside the attention region's span.

:func:`whole_inputs_first` reorders the schedule — a depth-first walk from the
outputs that visits, at every node, the producers of the inputs its dimension
record reads whole, when chunked along its sequence axis, before those it slices — so that such chains stand before
the chains that are sliced: each can then be a region of its own (the keys'
projection and rotary embedding chunked by rows, writing whole keys), and the
attention region starts where its sliced work starts.  Within each class the
exporter's order is kept.
"""

from __future__ import annotations

from ..ir.graph import Graph, Node


def _sliced_inputs(node: Node) -> set[int]:
    """Positions of the inputs sliced when ``node`` is chunked along its first carried axis of
    symbolic size (a sequence axis: the one a long input is chunked along), or along any
    carried axis when none is symbolic."""
    if not node.outputs:
        return set()
    flows = node.dims()[0]
    shape = node.outputs[0].shape
    carried = [a for a, f in enumerate(flows) if f.kind == "carry" and f.sources]
    long = [a for a in carried if not isinstance(shape[a], int)]
    return {s.input for a in (long[:1] or carried) for s in flows[a].sources}


def whole_inputs_first(graph: Graph) -> Graph:
    """``graph`` in a schedule where each node's wholly-read inputs are computed before its
    sliced ones (a copy; ``graph`` itself when the order does not change)."""
    position = {n: i for i, n in enumerate(graph.nodes)}
    order: list[Node] = []
    done: set[Node] = set()
    for root in sorted({v.producer for v in graph.outputs if v.producer is not None}, key=position.__getitem__):
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded:
                done.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            sliced = _sliced_inputs(node)
            producers = [(k in sliced, position[v.producer], v.producer) for k, v in enumerate(node.inputs)
                         if v.producer is not None and v.producer not in done]
            # pushed in reverse: whole-read producers are visited first, each class in schedule order
            for _, _, p in sorted(producers, key=lambda t: t[:2], reverse=True):
                stack.append((p, False))
    order += [n for n in graph.nodes if n not in done]  # nodes no output needs keep their place at the end
    if order == graph.nodes:
        return graph
    return graph.reordered([n.name for n in order])


__all__ = ["whole_inputs_first"]
