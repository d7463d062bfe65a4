"""Small graphs with hand-built chunk plans, shared by the backend tests.

Each case builds a graph with the builder API and a :class:`Plan` whose regions
exercise one feature of the chunk loops: attention chunked along the query
axis (K and V used whole), an MLP chunked along L, a region output read by two
nodes after the loop, a reshape whose chunk unit is not 1, a region that ends
the graph and writes two graph outputs, a chunk size that is an expression of
the sizes, and two regions in a row.  ``sizes`` lists sizes that the chunk size
does not divide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import chunkc
from chunkc import ops as O
from chunkc.ir.sizes import parse_size, sym
from chunkc.passes.plan import ChunkedValue as CV, ChunkRegion, Plan


def run_on_all_backends(graph: chunkc.Graph, plan: Plan, inputs, expected, atol: float = 1e-5,
                        rtol: float = 1e-5) -> None:
    """``plan`` through the reference interpreter of plans, the NumPy and the PyTorch programs,
    each output against ``expected`` (same shape and dtype, values within tolerance)."""
    import torch
    from chunkc.passes.chunked_reference import interpret_plan

    outs = {"reference": interpret_plan(plan, *inputs),
            "numpy": chunkc.compile(graph, plan, backend="numpy")(*inputs),
            "torch": chunkc.compile(graph, plan, backend="torch")(*[torch.from_numpy(a) for a in inputs])}
    for name, got in outs.items():
        got = got if isinstance(got, (tuple, list)) else (got,)
        assert len(got) == len(expected)
        for e, o in zip(expected, got):
            o = o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o)
            assert o.shape == e.shape and o.dtype == e.dtype, name
            np.testing.assert_allclose(o, e, atol=atol, rtol=rtol, err_msg=name)


def estimate_and_measure(plan: Plan, inputs, backend: str) -> tuple[int, int]:
    """(measured, estimated) peak bytes of ``plan`` compiled for ``backend`` and run on ``inputs``."""
    import torch

    plan.backend = backend
    fn = chunkc.compile(plan.graph, plan, backend=backend)
    args = [torch.from_numpy(a) for a in inputs] if backend == "torch" else inputs
    measured = chunkc.measure_peak(fn, *args)
    return measured, chunkc.estimate_memory(plan.graph, plan, backend=backend).peak_bytes


def longest_accumulating_plan(graph: chunkc.Graph, axis: int, chunk: int) -> tuple[chunkc.Graph, Plan]:
    """The longest region that ends at the graph's last node, accumulating over ``axis`` of its
    input 0, chunked by ``chunk``: (the reordered graph, its plan)."""
    from chunkc.passes.reorder import apply_regions
    from chunkc.passes.search import GraphIndex, walk_regions

    cands = list(walk_regions(GraphIndex(graph), len(graph.nodes) - 1, axis, accumulate=True))
    assert cands, f"{graph.nodes[-1].name} must accumulate over axis {axis} of its input 0"
    cand = cands[-1]
    assert [v.name for v in cand.accumulators] == [graph.nodes[-1].outputs[0].name]
    new_graph, regions = apply_regions(graph, [(cand, chunk)])
    return new_graph, Plan(graph=new_graph, regions=regions)


@dataclass
class Case:
    name: str
    graph: chunkc.Graph
    plan: Plan
    sizes: list[dict[str, int]]  # concrete sizes to run at (chunk sizes do not divide them)
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def inputs(self, sizes: dict[str, int]) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        out = []
        for v in self.graph.inputs:
            shape = v.type.concrete_shape(sizes)
            if v.dtype.is_floating:
                out.append(rng.uniform(-1, 1, size=shape).astype(v.dtype.numpy))
            else:
                out.append(rng.integers(0, 2, size=shape).astype(v.dtype.numpy))
        return out


def _weights(g: chunkc.Graph, rng: np.random.Generator):
    def w(name: str, *shape: int):
        return g.add_constant(name, (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32))
    return w


def attention(d: int = 32, heads: int = 4, chunk=5) -> Case:
    """Self-attention chunked along the query axis; K and V are computed whole before the loop."""
    rng = np.random.default_rng(1)
    g = chunkc.Graph("attention")
    x = g.add_input("x", "f32", ("B", "L", d))
    w = _weights(g, rng)
    wq, wk, wv, wo = w("wq", d, d), w("wk", d, d), w("wv", d, d), w("wo", d, d)
    B, L, dh = sym("B"), sym("L"), d // heads
    k = O.reshape(O.linear(x, wk, name="k"), shape=(B, L, heads, dh), name="k_r")
    kt = O.permute(k, dims=(0, 2, 3, 1), name="kT")
    v = O.reshape(O.linear(x, wv, name="v"), shape=(B, L, heads, dh), name="v_r")
    vp = O.permute(v, dims=(0, 2, 1, 3), name="v_p")
    q = O.linear(x, wq, name="q")
    qp = O.permute(O.reshape(q, shape=(B, L, heads, dh), name="q_r"), dims=(0, 2, 1, 3), name="q_p")
    s = O.mul(O.matmul(qp, kt, name="scores"), 1.0 / np.sqrt(dh), name="scaled")
    p = O.softmax(s, axis=-1, name="probs")
    c = O.permute(O.matmul(p, vp, name="ctx"), dims=(0, 2, 1, 3), name="ctx_p")
    o = O.linear(O.reshape(c, shape=(B, L, d), name="ctx_r"), wo, name="out")
    g.set_outputs(o)
    region = ChunkRegion(
        ("q", "q_r", "q_p", "scores", "scaled", "probs", "ctx", "ctx_p", "ctx_r", "out"),
        (CV("x", 1), CV("q", 1), CV("q_r", 1), CV("q_p", 2), CV("scores", 2), CV("scaled", 2), CV("probs", 2),
         CV("ctx", 2), CV("ctx_p", 1), CV("ctx_r", 1), CV("out", 1)),
        ("out",), L, chunk)
    return Case("attention", g, Plan(g, (region,)), [{"B": 2, "L": 13}, {"B": 1, "L": 7}])


def mlp(d: int = 16, hidden: int = 64, chunk=4) -> Case:
    """linear -> gelu -> linear chunked along L, then a softmax after the loop."""
    rng = np.random.default_rng(2)
    g = chunkc.Graph("mlp")
    x = g.add_input("x", "f32", ("B", "L", d))
    w = _weights(g, rng)
    b1 = g.add_constant("b1", rng.standard_normal(hidden).astype(np.float32))
    h = O.gelu(O.linear(x, w("w1", hidden, d), b1, name="h"), name="a")
    y = O.linear(h, w("w2", d, hidden), name="y")
    g.set_outputs(O.softmax(y * 0.5, axis=-1, name="z"))
    L = sym("L")
    region = ChunkRegion(("h", "a", "y"), (CV("x", 1), CV("h", 1), CV("a", 1), CV("y", 1)), ("y",), L, chunk)
    return Case("mlp", g, Plan(g, (region,)), [{"B": 2, "L": 11}, {"B": 1, "L": 3}])


def shared_output() -> Case:
    """A region output read by two nodes after the loop, and a bias used whole inside it."""
    rng = np.random.default_rng(3)
    g = chunkc.Graph("shared")
    x = g.add_input("x", "f32", ("L", 8))
    bias = g.add_constant("bias", rng.standard_normal(8).astype(np.float32))
    e = O.exp(O.add(x, bias, name="xb"), name="e")
    s = O.tanh(e, name="s")
    a = O.relu(s, name="r")
    b = O.mul(s, x, name="sx")
    g.set_outputs(O.add(a, b, name="y"))
    region = ChunkRegion(("xb", "e", "s"), (CV("x", 0), CV("xb", 0), CV("e", 0), CV("s", 0)), ("s",), sym("L"), 3)
    return Case("shared_output", g, Plan(g, (region,)), [{"L": 10}, {"L": 2}])


def reshape_unit() -> Case:
    """Rows of [L, 64] viewed as [4L, 16] inside the loop: a chunk unit of 4 rows."""
    g = chunkc.Graph("unit")
    x = g.add_input("x", "f32", ("L", 64))
    L = sym("L")
    r = O.reshape(x, shape=(4 * L, 16), name="r")
    s = O.softmax(r, axis=-1, name="s")
    back = O.reshape(s, shape=(L, 64), name="back")
    g.set_outputs(O.mul(back, 2.0, name="y"))
    region = ChunkRegion(("r", "s", "back"), (CV("x", 0), CV("r", 0, 4), CV("s", 0, 4), CV("back", 0)),
                         ("back",), L, 2)
    return Case("reshape_unit", g, Plan(g, (region,)), [{"L": 7}, {"L": 1}])


def tail_region() -> Case:
    """The region ends the graph and writes both graph outputs, one also read inside the loop."""
    g = chunkc.Graph("tail")
    x = g.add_input("x", "f32", ("B", "L"))
    m = g.add_input("mask", "bool", ("B", "L"))
    n = O.neg(x, name="n")
    s = O.sigmoid(n, name="s")
    f = O.masked_fill(s, m, value=-1.5, name="f")
    g.set_outputs(f, s)
    L = sym("L")
    region = ChunkRegion(("s", "f"), (CV("n", 1), CV("mask", 1), CV("s", 1), CV("f", 1)),
                         ("s", "f"), L, 4)
    return Case("tail_region", g, Plan(g, (region,)), [{"B": 3, "L": 9}, {"B": 2, "L": 4}])


def symbolic_chunk() -> Case:
    """The chunk size is an expression of L, evaluated at run time: about a third of L."""
    case = mlp()
    region = case.plan.regions[0].with_chunk_size(parse_size("ceildiv(L, 3)"))
    return Case("symbolic_chunk", case.graph, Plan(case.graph, (region,)), [{"B": 2, "L": 10}, {"B": 1, "L": 2}])


def two_regions() -> Case:
    """Two loops in a row over different axes: rows of a [L, M] tensor, then its columns."""
    g = chunkc.Graph("two")
    x = g.add_input("x", "f32", ("L", "M"))
    a = O.exp(x, name="a")
    b = O.softmax(a, axis=1, name="b")  # mixes M: chunk along L
    c = O.softmax(b, axis=0, name="c")  # mixes L: chunk along M
    d = O.sqrt(c, name="d")
    g.set_outputs(d)
    r1 = ChunkRegion(("a", "b"), (CV("x", 0), CV("a", 0), CV("b", 0)), ("b",), sym("L"), 3)
    r2 = ChunkRegion(("c", "d"), (CV("b", 1), CV("c", 1), CV("d", 1)), ("d",), sym("M"), 2)
    return Case("two_regions", g, Plan(g, (r1, r2)), [{"L": 5, "M": 7}, {"L": 1, "M": 1}])


CASES: dict[str, Callable[[], Case]] = {
    "attention": attention, "mlp": mlp, "shared_output": shared_output, "reshape_unit": reshape_unit,
    "tail_region": tail_region, "symbolic_chunk": symbolic_chunk, "two_regions": two_regions,
}


# an image model that halves its rows (pool) and doubles them again (strided transposed conv):
# halo loops over units of two rows, ragged ends (tests/test_halo.py, tests/test_numpy_loop_memory.py)
UP_DOWN = """graph @up_down(%x: f32[1, 3, 2*H, 8]) {
    const %w: f32[8, 3, 3, 3]
    const %w_2: f32[8, 8, 2, 2]
    %conv: f32[1, 8, 2*H, 8] = conv(%x, %w) {stride = none, padding = ((1, 1), (1, 1)), dilation = none, groups = 1}
    %max_pool: f32[1, 8, H, 4] = max_pool(%conv) {kernel = (2, 2), stride = none, padding = none, dilation = none, ceil_mode = false}
    %silu: f32[1, 8, H, 4] = silu(%max_pool)
    %conv_transpose: f32[1, 8, 2*H, 8] = conv_transpose(%silu, %w_2) {stride = (2, 2), padding = none, dilation = none, groups = 1, output_padding = none}
    %add: f32[1, 8, 2*H, 8] = add(%conv, %conv_transpose)
    return %add
  }"""
