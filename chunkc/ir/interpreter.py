"""The reference interpreter: runs a graph with each op's NumPy reference,
freeing every value after its last use (so its live set is the schedule's)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ChunkcError
from .graph import Graph, Node, Value
from .liveness import node_deaths
from .reference import call_widened, needs_widening, small_ufunc_buffers
from .registry import concrete_attrs, has_symbolic_attrs


def run_node(node: Node, args: Sequence[Any], xp=np, bindings: Mapping[str, int] | None = None,
             attrs: Mapping[str, Any] | None = None) -> tuple:
    """Run one node's NumPy reference; ``attrs`` overrides the node's (already concrete) attributes."""
    if attrs is None:
        attrs = concrete_attrs(node.attrs, bindings or {}) if has_symbolic_attrs(node.attrs) else node.attrs
    out_dtypes = [o.dtype for o in node.outputs]
    try:
        if needs_widening(node.op, [v.dtype for v in node.inputs] + out_dtypes):
            out = call_widened(node.op.reference, xp, args, attrs, out_dtypes)
        else:
            out = node.op.reference(xp, *args, **attrs)
    except ChunkcError:
        raise
    except Exception as exc:  # name the node, keep the cause
        shapes = ", ".join(str(getattr(a, "shape", "?")) for a in args)
        raise ChunkcError(f"node {node.name} ({node.op.name}) failed on inputs of shapes {shapes}: "
                          f"{type(exc).__name__}: {exc}") from exc
    # NumPy ufuncs return scalars for 0-d arrays: keep every value an array
    return tuple(xp.asarray(o) for o in out) if isinstance(out, (tuple, list)) else (xp.asarray(out),)


def interpret(graph: Graph, *inputs, xp=np, on_node: Callable[[Node, dict], None] | None = None) -> list:
    """Run ``graph`` on ``inputs`` (arrays, in graph-input order); return its outputs."""
    bindings = graph.bind_sizes(inputs)  # checks ranks and solves symbolic sizes
    produced: dict[Node, list[tuple[str, Value, int]]] = {}  # sizes bound when their node runs
    for name, (value, axis) in graph.data_dependent_sizes().items():
        produced.setdefault(value.producer, []).append((name, value, axis))
    env: dict[Value, Any] = {}
    for v, a in zip(graph.inputs, inputs):
        env[v] = xp.asarray(a)
    for c in graph.constants:
        if c.data is None:
            raise ChunkcError(f"constant %{c.name} has no data (a shape-only graph from text); "
                              "load its weights with chunkc.load(path) or pass weights= to the parser")
        env[c] = xp.asarray(c.data)
    with small_ufunc_buffers(xp):
        for node, dying in zip(graph.nodes, node_deaths(graph)):
            results = run_node(node, [env[v] for v in node.inputs], xp, bindings)
            for o, r in zip(node.outputs, results):
                env[o] = r
            for name, value, axis in produced.get(node, ()):
                bindings[name] = int(env[value].shape[axis])
            if on_node is not None:
                on_node(node, env)
            for v in dying:
                env.pop(v, None)
    return [env[v] for v in graph.outputs]
