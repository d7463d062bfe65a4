"""Rebuild a graph node by node, letting a rule replace any node.

    def rule(node, inputs, g):          # inputs: the node's inputs in the new graph
        if node.op.name == "gelu":      # a pattern keyed by op, as in MLIR rewrites
            return (O.mul(inputs[0], O.sigmoid(inputs[0] * 1.702)),)
        return None                     # keep the node as it is

    new_graph = rebuild(graph, rule)

The new graph keeps names (fresh ones for new nodes) and the schedule order,
with replacement nodes placed where the replaced node was.  Every node keeps
its ``source`` (where in the model it comes from); the nodes a rule creates
without a source of their own get the source of the node they replace.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..ir.graph import Graph, Node, Value

Rule = Callable[[Node, Sequence[Value], Graph], Sequence[Value] | None]


def copy_leaves(graph: Graph) -> tuple[Graph, dict[Value, Value]]:
    """A new graph of ``graph``'s name holding its inputs and constants (a constant without
    data keeps its type), and the map from ``graph``'s to them: where a rebuild starts."""
    g = Graph(graph.name)
    vmap: dict[Value, Value] = {}
    for v in graph.inputs:
        vmap[v] = g.add_input(v.name, v.dtype, v.shape)
    for v in graph.constants:
        vmap[v] = g.add_constant(v.name, v.data, type=v.type) if v.data is None else g.add_constant(v.name, v.data)
    return g, vmap


def rebuild(graph: Graph, rule: Rule) -> Graph:
    """Copy ``graph``; ``rule`` may return replacement outputs for a node."""
    g, vmap = copy_leaves(graph)
    for node in graph.nodes:
        inputs = [vmap[v] for v in node.inputs]
        first_new = len(g.nodes)
        replaced = rule(node, inputs, g)
        if replaced is None:
            new = g.add_node(node.op, inputs, node.attrs, name=node.name,
                             output_names=[o.name for o in node.outputs], source=node.source)
            replaced = new.outputs
        for made in g.nodes[first_new:]:
            if made.source is None:
                made.source = node.source
        if len(replaced) != len(node.outputs):
            raise ValueError(f"rewrite of node {node.name} returned {len(replaced)} values for {len(node.outputs)} outputs")
        vmap.update(zip(node.outputs, replaced))
    g.set_outputs(*[vmap[v] for v in graph.outputs])
    return g
