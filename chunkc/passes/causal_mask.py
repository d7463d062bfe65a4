"""The explicit-causal-mask rewrite: causal attention gets a mask its query axis can be sliced with.

``is_causal`` masks by absolute position, which a slice of the queries no
longer knows; an explicit lower-triangular mask is sliced with the queries.
``autochunk`` applies it before its search; it is also a pass of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from .manager import Pass, PassContext, register_pass
from .rewrite import rebuild


@register_pass
@dataclass(frozen=True)
class ExplicitCausalMask(Pass):
    """Give causal attention an explicit mask, so its query axis can be chunked."""

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
    """A copy of ``graph`` whose causal attention nodes take an explicit mask (``graph`` itself when
    there are none)."""
    if not any(n.op.name == "scaled_dot_product_attention" and n.attrs.get("is_causal") for n in graph.nodes):
        return graph
    return rebuild(graph, _causal_rule)


__all__ = ["ExplicitCausalMask", "explicit_causal_mask"]
