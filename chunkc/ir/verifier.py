"""The verifier: checks a graph's invariants; run after every pass in tests."""

from __future__ import annotations

from ..errors import IRError
from .graph import Graph
from .sizes import sizes_equal


def verify(graph: Graph) -> None:
    """Raise IRError naming the first node that breaks an invariant."""
    where = f"graph {graph.name}"
    defined = set()
    names: set[str] = set()
    for v in list(graph.inputs) + list(graph.constants):
        if v.name in names:
            raise IRError(f"{where}: value name %{v.name} is defined twice")
        if v.producer is not None or v.kind not in ("input", "constant"):
            raise IRError(f"{where}: input or constant %{v.name} has a producer")
        if v.graph is not graph:
            raise IRError(f"{where}: %{v.name} belongs to another graph")
        names.add(v.name)
        defined.add(v)
    for v in graph.constants:
        if v.data is not None and (tuple(v.data.shape) != tuple(v.shape) or v.data.dtype.name != v.dtype.value[2]):
            raise IRError(f"{where}: constant %{v.name} has data that does not match its type {v.type}")
    node_names: set[str] = set()
    for node in graph.nodes:
        at = f"{where}: node {node.name} ({node.op.name})"
        if node.name in node_names:
            raise IRError(f"{at}: node name used twice")
        node_names.add(node.name)
        if node.graph is not graph:
            raise IRError(f"{at}: belongs to another graph")
        for i, v in enumerate(node.inputs):
            if v not in defined:
                raise IRError(f"{at}: input {i} %{v.name} is used before it is defined (schedule is not topological)")
        node.op.check_arity(len(node.inputs), node.name)
        try:
            types = node.op.infer([v.type for v in node.inputs], node.attrs)
        except IRError as exc:
            raise IRError(f"{at}: {exc}") from None
        if len(types) != len(node.outputs):
            raise IRError(f"{at}: has {len(node.outputs)} outputs, its op infers {len(types)}")
        for o, t in zip(node.outputs, types):
            if o.type.dtype != t.dtype or o.rank != t.rank or not all(sizes_equal(a, b) for a, b in zip(o.shape, t.shape)):
                raise IRError(f"{at}: output %{o.name} is typed {o.type} but its op infers {t}")
            if o.producer is not node:
                raise IRError(f"{at}: output %{o.name} names another producer")
            if o.name in names:
                raise IRError(f"{at}: value name %{o.name} is defined twice")
            names.add(o.name)
            defined.add(o)
        record = node.dims()
        if len(record) != len(node.outputs):
            raise IRError(f"{at}: its dimension record covers {len(record)} outputs, not {len(node.outputs)}")
        for o, flows in zip(node.outputs, record):
            if len(flows) != o.rank:
                raise IRError(f"{at}: its dimension record has {len(flows)} axes for output {o.type}")
            for flow in flows:
                for s in flow.sources:
                    if not (0 <= s.input < len(node.inputs)) or not (0 <= s.axis < node.inputs[s.input].rank):
                        raise IRError(f"{at}: its dimension record names a missing input axis {s}")
    for v in graph.outputs:
        if v not in defined:
            raise IRError(f"{where}: output %{v.name} is not defined in the graph")
