"""Checks that a plan can be emitted as chunk loops; errors name the region and the value."""

from __future__ import annotations

from typing import Mapping, Sequence

import sympy

from ..errors import ChunkcError
from ..ir.graph import Graph, Value
from ..ir.sizes import format_size, sizes_equal
from ..passes.plan import ChunkRegion


def check_same_signature(graph: Graph, planned: Graph) -> None:
    if graph is planned:
        return
    a = [v.name for v in graph.inputs]
    b = [v.name for v in planned.inputs]
    if a != b or len(graph.outputs) != len(planned.outputs):
        raise ChunkcError(f"plan was made for a graph with inputs {b} and {len(planned.outputs)} outputs, "
                          f"not graph {graph.name} with inputs {a} and {len(graph.outputs)} outputs")


def check_regions(graph: Graph, regions: Sequence[ChunkRegion], values: Mapping[str, Value]) -> None:
    """Refuse plans the loop emission cannot honour, naming the region and value at fault."""
    position = {n.name: k for k, n in enumerate(graph.nodes)}
    users = graph.users()
    graph_outputs = set(graph.outputs)
    for i, r in enumerate(regions):
        where = f"plan region {i} ({r.describe() if r.nodes else 'empty'})"
        if not r.nodes:
            raise ChunkcError(f"{where}: a region needs at least one node")
        for name in r.nodes:
            if name not in position:
                raise ChunkcError(f"{where}: node {name} is not in graph {graph.name}")
        pos = sorted(position[name] for name in r.nodes)
        if pos != list(range(pos[0], pos[0] + len(pos))):
            raise ChunkcError(f"{where}: its nodes are not contiguous in the schedule; reorder the graph first")
        inside = set(r.nodes)
        for c in r.chunked:
            v = values.get(c.value)
            if v is None:
                raise ChunkcError(f"{where}: chunked value %{c.value} is not in the graph")
            if not 0 <= c.axis < v.rank:
                raise ChunkcError(f"{where}: axis {c.axis} of %{c.value} {v.type} is out of range")
            if c.unit < 1:
                raise ChunkcError(f"{where}: %{c.value} has unit {c.unit}; units are positive")
            if not sizes_equal(v.shape[c.axis], sympy.sympify(r.extent) * c.unit):
                raise ChunkcError(f"{where}: %{c.value} {v.type} axis {c.axis} has size {format_size(v.shape[c.axis])}, "
                                  f"but the region covers {format_size(r.extent)} units of {c.unit}")
        chunked = {c.value for c in r.chunked}
        for n in graph.nodes:
            if n.name not in inside:
                continue
            for o in n.outputs:
                if o.name not in chunked:
                    if not users[o] and o not in graph_outputs:
                        continue  # an output nothing reads (one half of a split): computed per chunk, dropped
                    raise ChunkcError(f"{where}: node {n.name} ({n.op.name}) output %{o.name} is not chunked; "
                                      "work that does not depend on the chunk must be moved before the loop")
                needed = o in graph_outputs or any(u.name not in inside for u in users[o])
                if needed and o.name not in r.outputs:
                    raise ChunkcError(f"{where}: %{o.name} is read after the loop but is not a region output")
        for name in r.outputs:
            v = values.get(name)
            if v is None or v.producer is None or v.producer.name not in inside:
                raise ChunkcError(f"{where}: output %{name} is not produced inside the region")


__all__ = ["check_same_signature", "check_regions"]
