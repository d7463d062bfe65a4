"""Reorder: move each region's hoisted nodes before its loop.

Within a span, nodes that do not depend on the chunked flow (the K and V
projections of an attention region, a causal mask) run once, before the loop;
the loop's nodes then stand contiguous in the schedule, which is what code
generation and memory estimation expect.

Within a loop, work whose outputs wait for a later reader is moved to just before
it when that lowers the iteration's peak (``late_loop_order``): on a UNet's
recomputing loops, an up-sampler convolution computed first and read only after
a long recomputed chain held its chunk beside that chain's peak.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Collection, Mapping

from ..ir.graph import Graph, Value
from .plan import ChunkRegion
from .search import Candidate


def apply_regions(graph: Graph, chosen: list[tuple[Candidate, int]],
                  reuse: Callable[[Candidate], tuple] = lambda cand: (),
                  sizes: Mapping[str, int] | None = None) -> tuple[Graph, tuple[ChunkRegion, ...]]:
    """A reordered copy of ``graph`` and the regions over it, in schedule order (``reuse``:
    the (output, input) storage pairs of each candidate, see ChunkRegion.reuse).  With
    ``sizes``, each loop's nodes are ordered by :func:`late_loop_order`."""
    order: list[int] = []
    by_start = {c.start: (c, chunk) for c, chunk in chosen}
    i = 0
    n = len(graph.nodes)
    regions = []
    while i < n:
        if i in by_start:
            cand, chunk = by_start[i]
            order.extend(cand.hoisted)
            pairs = reuse(cand)
            region = cand.to_region(graph, chunk, pairs)
            # a loop writing an output over an input's storage reads each input row before its
            # output row is written: its order stays
            loop = list(cand.loop) if sizes is None or pairs else late_loop_order(graph, cand.loop, cand.outputs, sizes)
            if loop != list(cand.loop):
                region = dataclasses.replace(region, nodes=tuple(graph.nodes[k].name for k in loop))
            order.extend(loop)
            regions.append(region)
            i = cand.end + 1
        else:
            order.append(i)
            i += 1
    new_graph = graph.reordered([graph.nodes[k].name for k in order]) if order != list(range(n)) else graph.copy()
    return new_graph, tuple(regions)


def late_loop_order(graph: Graph, loop: Collection[int], outputs: Collection[Value],
                    sizes: Mapping[str, int]) -> list[int]:
    """The schedule positions ``loop`` (one loop's nodes, in schedule order), reordered:
    a node read later in the loop moves, with the loop nodes only it reads (its cone), to
    just before its first reader there, when

    - no value of the cone is a loop output (``outputs``: written into its buffer where it
      is made) and every other loop value the cone reads is read again at or after the new
      place (a value made before the loop is live throughout): no chunk lives longer; and
    - the work it jumps is the heavier (Sethi-Ullman): the peak of the cone beside what the
      jumped work leaves for later readers is below the jumped work's peak beside the cone's
      outputs, each node's weight being its outputs and the loop values it reads, whole
      (``sizes``), as a stand-in for its chunk's.

    Nodes are tried from the last; the order stays topological."""
    nodes = graph.nodes
    order = list(loop)
    producer: dict[Value, int] = {v: i for i in loop for v in nodes[i].outputs}
    readers: dict[int, set[int]] = {i: set() for i in loop}  # loop readers of a loop node's outputs
    for i in loop:
        for v in nodes[i].inputs:
            if v in producer:
                readers[producer[v]].add(i)
    outputs = set(outputs)
    fixed = {i for i in loop if any(v in outputs for v in nodes[i].outputs)}
    nbytes: dict[Value, int] = {}

    def size(v: Value) -> int:
        if v not in nbytes:
            nbytes[v] = v.type.nbytes(sizes)
        return nbytes[v]

    def weight(i: int) -> int:
        return sum(size(v) for v in nodes[i].outputs) + sum(size(v) for v in nodes[i].inputs if v in producer)

    for node in reversed(list(loop)):
        if not readers[node] or node in fixed:
            continue
        pos = {k: j for j, k in enumerate(order)}
        target = min(pos[r] for r in readers[node])
        if target == pos[node] + 1:
            continue
        cone = _cone(node, nodes, producer, readers, fixed)
        outside = {producer[v] for c in cone for v in nodes[c].inputs if v in producer and producer[v] not in cone}
        if any(p in fixed or not any(pos[r] >= target for r in readers[p] - cone) for p in outside):
            continue
        jumped = [k for k in order[min(pos[c] for c in cone):target] if k not in cone]
        cone_peak = max(weight(c) for c in cone)
        cone_out = sum(size(v) for v in nodes[node].outputs)
        jumped_peak = max(weight(k) for k in jumped)
        jumped_out = sum(size(v) for k in jumped if k in fixed or any(pos[r] >= target for r in readers[k])
                         for v in nodes[k].outputs)
        if max(jumped_peak, jumped_out + cone_peak) >= max(cone_peak, cone_out + jumped_peak):
            continue
        rest = [k for k in order if k not in cone]
        at = rest.index(order[target])
        order = rest[:at] + [k for k in order if k in cone] + rest[at:]
    return order


def _cone(node: int, nodes, producer: Mapping[Value, int], readers: Mapping[int, set[int]],
          fixed: Collection[int]) -> set[int]:
    """``node`` and the loop nodes whose outputs only it and the rest of the set read."""
    cone = {node}
    stack = [node]
    while stack:
        for v in nodes[stack.pop()].inputs:
            p = producer.get(v)
            if p is not None and p not in cone and p not in fixed and readers[p] <= cone:
                cone.add(p)
                stack.append(p)
    return cone
