"""Hypothesis strategies that build random valid graphs through the builder API.

``random_graphs(max_nodes=12, symbolic=True)`` draws a :class:`RandomGraph`:
a graph (a DAG of elementwise ops, matmul/linear, reductions with and without
keepdim, softmax, reshapes that split and merge axes, permutes, slices, and
concat/split when those ops are registered) over symbolic sizes ``B`` and
``L`` (or static ones), plus concrete values for the symbols and a seeded
factory of input arrays::

    @given(random_graphs())
    def test_something(case):
        outs = chunkc.interpret(case.graph, *case.inputs())

Values stay finite and moderate (inputs in [-1, 1], weights scaled by
1/sqrt(fan-in), no exp/log/div), so a chunked run can be compared with an
unchunked one at float32 tolerance.  Every graph output is a sink of the DAG.

Also here: :func:`assert_same_graph` (structural equality of two graphs) and a
``chunkc`` hypothesis profile (no deadline: sympy's first calls are slow).
"""

from __future__ import annotations

import functools
import math
import numpy as np
import sympy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import chunkc
from chunkc import ops as O
from chunkc.ir import Graph, Value, has_op, lookup, sym
from chunkc.ir.sizes import Size, format_size, sizes_equal

settings.register_profile("chunkc", deadline=None, max_examples=40, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
if settings.get_current_profile_name() == "default":  # a profile chosen on the command line wins
    settings.load_profile("chunkc")

SYMBOLS = ("B", "L")
STATIC_SIZES = (2, 3, 4, 6)
UNARY = ("tanh", "sigmoid", "relu", "gelu", "silu", "neg", "abs", "sin", "cos")
BINARY = ("add", "sub", "mul", "maximum", "minimum")
REDUCE = ("sum", "mean", "amax", "amin")
MAX_RANK = 4


class RandomGraph:
    """A drawn graph, concrete values for its symbols, and a seeded input factory."""

    def __init__(self, graph: Graph, sizes: dict[str, int], seed: int = 0, description: list[str] | None = None):
        self.graph = graph
        self.sizes = sizes  # a value for each symbol (all at least 2)
        self.seed = seed
        self.description = description or []  # the op families drawn, in order

    def inputs(self, sizes: dict[str, int] | None = None, seed: int | None = None) -> list[np.ndarray]:
        """Input arrays in graph-input order (uniform in [-1, 1]) for ``sizes`` (default: ``self.sizes``)."""
        bindings = self.sizes if sizes is None else sizes
        rng = np.random.default_rng(self.seed if seed is None else seed)
        out = []
        for v in self.graph.inputs:
            shape = v.type.concrete_shape(bindings)
            out.append(rng.uniform(-1, 1, size=shape).astype(v.dtype.numpy))
        return out

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"RandomGraph(sizes={self.sizes}, seed={self.seed})\n{chunkc.print_graph(self.graph)}"


class _Builder:
    """State while drawing one graph: the graph, the pool of float values, the rng for weights."""

    def __init__(self, draw, symbolic: bool, sizes: dict[str, int], rng: np.random.Generator, max_nodes: int):
        self.draw = draw
        self.max_nodes = max_nodes
        self.graph = Graph("random")
        self.dims: list[Size] = [sym(s) for s in SYMBOLS] if symbolic else [sizes[s] for s in SYMBOLS]
        self.dims += list(STATIC_SIZES)
        self.rng = rng
        self.pool: list[Value] = []

    # -- drawing helpers -----------------------------------------------------------
    def pick(self, values):
        return self.draw(st.sampled_from(list(values)))

    def value(self) -> Value:
        # recent values are likelier, so chains grow deep rather than wide
        k = self.draw(st.integers(0, len(self.pool) - 1))
        return self.pool[len(self.pool) - 1 - k]

    def axis(self, rank: int) -> int:
        a = self.draw(st.integers(0, rank - 1))
        return a - rank if self.draw(st.booleans()) else a  # negative axes too

    def weight(self, shape: tuple[int, ...], fan_in: int) -> Value:
        data = self.rng.uniform(-1, 1, size=shape).astype(np.float32) / math.sqrt(max(fan_in, 1))
        return self.graph.add_constant("w", data)

    def add(self, *values: Value) -> None:
        self.pool.extend(values)

    # -- op families: each returns False when it does not apply to x ------------------
    def unary(self, x: Value) -> bool:
        op = self.pick(UNARY if x.rank else [u for u in UNARY if _runs_on_0d(u)])
        self.add(getattr(O, op)(x))
        return True

    def binary(self, x: Value) -> bool:
        op = self.pick(BINARY)
        partners = [v for v in self.pool if _broadcastable(v.shape, x.shape)]
        choice = self.draw(st.integers(0, len(partners) + 1))
        if choice < len(partners):
            y = partners[choice]
        elif choice == len(partners) and x.rank and isinstance(x.shape[-1], int):
            y = self.weight((x.shape[-1],), 1)  # a bias-like constant, broadcast
        else:
            y = 0.5  # a Python number becomes a 0-d constant
        self.add(getattr(O, op)(x, y) if self.draw(st.booleans()) else getattr(O, op)(y, x))
        return True

    def matmul(self, x: Value) -> bool:
        if x.rank < 1:
            return False
        k = x.shape[-1]
        partners = [v for v in self.pool if x.rank >= 2 and v.rank >= 2 and sizes_equal(v.shape[-2], k)
                    and _broadcastable(v.shape[:-2], x.shape[:-2])]
        if partners and self.draw(st.booleans()):
            self.add(O.matmul(x, self.pick(partners)))
        elif isinstance(k, int):
            n = self.pick(STATIC_SIZES)
            self.add(O.matmul(x, self.weight((k, n), k)))
        elif x.rank >= 2 and len(self.graph.nodes) + 2 <= self.max_nodes:
            self.add(O.matmul(x, O.transpose(x, -1, -2)))  # scores-like [.., M, M]
        else:
            return False
        return True

    def linear(self, x: Value) -> bool:
        if x.rank < 1 or not isinstance(x.shape[-1], int):
            return False
        k, n = x.shape[-1], self.pick(STATIC_SIZES)
        args = [x, self.weight((n, k), k)]
        if self.draw(st.booleans()):
            args.append(self.weight((n,), 1))
        self.add(O.linear(*args))
        return True

    def reduce(self, x: Value) -> bool:
        if x.rank < 1:
            return False
        axes = self.draw(st.lists(st.integers(0, x.rank - 1), min_size=1, max_size=x.rank, unique=True))
        attr = axes[0] if len(axes) == 1 and self.draw(st.booleans()) else tuple(sorted(axes))
        self.add(getattr(O, self.pick(REDUCE))(x, axes=attr, keepdim=self.draw(st.booleans())))
        return True

    def softmax(self, x: Value) -> bool:
        if x.rank < 1:
            return False
        self.add(getattr(O, self.pick(("softmax", "log_softmax")))(x, axis=self.axis(x.rank)))
        return True

    def reshape_split(self, x: Value) -> bool:
        options = []
        for a, s in enumerate(x.shape):
            if isinstance(s, int):
                options += [(a, f, s // f) for f in range(2, s) if s % f == 0]
            elif isinstance(s, sympy.Mul):
                first, rest = s.as_two_terms()
                options.append((a, first, rest))
        if not options or x.rank >= MAX_RANK:
            return False
        a, outer, inner = self.pick(options)
        shape = list(x.shape[:a]) + [outer, inner] + list(x.shape[a + 1:])
        if all(isinstance(s, int) for s in shape) and self.draw(st.booleans()):
            shape[self.draw(st.integers(0, len(shape) - 1))] = -1  # let reshape infer one size
        self.add(O.reshape(x, shape=tuple(shape)))
        return True

    def reshape_merge(self, x: Value) -> bool:
        if x.rank < 2:
            return False
        a = self.draw(st.integers(0, x.rank - 2))
        shape = list(x.shape[:a]) + [x.shape[a] * x.shape[a + 1]] + list(x.shape[a + 2:])
        self.add(O.reshape(x, shape=tuple(shape)))
        return True

    def permute(self, x: Value) -> bool:
        if x.rank < 2:
            return False
        self.add(O.permute(x, dims=tuple(self.draw(st.permutations(range(x.rank))))))
        return True

    def slice(self, x: Value) -> bool:
        options = [a for a, s in enumerate(x.shape) if not isinstance(s, int) or s >= 2]
        if not options:
            return False
        a = self.pick(options)
        s = x.shape[a]
        if isinstance(s, int):
            start = self.draw(st.integers(0, s - 1))
            end = self.draw(st.integers(start + 1, s))
            step = self.draw(st.integers(1, 2))
            self.add(O.slice(x, axis=a, start=start, end=end, step=step))
        else:  # every symbol is at least 2, so both keep at least one element
            start, end = self.pick([(1, None), (0, 1), (0, -1)])
            self.add(O.slice(x, axis=a, start=start, end=end))
        return True

    def concat(self, x: Value) -> bool:
        if not has_op("concat") or x.rank < 1:
            return False
        a = self.draw(st.integers(0, x.rank - 1))
        partners = [v for v in self.pool if v.rank == x.rank and all(
            k == a or sizes_equal(p, q) for k, (p, q) in enumerate(zip(v.shape, x.shape)))]
        self.add(O.concat(x, self.pick(partners), axis=a))
        return True

    def split(self, x: Value) -> bool:
        options = [a for a, s in enumerate(x.shape) if isinstance(s, int) and s >= 2]
        if not has_op("split") or not options:
            return False
        a = self.pick(options)
        first = self.draw(st.integers(1, x.shape[a] - 1))
        outs = O.split(x, sizes=(first, x.shape[a] - first), axis=a)
        self.add(*outs)
        return True

    def where(self, x: Value) -> bool:
        if len(self.graph.nodes) + 2 > self.max_nodes:
            return False
        partners = [v for v in self.pool if _broadcastable(v.shape, x.shape)]
        y = self.pick(partners)
        self.add(O.where(O.gt(x, y), x, y))
        return True

    def unsqueeze(self, x: Value) -> bool:
        if x.rank >= MAX_RANK:
            return False
        self.add(O.unsqueeze(x, axis=self.draw(st.integers(-x.rank - 1, x.rank))))
        return True

    FAMILIES = ("unary", "binary", "matmul", "linear", "reduce", "softmax", "reshape_split",
                "reshape_merge", "permute", "slice", "concat", "split", "where", "unsqueeze")


@functools.lru_cache(maxsize=None)
def _runs_on_0d(op: str) -> bool:
    """Whether the op's reference accepts a 0-d array (some in-place NumPy kernels did not:
    ufuncs return scalars for 0-d inputs); the strategy avoids only what is broken today."""
    try:
        lookup(op).reference(np, np.asarray(np.float32(0.5)), **dict(lookup(op).attrs))
    except Exception:
        return False
    return True


def _broadcastable(a: tuple, b: tuple) -> bool:
    """True when ``a`` broadcasts against ``b`` to exactly ``b``'s shape."""
    if len(a) > len(b):
        return False
    return all((isinstance(p, int) and p == 1) or sizes_equal(p, q) for p, q in zip(a[::-1], b[::-1]))


@st.composite
def random_graphs(draw, max_nodes: int = 12, symbolic: bool = True) -> RandomGraph:
    """A strategy for :class:`RandomGraph`: a valid graph of 1 to ``max_nodes`` nodes."""
    sizes = {s: draw(st.integers(2, 5)) for s in SYMBOLS}
    seed = draw(st.integers(0, 2**32 - 1))
    b = _Builder(draw, symbolic, sizes, np.random.default_rng(seed), max_nodes)
    first_shape = tuple(draw(st.lists(st.sampled_from(b.dims), min_size=1, max_size=3)))
    b.add(b.graph.add_input("x", "f32", first_shape))
    if draw(st.booleans()):  # a second input: same shape, or a broadcastable suffix of it
        cut = draw(st.integers(0, len(first_shape) - 1))
        b.add(b.graph.add_input("y", "f32", first_shape[cut:]))
    target = draw(st.integers(1, max_nodes))
    description = []
    while len(b.graph.nodes) < target:
        x = b.value()
        family = draw(st.sampled_from(_Builder.FAMILIES))
        if not getattr(b, family)(x):
            family = "unary"
            b.unary(x)
        description.append(family)
    used = {v for n in b.graph.nodes for v in n.inputs}
    sinks = [o for n in b.graph.nodes for o in n.outputs if o not in used]
    b.graph.set_outputs(*sinks)
    return RandomGraph(b.graph, sizes, seed, description)


def graphs_with_inputs(max_nodes: int = 12, symbolic: bool = True):
    """A strategy for ``(graph, inputs)``: a random graph and concrete input arrays for it."""
    return random_graphs(max_nodes, symbolic).map(lambda case: (case.graph, case.inputs()))


# -- structural equality ---------------------------------------------------------------


def assert_same_graph(a: Graph, b: Graph, data: bool = True) -> None:
    """Assert that ``a`` and ``b`` have the same names, types, ops, attributes, order and outputs
    (and, with ``data``, bit-identical constant data)."""
    assert a.name == b.name, (a.name, b.name)
    _same_values("input", a.inputs, b.inputs)
    _same_values("constant", a.constants, b.constants)
    for ca, cb in zip(a.constants, b.constants):
        assert (ca.data is None) == (cb.data is None), f"constant %{ca.name}: data presence differs"
        if data and ca.data is not None:
            assert ca.data.dtype == cb.data.dtype and ca.data.shape == cb.data.shape, ca.name
            assert ca.data.tobytes() == cb.data.tobytes(), f"constant %{ca.name}: data differs"
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes], "node names or order differ"
    for na, nb in zip(a.nodes, b.nodes):
        assert na.op is nb.op, f"node {na.name}: op {na.op.name} != {nb.op.name}"
        assert [v.name for v in na.inputs] == [v.name for v in nb.inputs], f"node {na.name}: inputs differ"
        assert _same_attrs(na.attrs, nb.attrs), f"node {na.name}: attrs {na.attrs} != {nb.attrs}"
        _same_values(f"node {na.name} output", na.outputs, nb.outputs)
    assert [v.name for v in a.outputs] == [v.name for v in b.outputs], "graph outputs differ"


def _same_values(what: str, xs, ys) -> None:
    assert [v.name for v in xs] == [v.name for v in ys], f"{what} names differ"
    for x, y in zip(xs, ys):
        assert x.type.dtype == y.type.dtype and len(x.shape) == len(y.shape), f"{what} %{x.name}: {x.type} != {y.type}"
        assert all(format_size(p) == format_size(q) for p, q in zip(x.shape, y.shape)), \
            f"{what} %{x.name}: {x.type} != {y.type}"


def _same_attrs(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_attrs(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same_attrs(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if type(a) is not type(b) and not (isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic)):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    return a == b


__all__ = ["RandomGraph", "random_graphs", "graphs_with_inputs", "assert_same_graph"]
