"""The builder API: every registered op as a function on Values.

    import chunkc
    from chunkc import ops as O
    g = chunkc.Graph("mlp")
    x = g.add_input("x", "f32", ("B", "L", 768))
    w = g.add_constant("w", np.zeros((3072, 768), np.float32))
    h = O.gelu(O.linear(x, w))
    g.set_outputs(O.softmax(h, axis=-1))

``O.<op>(*inputs, name=None, graph=None, **attrs)`` adds a node to the inputs'
graph (or to ``graph``, for ops without tensor inputs such as ``arange``) and
returns its output (a tuple for multi-output ops).  Python numbers among the
inputs become shared 0-d constants of the other inputs' dtype.  Values also
support ``+ - * / @ ** -``.  All of it goes through :meth:`Graph.op`.
"""

from __future__ import annotations

import functools

from .errors import IRError
from .ir.graph import Graph, Value
from .ir.registry import has_op


def apply(op: str, *args, name: str | None = None, graph: Graph | None = None, **attrs):
    if graph is None:
        graph = next((a.graph for a in args if isinstance(a, Value)), None)
        if graph is None:
            raise IRError(f"op {op}: no input is a graph Value to take the graph from; pass graph=, "
                          f"as in chunkc.ops.{op}(..., graph=g)")
    return graph.op(op, *args, name=name, **attrs)


def transpose(x: Value, dim0: int, dim1: int, name: str | None = None) -> Value:
    perm = list(range(x.rank))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return apply("permute", x, dims=tuple(perm), name=name)


def __getattr__(op: str):
    if op.startswith("__") or not has_op(op):
        raise AttributeError(f"chunkc.ops has no op {op!r}")
    fn = functools.partial(apply, op)
    fn.__doc__ = f"Append a {op!r} node; see chunkc.ir.registry.lookup({op!r}).doc"
    return fn
