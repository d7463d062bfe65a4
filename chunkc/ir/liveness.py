"""Liveness: when each value dies in a sequence of steps — the one rule every consumer shares.

A step reads some values and writes some; a value dies right after the last
step that reads it, or right after the step that writes it when nothing reads
it.  Values in ``keep`` (graph outputs) never die, and neither do values that
the steps do not own (graph inputs, weights, values from an enclosing scope).

The reference interpreter frees by it, the code generators emit ``del`` by it
(at the top level, where a chunk loop is one step, and inside each loop), and
the memory estimator and the chunk search read the same last uses
(:func:`last_use`).
"""

from __future__ import annotations

from typing import Callable, Collection, Iterable, Sequence

from .graph import Graph, Value

Step = tuple[Iterable[Value], Iterable[Value]]  # (values read, values written)


def deaths(steps: Sequence[Step], keep: Collection[Value] = (),
           owned: Callable[[Value], bool] = lambda v: v.producer is not None) -> list[list[Value]]:
    """For each step, the owned values that die right after it (in first-seen order)."""
    last: dict[Value, int] = {}
    written: dict[Value, int] = {}
    for k, (reads, writes) in enumerate(steps):
        for v in reads:
            last[v] = k
        for v in writes:
            written.setdefault(v, k)
    out: list[list[Value]] = [[] for _ in steps]
    for v, k in written.items():
        if v not in last and v not in keep and owned(v):
            out[k].append(v)
    for v, k in last.items():
        if v not in keep and owned(v):
            out[k].append(v)
    return out


def node_deaths(graph: Graph) -> list[list[Value]]:
    """For each node of ``graph``'s schedule, the values that die right after it."""
    return deaths([(n.inputs, n.outputs) for n in graph.nodes], keep=set(graph.outputs))


def last_use(graph: Graph) -> dict[Value, int]:
    """Schedule position of each value's last reader: ``len(graph.nodes)`` for graph
    outputs (they outlive the call), -1 for a value nobody reads."""
    out = {v: -1 for v in graph.values()}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            out[v] = i
    end = len(graph.nodes)
    for v in graph.outputs:
        out[v] = end
    return out


__all__ = ["deaths", "node_deaths", "last_use", "Step"]
