"""Axes that flow through joins, window reshapes, rolls and index embeddings (issue 11, item 5),
and the floor search that must find the regions they allow.

Each graph is chunked along its sequence (or window-row) axis by the longest legal region the
chunk-flow search finds from its output, at a chunk size that does not divide the extent, and
run with the NumPy and PyTorch backends against the unchunked interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.passes import search as S
from chunkc.passes.plan import Plan
from chunkc.passes.selection import FloorSelector, SearchSpace

BACKENDS = ["numpy", "torch"]


def _longest_region(g: chunkc.Graph, axis: int, chunk: int, sizes: dict[str, int]) -> Plan:
    """One region: the longest legal span ending at the output, chunked along ``axis``."""
    index = S.GraphIndex(g)
    cands = list(S.walk_regions(index, len(g.nodes) - 1, axis))
    assert cands, f"no legal region ends at {g.nodes[-1].name} along axis {axis}"
    return Plan(g, (cands[-1].to_region(g, chunk),), sizes=sizes), cands[-1]


def _run(g, plan, inputs, backend):
    if backend == "torch":
        import torch
        inputs = [torch.from_numpy(a) for a in inputs]
    got = chunkc.compile(g, plan, backend=backend)(*inputs)
    got = got[0] if isinstance(got, (tuple, list)) else got
    return got.numpy() if backend == "torch" else np.asarray(got)


def _check(g, plan, inputs, backend):
    np.testing.assert_allclose(_run(g, plan, inputs, backend), chunkc.interpret(g, *inputs)[0], rtol=1e-5, atol=1e-5)


def _rotary(L="L", heads=2, d=8):
    """Llama's rotary embedding: positions -> cos/sin tables, rotate_half (two slices of the head
    axis, a negation, a concat along the head axis), all chunked along the sequence axis."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("rotary")
    x = g.add_input("x", "f32", (1, heads, L, d))
    inv_freq = g.add_constant("inv_freq", (1.0 / 100 ** (np.arange(d // 2) / (d // 2))).astype(np.float32))
    pos = O.cast(O.unsqueeze(O.arange(graph=g, end=chunkc.sym(L) if isinstance(L, str) else L, dtype="i64"), axis=1),
                 dtype="f32")  # [L, 1]
    freqs = O.concat(pos * inv_freq, pos * inv_freq, axis=1)  # [L, d]: a concat along the other axis
    cos, sin = O.cos(freqs), O.sin(freqs)
    half1 = O.slice(x, axis=3, end=d // 2)
    half2 = O.slice(x, axis=3, start=d // 2)
    rotated = O.concat(O.neg(half2), half1, axis=3)
    y = x * cos + rotated * sin
    w = g.add_constant("w", rng.standard_normal((d, d)).astype(np.float32))
    g.set_outputs(O.relu(O.linear(y, w)))
    return g


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotary_halves_joined_along_the_head_axis_carry_the_sequence_axis(backend):
    g = _rotary()
    sizes = {"L": 29}
    plan, cand = _longest_region(g, axis=2, chunk=6, sizes=sizes)
    in_loop = {g.nodes[i].op.name for i in cand.loop}
    # the concat of the halves, the slices, the concat of the frequency tables and the position
    # arange all run a chunk of rows at a time: nothing of length L is held whole
    assert {"concat", "slice", "neg", "arange", "cos", "sin"} <= in_loop
    assert not cand.hoisted
    _check(g, plan, [np.random.default_rng(1).standard_normal((1, 2, 29, 8)).astype(np.float32)], backend)


def _windows(H=12, W=8, C=4, ws=4, shift=2):
    """Swin's window partition and reverse around a roll along the width: [H, W, C] ->
    [nH*nW, ws*ws, C] -> back; chunked along the rows of windows."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("windows")
    x = g.add_input("x", "f32", (1, H, W, C))
    shifted = O.roll(x, shifts=(-shift,), axes=(2,))  # along the width: carries the rows
    parts = O.reshape(shifted, shape=(1, H // ws, ws, W // ws, ws, C))
    windows = O.reshape(O.permute(parts, dims=(0, 1, 3, 2, 4, 5)), shape=(-1, ws * ws, C))
    w = g.add_constant("w", rng.standard_normal((C, C)).astype(np.float32))
    mixed = O.softmax(O.linear(windows, w), axis=1)  # mixes inside each window only
    back = O.reshape(mixed, shape=(1, H // ws, W // ws, ws, ws, C))
    merged = O.reshape(O.permute(back, dims=(0, 1, 3, 2, 4, 5)), shape=(1, H, W, C))
    g.set_outputs(O.roll(merged, shifts=(shift,), axes=(2,)) + x)
    return g


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_partition_reverse_and_a_roll_along_another_axis_carry_the_window_rows(backend):
    g = _windows()
    # the output's rows are chunked in whole windows (4 rows each): 2 of the 3 window rows a chunk
    plan, cand = _longest_region(g, axis=1, chunk=2, sizes={})
    assert {"roll", "reshape", "permute", "softmax"} <= {g.nodes[i].op.name for i in cand.loop}
    assert not cand.hoisted
    region = plan.regions[0]
    assert region.axis_of(g.outputs[0].name).unit == 4  # rows per window row
    _check(g, plan, [np.random.default_rng(1).standard_normal((1, 12, 8, 4)).astype(np.float32)], backend)


def test_a_roll_along_the_chunk_axis_does_not_carry_it():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", ("L", 4))
    g.set_outputs(O.relu(O.roll(O.exp(x), shifts=(1,), axes=(0,))))
    index = S.GraphIndex(g)
    names = [[g.nodes[i].name for i in c.loop] for c in S.walk_regions(index, len(g.nodes) - 1, 0)]
    assert names == [[g.nodes[-1].name]]  # the roll's row r reads row r - 1: the walk stops there
    # along the other axis it carries
    assert len(list(S.walk_regions(index, len(g.nodes) - 1, 1))) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_embedding_of_index_tensors_carries_their_axes(backend):
    """Token and position embeddings (GPT-2): the ids' axes flow through the lookup, so the
    position ids come from arange a chunk at a time."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("embed")
    ids = g.add_input("ids", "i64", (1, "L"))
    wte = g.add_constant("wte", rng.standard_normal((50, 8)).astype(np.float32))
    wpe = g.add_constant("wpe", rng.standard_normal((64, 8)).astype(np.float32))
    pos = O.unsqueeze(O.arange(graph=g, end=chunkc.sym("L"), dtype="i64"), axis=0)
    h = O.embedding(wte, ids) + O.embedding(wpe, pos)
    g.set_outputs(O.tanh(O.linear(h, g.add_constant("w", rng.standard_normal((8, 8)).astype(np.float32)))))
    plan, cand = _longest_region(g, axis=1, chunk=7, sizes={"L": 40})
    assert sum(g.nodes[i].op.name == "embedding" for i in cand.loop) == 2 and not cand.hoisted
    _check(g, plan, [rng.integers(0, 50, (1, 40)).astype(np.int64)], backend)


# -- the floor search finds the regions these flows allow ----------------------------------------------


def _rotary_attention(L="L", d=32, heads=2, kv_heads=1, seed=0):
    """A causal LM attention block as Llama writes it: RMS norm, query/key/value projections,
    rotary on queries and keys, grouped-query SDPA, output projection, residual."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("rotary_attention")
    x = g.add_input("x", "f32", (1, L, d))
    hd = d // heads
    W = lambda o, i: g.add_constant("w", (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32))  # noqa: E731
    inv_freq = g.add_constant("inv_freq", (1.0 / 100 ** (np.arange(hd // 2) / (hd // 2))).astype(np.float32))
    pos = O.cast(O.unsqueeze(O.arange(graph=g, end=chunkc.sym(L), dtype="i64"), axis=1), dtype="f32")
    freqs = O.concat(pos * inv_freq, pos * inv_freq, axis=1)
    cos, sin = O.cos(freqs), O.sin(freqs)
    n = x * O.rsqrt(O.mean(x * x, axes=-1, keepdim=True) + 1e-6)

    def heads_of(t, h):
        return O.permute(O.reshape(t, shape=(1, L, h, hd)), dims=(0, 2, 1, 3))

    def rope(t):
        rotated = O.concat(O.neg(O.slice(t, axis=3, start=hd // 2)), O.slice(t, axis=3, end=hd // 2), axis=3)
        return t * cos + rotated * sin

    k = rope(heads_of(O.linear(n, W(kv_heads * hd, d)), kv_heads))
    v = heads_of(O.linear(n, W(kv_heads * hd, d)), kv_heads)
    q = rope(heads_of(O.linear(n, W(d, d)), heads))
    a = g.op("scaled_dot_product_attention", q, k, v, is_causal=True, enable_gqa=True)
    o = O.reshape(O.permute(a, dims=(0, 2, 1, 3)), shape=(1, L, d))
    g.set_outputs(x + O.linear(o, W(d, d)))
    return g


def test_neighbouring_floor_regions_merge_into_one_when_that_holds_less():
    """A greedy floor search may chunk the key projection alone first (its own span is a few
    bytes lower), then its rotary embedding in another region: the projection is written whole
    between them.  Merging the two into one legal region over both spans holds neither."""
    from chunkc.passes.schedule import whole_inputs_first
    from chunkc.passes.selection import _merge_neighbours

    g = whole_inputs_first(_rotary_attention())
    space = SearchSpace(g, {"L": 512})
    at = {n.name: i for i, n in enumerate(g.nodes)}
    sdpa = next(n for n in g.nodes if n.op.name == "scaled_dot_product_attention")
    key_rope = at[sdpa.inputs[1].producer.name]
    key_proj = next(i for i in range(key_rope, -1, -1) if g.nodes[i].op.name == "linear")
    alone = next(c for c in space._walk(key_proj, 1) if c.start == key_proj)
    rope = next(c for c in space._walk(key_rope, 2) if c.start == key_proj + 1)
    split = space.initial()
    for cand in (alone, rope):
        split = space.child(split, cand, 1, 0.0)
    merged = _merge_neighbours(space, split)
    assert merged is not None
    [(region, _)] = merged.chosen
    assert region.start <= key_proj and region.end >= key_rope
    assert max(merged.during[key_proj: key_rope + 1]) < max(split.during[key_proj: key_rope + 1])
    assert _merge_neighbours(space, merged) is None  # nothing left to merge


def test_the_floor_plan_of_a_rotary_attention_block_runs_right():
    """Each backend's plan just above its own floor (the backends' kernels differ in workspace, so
    one backend's floor plan need not fit another's budget)."""
    g = _rotary_attention()
    sizes = {"L": 203}
    x = np.random.default_rng(1).standard_normal((1, 203, 32)).astype(np.float32)
    for backend in BACKENDS:
        try:
            chunkc.autochunk(g, 1, sizes=sizes, backend=backend)
        except chunkc.InfeasibleBudgetError as exc:
            floor = exc.lowest_peak_bytes
        plan = chunkc.autochunk(g, int(floor * 1.05), sizes=sizes, backend=backend)
        assert plan.regions
        np.testing.assert_allclose(_run(plan.graph, plan, [x], backend), chunkc.interpret(g, x)[0], rtol=1e-4, atol=1e-5)
