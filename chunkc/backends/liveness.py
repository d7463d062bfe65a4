"""When each value dies in generated code: after its last reader, as the memory estimator assumes.

At the top level a chunk region is one step that reads its region inputs (so they
live through the whole loop); inside the loop, the slices and chunk temporaries
die after their last reader in the iteration.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..ir.graph import Graph, Node, Value
from ..passes.plan import ChunkRegion


def top_level_deaths(graph: Graph, steps: list, regions: Sequence[ChunkRegion],
                      values: Mapping[str, Value]) -> list[list[Value]]:
    """For each step, the node values (not graph outputs) whose last reader it is."""
    last: dict[Value, int] = {}
    produced_at: dict[Value, int] = {}
    for k, step in enumerate(steps):
        if isinstance(step, int):
            r = regions[step]
            for v in r.region_inputs(graph):
                last[v] = k
            for name in r.outputs:
                produced_at[values[name]] = k
        else:
            for v in step.inputs:
                last[v] = k
            for o in step.outputs:
                produced_at[o] = k
    keep = set(graph.outputs)
    dying: list[list[Value]] = [[] for _ in steps]
    for v, k in produced_at.items():  # values nobody reads die at once
        if v not in last and v not in keep:
            dying[k].append(v)
    for v, k in last.items():
        if v.producer is not None and v not in keep:
            dying[k].append(v)
    return dying


def inner_deaths(nodes: list[Node], sliced: list[Value], outputs: set[Value]) -> list[list[Value]]:
    """Inside one iteration: the slices and chunk temporaries whose last reader each node is."""
    last: dict[Value, int] = {}
    for k, n in enumerate(nodes):
        for v in n.inputs:
            last[v] = k
    local = set(sliced)
    for n in nodes:
        local.update(n.outputs)
    dying: list[list[Value]] = [[] for _ in nodes]
    for k, n in enumerate(nodes):
        for o in n.outputs:
            if o not in last:
                dying[k].append(o)  # unread (or written to its buffer only): free now
    for v, k in last.items():
        if v in local:
            dying[k].append(v)
    # slices never read would be odd, but free them with the first node anyway
    for v in sliced:
        if v not in last:
            dying[0].append(v)
    return dying


__all__ = ["top_level_deaths", "inner_deaths"]
