"""Rewrites autochunk makes before its search: fused projections split by part, and a schedule
that computes what a node reads whole before what it slices.  Each keeps the graph's values."""

from __future__ import annotations

import numpy as np

import chunkc
from chunkc import ops as O
from chunkc.passes.fold_split import fold_splits
from chunkc.passes.schedule import whole_inputs_first
from chunkc.passes.selection import FloorSelector, SearchSpace

from graphs import inputs_for


def _fused_attention(d=16, heads=2):
    """GPT-2's spelling: one projection for queries, keys and values, then a split."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("fused")
    x = g.add_input("x", "f32", ("L", d))
    w = g.add_constant("w", rng.standard_normal((d, 3 * d)).astype(np.float32) / 4)
    b = g.add_constant("b", rng.standard_normal(3 * d).astype(np.float32))
    qkv = O.reshape(g.op("addmm", b, x, w, name="c_attn"), shape=(1, "L", 3 * d))
    q, k, v = O.split(qkv, sizes=(d, d, d), axis=2)
    heads_of = lambda t: O.permute(O.reshape(t, shape=(1, "L", heads, d // heads)), dims=(0, 2, 1, 3))
    y = g.op("scaled_dot_product_attention", heads_of(q), heads_of(k), heads_of(v), is_causal=True)
    g.set_outputs(O.relu(y))
    return g


def test_a_split_of_a_fused_projection_becomes_one_projection_per_part():
    g = _fused_attention()
    f = fold_splits(g)
    assert not any(n.op.name == "split" for n in f.nodes)
    parts = [n for n in f.nodes if n.op.name == "addmm"]
    assert len(parts) == 3 and all(n.inputs[2].shape == (16, 16) for n in parts)
    inputs = inputs_for(g, {"L": 9})
    np.testing.assert_allclose(chunkc.interpret(f, *inputs)[0], chunkc.interpret(g, *inputs)[0], rtol=1e-6)
    # the queries' projection can now run a chunk at a time: the search's floor is lower
    sizes = {"L": 512}
    floors = [FloorSelector().floor(SearchSpace(whole_inputs_first(graph), sizes)).peak_bytes for graph in (g, f)]
    assert floors[1] < floors[0]


def test_a_split_whose_parts_are_read_elsewhere_is_kept():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", ("L", 4))
    h = g.op("linear", x, g.add_constant("w", np.ones((8, 4), np.float32)))
    a, b = O.split(h, sizes=(4, 4), axis=1)
    g.set_outputs(a + b, h)  # h itself is an output: the fused projection stays
    assert fold_splits(g) is g


def test_wholly_read_work_is_scheduled_before_sliced_work():
    g = _fused_attention()
    f = fold_splits(g)
    s = whole_inputs_first(f)
    order = [n.name for n in s.nodes if n.op.name == "addmm"]
    sdpa = next(n for n in s.nodes if n.op.name == "scaled_dot_product_attention")
    producers = {}
    for k, v in enumerate(sdpa.inputs):
        while v.producer.op.name != "addmm":
            v = v.producer.inputs[0]
        producers[k] = v.producer.name
    assert order == [producers[1], producers[2], producers[0]]  # keys, values, then queries
    inputs = inputs_for(g, {"L": 7})
    np.testing.assert_allclose(chunkc.interpret(s, *inputs)[0], chunkc.interpret(g, *inputs)[0], rtol=1e-6)
