"""Reorder: move each region's hoisted nodes before its loop.

Within a span, nodes that do not depend on the chunked flow (the K and V
projections of an attention region, a causal mask) run once, before the loop;
the loop's nodes then stand contiguous in the schedule, which is what code
generation and memory estimation expect.
"""

from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph
from .plan import ChunkRegion
from .search import Candidate


def apply_regions(graph: Graph, chosen: list[tuple[Candidate, int]],
                  reuse: Callable[[Candidate], tuple] = lambda cand: ()) -> tuple[Graph, tuple[ChunkRegion, ...]]:
    """A reordered copy of ``graph`` and the regions over it, in schedule order (``reuse``:
    the (output, input) storage pairs of each candidate, see ChunkRegion.reuse)."""
    order: list[int] = []
    by_start = {c.start: (c, chunk) for c, chunk in chosen}
    i = 0
    n = len(graph.nodes)
    regions = []
    while i < n:
        if i in by_start:
            cand, chunk = by_start[i]
            order.extend(cand.hoisted)
            order.extend(cand.loop)
            regions.append(cand.to_region(graph, chunk, reuse(cand)))
            i = cand.end + 1
        else:
            order.append(i)
            i += 1
    new_graph = graph.reordered([graph.nodes[k].name for k in order]) if order != list(range(n)) else graph.copy()
    return new_graph, tuple(regions)
