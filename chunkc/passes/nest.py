"""Nested chunk loops: an outer loop over rows with inner loops that accumulate over another axis.

A loop over query rows reads attention's keys and values whole: they have no query axis.
Split over its keys (chunkc.ir.ops.attention_keys), attention accumulates over them, so
inside each outer iteration an *inner* loop (ChunkRegion.inner) can run over key rows,
recomputing each key chunk from the layer input, and merge the partial results into the
outer chunk's queries.  No L x hidden tensor of keys or values exists at any time.

:func:`nest_loops` builds such a region from the records alone: in a loop that reads the
input 0 of a node *whole* where that node's record accumulates over an axis of it, the
node becomes the end of an inner loop; the values it (and its record's partners) reads are
recomputed in that inner loop from the values held anyway (graph inputs, weights, values
read after the loop), by a copy of their producer chain placed right before the node, so
that each inner loop has chains of its own.  A causal record (``Accumulation.offset_attr``)
lets the inner loop stop at the outer chunk's last row (``ChunkRegion.stop_at``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from ..errors import ChunkcError
from ..ir.dims import LOOP_STOP
from ..ir.graph import Graph, Node, Value
from ..ir.sizes import Size, sizes_equal
from .accumulate import accumulating_end, sliced_axes
from .plan import ChunkRegion, Plan
from .search import GraphIndex, walk_regions

MAX_CHAIN = 16  # nodes of one recomputed chain, at most


def accumulating_reads(node: Node, chunk: dict[Value, tuple[int, int]]) -> tuple[int, object] | None:
    """(axis, accumulation) when ``node`` reads its input 0 whole in a loop slicing ``chunk``
    (value -> (axis, unit)) and its record accumulates over an axis of that input, else None."""
    if not node.inputs or node.inputs[0] in chunk or not node.outputs or node.outputs[0] not in chunk:
        return None
    x = node.inputs[0]
    for axis in range(x.rank):
        how = accumulating_end(node, axis)
        if how is not None:
            return axis, how
    return None


def _chain(graph: Graph, roots: Sequence[Value], held_after: int) -> list[Node] | None:
    """The producers of ``roots`` back to values held anyway (graph inputs, weights, values read
    at or after schedule position ``held_after``), in schedule order; None when a node of it
    must not be recomputed or it is longer than MAX_CHAIN."""
    position = {n: i for i, n in enumerate(graph.nodes)}
    last = {}
    for n in graph.nodes:
        for v in n.inputs:
            last[v] = position[n]
    outputs = set(graph.outputs)
    chain: set[Node] = set()
    stack = [v.producer for v in roots if v.producer is not None]
    while stack:
        node = stack.pop()
        if node in chain:
            continue
        if not node.op.recompute or len(chain) >= MAX_CHAIN:
            return None
        chain.add(node)
        for u in node.inputs:
            if u.producer is not None and u not in outputs and last.get(u, -1) < held_after:
                stack.append(u.producer)
    return sorted(chain, key=position.__getitem__)


def _copy_chain(graph: Graph, chain: list[Node], reader: Node, positions: Sequence[int], tag: str) -> list[str]:
    """Copies of ``chain`` placed right before ``reader``, which reads the copies at ``positions``;
    the copies' names."""
    made: dict[Value, Value] = {}
    names = []
    for node in chain:
        copy = graph.add_node(node.op, [made.get(v, v) for v in node.inputs], dict(node.attrs),
                              name=f"{node.name}_{tag}", before=reader, source=node.source)
        names.append(copy.name)
        for a, b in zip(node.outputs, copy.outputs):
            made[a] = b
    for p in positions:
        v = reader.inputs[p]
        if v in made:
            graph.set_input(reader, p, made[v])
    return names


def nest_loops(graph: Graph, end: str, axis: int, chunk: Size, inner_chunk: Size) -> Plan:
    """A plan of one region ending at node ``end`` that slices axis ``axis`` of its output
    (the longest such region), with an inner loop at each node that reads its input 0 whole
    and accumulates over an axis of it (see the module docstring).  ``chunk``: the outer
    loop's units per iteration; ``inner_chunk``: each inner loop's."""
    g = graph.copy()
    idx = GraphIndex(g)
    cands = list(walk_regions(idx, g.position(g.node(end)), axis))
    if not cands:
        raise ChunkcError(f"nest_loops: no chunk loop ends at node {end} slicing axis {axis} of its output")
    outer = cands[-1]
    chunked = outer.axes
    loop_nodes = [g.nodes[i] for i in outer.loop]
    ends = [(n, *a) for n in loop_nodes if (a := accumulating_reads(n, chunked)) is not None]
    if not ends:
        raise ChunkcError(f"nest_loops: the loop ending at node {end} reads no value whole that a node of it "
                          "accumulates over; nothing to nest")
    last_end = max(g.position(n) for n, _, _ in ends)
    names: list[str] = []
    made: dict[str, list[str]] = {}  # accumulating node -> its chain's copies
    for j, (node, key_axis, how) in enumerate(ends):
        positions = list(sliced_axes(key_axis, how))
        chain = _chain(g, [node.inputs[p] for p in positions], last_end + 1)
        if chain is None:
            raise ChunkcError(f"nest_loops: the inputs of node {node.name} ({node.op.name}) cannot be recomputed "
                              f"in an inner loop (a node that must not be recomputed, or more than {MAX_CHAIN})")
        made[node.name] = _copy_chain(g, chain, node, positions, f"inner{j}")
        names.append(node.name)
    g.dce()
    # the outer loop on the rewritten graph: the copies are read whole, so the walk moves them
    # before the loop; they go back in, right before their readers, as the inner loops' nodes
    idx = GraphIndex(g)
    cands = [c for c in walk_regions(idx, g.position(g.node(end)), axis)
             if all(g.position(g.node(n)) in c.loop for n in names)]
    if not cands:
        raise ChunkcError(f"nest_loops: no loop ending at node {end} runs {', '.join(names)}")
    outer = cands[-1]
    copies = {g.node(c) for name in names for c in made[name] if g.has_name(c)}
    loop = [g.nodes[i] for i in outer.loop]
    order: list[Node] = []
    inner_spans: list[list[Node]] = []
    for n in loop:
        if n.name in names:
            span = [g.node(c) for c in made[n.name] if g.has_name(c)]
            inner_spans.append(span + [n])
            order.extend(span)
        order.append(n)
    hoisted = [g.nodes[i] for i in outer.hoisted if g.nodes[i] not in copies]
    before = [n for n in g.nodes[:outer.start] if n not in copies]
    after = list(g.nodes[outer.end + 1:])
    g2 = g.reordered([n.name for n in before + hoisted + order + after])
    region = outer.to_region(g, chunk)
    inner = []
    whole = set(region.whole_reads)
    for span in inner_spans:
        r = _inner_region(g2, [n.name for n in span], inner_chunk, region)
        inner.append(r)
        for name in r.nodes:  # a value both loops slice along one axis: the inner loop slices all of it
            node = g2.node(name)
            for p, v in enumerate(node.inputs):
                a, b = region.axis_of(v.name), r.axis_of(v.name)
                if a is not None and b is not None and a.axis == b.axis:
                    whole.add((name, p))
    nodes = tuple(n.name for n in order)
    region = replace(region, nodes=nodes, whole_reads=tuple(sorted(whole)), inner=tuple(inner))
    return Plan(graph=g2, regions=(region,))


def _inner_region(g: Graph, names: list[str], chunk: Size, outer: ChunkRegion) -> ChunkRegion:
    """The inner loop over nodes ``names`` (a recomputed chain, then the accumulating node)."""
    end = g.node(names[-1])
    idx = GraphIndex(g)
    for key_axis in range(end.inputs[0].rank):
        if accumulating_end(end, key_axis) is None:
            continue
        for cand in walk_regions(idx, g.position(end), key_axis, accumulate=True):
            if sorted(g.nodes[i].name for i in cand.loop) == sorted(names) and list(cand.accumulators) == [end.outputs[0]]:
                r = cand.to_region(g, chunk)
                how = accumulating_end(end, key_axis)
                stop = None
                if how.offset_attr is not None and _rows_match(end, key_axis, r, outer):
                    stop = LOOP_STOP  # keys past the outer chunk's last query row attend none of it
                return replace(r, stop_at=stop)
    raise ChunkcError(f"nest_loops: no inner loop runs exactly {', '.join(names)}")


def _rows_match(node: Node, key_axis: int, inner: ChunkRegion, outer: ChunkRegion) -> bool:
    """Whether a placed accumulation (its record's ``offset_attr``: key j is used by row i when
    j <= i, counted from the offsets) may stop at the outer chunk's stop: the node's position
    attributes are all 0, and both loops count the same rows in the same units."""
    if any(node.attrs.get(a, 0) != 0 for a in node.op.size_attrs):
        return False
    c_in = inner.axis_of(node.inputs[0].name)
    c_out = outer.axis_of(node.outputs[0].name)
    return c_in is not None and c_out is not None and c_in.axis == key_axis and c_in.unit == c_out.unit and \
        sizes_equal(inner.extent, outer.extent)


__all__ = ["nest_loops", "accumulating_reads"]
