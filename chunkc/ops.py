"""The builder API: every registered op as a function on Values.

    import chunkc
    from chunkc import ops as O
    g = chunkc.Graph("mlp")
    x = g.add_input("x", "f32", ("B", "L", 768))
    w = g.add_constant("w", np.zeros((3072, 768), np.float32))
    h = O.gelu(O.linear(x, w))
    g.set_outputs(O.softmax(h, axis=-1))

``O.<op>(*inputs, name=None, **attrs)`` appends a node to the inputs' graph and
returns its output (a tuple for multi-output ops).  Python numbers among the
inputs become 0-d constants of the other inputs' dtype.  Values also support
``+ - * / @ ** -``.
"""

from __future__ import annotations

import functools

import numpy as np

from .errors import IRError
from .ir.graph import Graph, Value
from .ir.registry import has_op


def apply(op: str, *args, name: str | None = None, **attrs):
    values = [a for a in args if isinstance(a, Value)]
    if not values:
        raise IRError(f"op {op}: at least one input must be a graph Value")
    graph: Graph = values[0].graph
    inputs = []
    for a in args:
        if isinstance(a, Value):
            inputs.append(a)
        elif isinstance(a, (int, float, bool, np.number, np.bool_)):
            inputs.append(scalar(graph, a, values[0].dtype))
        else:
            raise IRError(f"op {op}: input {a!r} is neither a Value nor a number")
    node = graph.add_node(op, inputs, attrs, name=name)
    return node.outputs[0] if len(node.outputs) == 1 else node.outputs


def scalar(graph: Graph, value, dtype) -> Value:
    """A 0-d constant; booleans stay bool, numbers take ``dtype`` when it is numeric."""
    if isinstance(value, (bool, np.bool_)):
        return graph.add_constant("scalar", np.asarray(bool(value)))
    if dtype.name == "bool":
        dt = np.dtype("float32")
    elif dtype.name == "bfloat16":
        dt = _bfloat16()
    else:
        dt = dtype.numpy
    if not np.issubdtype(dt, np.floating) and isinstance(value, (float, np.floating)) and dtype.name != "bfloat16":
        dt = np.dtype("float32")  # a float never truncates to an int constant
    return graph.add_constant("scalar", np.asarray(value, dtype=dt))


def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:
        raise IRError("a Python number next to a bf16 value needs the ml_dtypes package for a bf16 constant; "
                      "build the constant with graph.add_constant instead") from None
    return np.dtype(ml_dtypes.bfloat16)


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
