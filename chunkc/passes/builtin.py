"""The built-in passes, available by name in pipelines and ``chunkc opt``."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from ..ir.verifier import verify
from .manager import Pass, PassContext, register_pass
from .rewrite import rebuild


@register_pass
@dataclass(frozen=True)
class Verify(Pass):
    name = "verify"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        verify(graph)
        return graph


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Drop nodes none of whose outputs reach a graph output."""

    name = "dce"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return dead_code_elimination(graph)


def dead_code_elimination(graph: Graph) -> Graph:
    live = set(graph.outputs)
    needed = set()
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs):
            needed.add(node)
            live.update(node.inputs)
    if len(needed) == len(graph.nodes):
        return graph
    return rebuild(graph, lambda n, i, g: None, keep=lambda n: n in needed)


@register_pass
@dataclass(frozen=True)
class ExplicitCausalMask(Pass):
    """Give causal attention an explicit mask, so its query axis can be chunked.

    ``is_causal`` masks by absolute position, which a slice of the queries no
    longer knows; an explicit lower-triangular mask is sliced with the queries.
    """

    name = "explicit-causal-mask"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return explicit_causal_mask(graph)


def _causal_rule(node, inputs, g: Graph):
    if node.op.name != "scaled_dot_product_attention" or not node.attrs.get("is_causal") or len(inputs) != 3:
        return None
    q, k, _ = inputs
    lq, lk = q.shape[-2], k.shape[-2]
    ones = g.add_node("full", [], {"shape": (lq, lk), "value": True, "dtype": "bool"}, name=f"{node.name}_ones").outputs[0]
    mask = g.add_node("tril", [ones], {"diagonal": 0}, name=f"{node.name}_causal").outputs[0]
    attrs = dict(node.attrs, is_causal=False)
    return g.add_node(node.op, list(inputs) + [mask], attrs, name=node.name,
                      output_names=[o.name for o in node.outputs]).outputs


def explicit_causal_mask(graph: Graph) -> Graph:
    if not any(n.op.name == "scaled_dot_product_attention" and n.attrs.get("is_causal") for n in graph.nodes):
        return graph
    return rebuild(graph, _causal_rule)


@register_pass
@dataclass(frozen=True)
class EstimateMemory(Pass):
    """Store the memory report in ``ctx.analyses['memory']`` (the graph is unchanged)."""

    name = "estimate-memory"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        from .memory import estimate_memory
        ctx.analyses["memory"] = estimate_memory(graph, plan=ctx.plan if ctx.plan and ctx.plan.graph is graph else None,
                                                 sizes=ctx.sizes)
        return graph


@register_pass
@dataclass(frozen=True)
class AutoChunk(Pass):
    """Choose chunk regions under ``budget`` (bytes, or a fraction of the unchunked peak)."""

    name = "autochunk"
    budget: float = 0.5
    beam: int = 3
    ends_window: int = 48
    max_region_nodes: int = 320

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        from .autochunk import autochunk
        plan = autochunk(graph, self.budget, sizes=ctx.sizes, beam=self.beam, ends_window=self.ends_window,
                         max_region_nodes=self.max_region_nodes, progress=False)
        ctx.plan = plan
        return plan.graph
