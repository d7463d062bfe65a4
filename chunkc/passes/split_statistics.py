"""Split normalizations that mix space into accumulating statistics and an elementwise apply.

group_norm takes its statistics over its spatial axes, so no chunk loop runs
through it: a UNet's resnet block (group_norm -> SiLU -> conv) cannot be chunked
along space.  An op whose record has ``split_statistics`` can be rebuilt as a
statistics op that *accumulates* over those axes (chunkc.ir.dims.Accumulation:
one chunk loop keeps the small statistics whole and merges them slice by slice)
and an op that is elementwise along them (a later loop reads the statistics
whole).  ``autochunk`` splits every such op before its search and fuses back,
in the plan it returns, each pair that no region runs (the fused kernel is the
faster one); it is also the pass ``split-statistics``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from ..ir.graph import Graph
from .manager import Pass, PassContext, register_pass
from .plan import Plan


@dataclass(frozen=True)
class StatisticsSplit:
    """One split: the fused node's op, attributes and name, and the two nodes replacing it."""

    op: str
    attrs: tuple[tuple[str, object], ...]
    name: str
    statistics: str  # node computing the statistics
    apply: str  # node applying them (or finishing the statistics node's result)
    inputs: tuple[int, ...]  # the input positions of node ``inputs_from`` that were the fused node's inputs
    inputs_from: str = "apply"  # "apply" or "statistics": which node ``inputs`` index


def split_statistics(graph: Graph, record: str = "split_statistics") -> tuple[Graph, tuple[StatisticsSplit, ...]]:
    """A copy of ``graph`` with every op split whose record has ``record`` (``split_statistics``,
    or ``split_accumulating``: the splits that cost time), ``graph`` itself if none is."""
    if not any(getattr(n.op, record) is not None for n in graph.nodes):
        return graph, ()
    g = graph.copy()
    splits = []
    for node in [n for n in g.nodes if getattr(n.op, record) is not None]:
        made = getattr(node.op, record)(g, node)
        if made is None:
            continue
        stats, apply, positions = made[:3]
        inputs_from = made[3] if len(made) > 3 else "apply"
        splits.append(StatisticsSplit(node.op.name, tuple(node.attrs.items()), node.name, stats.name, apply.name,
                                      positions, inputs_from))
        g.replace_all_uses(node.outputs[0], apply.outputs[0])
        g.erase(node)
    return (g, tuple(splits)) if splits else (graph, ())


def fuse_unused_splits(plan: Plan, splits: tuple[StatisticsSplit, ...], estimate) -> Plan:
    """``plan`` with each split that no region runs, and whose values no region names (a
    region may slice the apply pass's output, computed before its loop), fused back into its
    op, when the estimated peak (``estimate(graph, plan) -> bytes``) stays within the plan's budget."""
    in_region = {name for r in plan.regions for name in r.nodes}
    named = {c.value for r in plan.regions for c in r.chunked}
    nodes = {n.name: n for n in plan.graph.nodes}

    def unused_node(name: str) -> bool:
        return name in nodes and name not in in_region and not any(o.name in named for o in nodes[name].outputs)

    unused = [s for s in splits if unused_node(s.statistics) and unused_node(s.apply)]
    if not unused:
        return plan
    g = plan.graph.copy()
    for s in unused:
        apply = g.node(s.apply)
        reads = g.node(s.statistics if s.inputs_from == "statistics" else s.apply)
        fused = g.add_node(s.op, [reads.inputs[k] for k in s.inputs], dict(s.attrs), name=s.name, before=apply,
                           source=apply.source)
        g.replace_all_uses(apply.outputs[0], fused.outputs[0])
        g.erase(apply)
        g.erase(g.node(s.statistics))
    trial = replace(plan, graph=g, estimated_peak_bytes=None, notes=list(plan.notes))
    peak = estimate(g, trial)
    if plan.budget_bytes is not None and peak > plan.budget_bytes:
        return plan
    trial.estimated_peak_bytes = peak
    trial.notes.append(f"fused back {len(unused)} statistics split(s) no region runs: "
                       + ", ".join(s.name for s in unused))
    return trial


@register_pass
@dataclass(frozen=True)
class SplitStatistics(Pass):
    """Split ops whose statistics mix space (see the module docstring)."""

    name = "split-statistics"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return split_statistics(graph)[0]


__all__ = ["StatisticsSplit", "split_statistics", "fuse_unused_splits"]
