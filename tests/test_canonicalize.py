"""Element formulas and the canonicalize pass: causal masks become is_causal, repeated
key/value heads enable_gqa; masks that are not causal stay as they are."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

import chunkc
from chunkc import ops as O
from chunkc.ir import Graph
from chunkc.ir.elements import ElementAnalysis, index, prove_equal
from chunkc.passes.canonicalize import canonicalize

RNG = np.random.default_rng(0)
H, KV, E = 4, 2, 8


def attention_graph(mask_kind: str, gqa: bool = True) -> Graph:
    """q [1, H, L, E]; k, v [1, KV, L, E] repeated to H heads as transformers' repeat_kv does;
    a [1, 1, L, L] bool mask built from positions, the way torch.export traces transformers'."""
    g = Graph(f"attn_{mask_kind}")
    q = g.add_input("q", "f32", (1, H, "L", E))
    heads = KV if gqa else H
    k = g.add_input("k", "f32", (1, heads, "L", E))
    v = g.add_input("v", "f32", (1, heads, "L", E))
    if gqa:
        def repeat(x):
            x = O.expand(O.unsqueeze(x, axis=2), shape=(1, KV, H // KV, "L", E))
            return O.reshape(O.contiguous(x), shape=(1, H, "L", E))
        k, v = repeat(k), repeat(v)
    pos = g.op("arange", end="L")
    # positions shifted by a concat and diffed, as transformers' packed-sequence test does
    first = O.sub(O.slice(pos, axis=0, start=0, end=1), g.scalar(1, "i64"))
    both = O.concat(first, pos, axis=0)
    step = O.sub(O.slice(both, axis=0, start=1, end=None), O.slice(both, axis=0, start=0, end="L"))
    seq = O.cumsum(O.cast(O.ne(step, g.scalar(1, "i64")), dtype="i64"), axis=0)
    rows, cols = O.unsqueeze(pos, axis=1), O.unsqueeze(pos, axis=0)
    same_seq = O.eq(O.unsqueeze(seq, axis=1), O.unsqueeze(seq, axis=0))
    if mask_kind == "causal":
        mask = O.logical_and(O.le(cols, rows), same_seq)
    elif mask_kind == "window":  # causal and at most 4 positions back: not is_causal
        near = O.lt(O.sub(rows, cols), g.scalar(4, "i64"))
        mask = O.logical_and(O.logical_and(O.le(cols, rows), near), same_seq)
    elif mask_kind == "anticausal":
        mask = O.ge(cols, rows)
    mask = O.reshape(mask, shape=(1, 1, "L", "L"))
    out = O.scaled_dot_product_attention(q, k, v, mask)
    g.set_outputs(out)
    chunkc.verify(g)
    return g


def inputs(length: int, gqa: bool = True):
    heads = KV if gqa else H
    return (RNG.standard_normal((1, H, length, E)).astype(np.float32),
            RNG.standard_normal((1, heads, length, E)).astype(np.float32),
            RNG.standard_normal((1, heads, length, E)).astype(np.float32))


def attention_nodes(g: Graph):
    return [n for n in g.nodes if n.op.name == "scaled_dot_product_attention"]


def test_formulas_of_positions_and_the_mask():
    g = attention_graph("causal")
    an = ElementAnalysis(g)
    by_op = {n.op.name: n for n in g.nodes}
    assert an.of(by_op["arange"].outputs[0]) == index(0)
    assert an.of(by_op["cumsum"].outputs[0]) == 0  # a running sum of zeros, proven by a case split
    mask = attention_nodes(g)[0].inputs[3]
    f = an.of(mask).xreplace({index(0): 0, index(1): 0})
    assert prove_equal(f, sympy.Le(index(3), index(2)))
    assert not prove_equal(f, sympy.Lt(index(3), index(2)))


def test_causal_mask_and_repeated_heads_are_rewritten_and_values_kept():
    g = attention_graph("causal")
    c = canonicalize(g)
    (node,) = attention_nodes(c)
    assert node.attrs["is_causal"] and node.attrs["enable_gqa"] and len(node.inputs) == 3
    assert [v.name for v in node.inputs] == ["q", "k", "v"]  # the repeat chains are gone
    assert not any(n.op.name in ("cumsum", "le", "expand") for n in c.nodes)  # so is the mask
    chunkc.verify(c)
    args = inputs(11)
    want = chunkc.compile(g, backend="numpy")(*args)
    for backend in ("numpy", "torch"):
        got = chunkc.compile(c, backend=backend)(*(torch.from_numpy(a) for a in args) if backend == "torch" else args)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    assert "enable_gqa=True" in chunkc.compile(c).chunkc_source and "is_causal=True" in chunkc.compile(c).chunkc_source


@pytest.mark.parametrize("kind", ["window", "anticausal"])
def test_masks_that_are_not_causal_stay(kind):
    c = canonicalize(attention_graph(kind, gqa=False))
    (node,) = attention_nodes(c)
    assert not node.attrs["is_causal"] and len(node.inputs) == 4
    args = inputs(9, gqa=False)
    np.testing.assert_allclose(chunkc.compile(c, backend="numpy")(*args),
                               chunkc.compile(attention_graph(kind, gqa=False), backend="numpy")(*args), rtol=1e-6)


def test_gqa_attention_chunks():
    """enable_gqa attention chunked (by queries or by query heads, each chunk of heads reading its
    kv heads) equals it unchunked, with less memory."""
    c = canonicalize(attention_graph("causal"))
    length = 64
    args = inputs(length)
    sizes = {"L": length}
    full = chunkc.estimate_memory(c, sizes=sizes, backend="numpy").peak_bytes
    plan = chunkc.autochunk(c, 0.4, sizes=sizes, backend="numpy", progress=False)
    assert plan.regions
    got = chunkc.compile(c, plan, backend="numpy")(*args)
    np.testing.assert_allclose(got, chunkc.compile(c, backend="numpy")(*args), rtol=1e-5, atol=1e-6)
    assert plan.estimated_peak_bytes < full


def test_enable_gqa_refuses_heads_that_do_not_divide():
    g = Graph("bad")
    q = g.add_input("q", "f32", (1, 4, 8, 8))
    k = g.add_input("k", "f32", (1, 3, 8, 8))
    with pytest.raises(chunkc.ChunkcError, match="enable_gqa: q's 4 heads must be a multiple"):
        O.scaled_dot_product_attention(q, k, k, enable_gqa=True)


def test_the_pass_runs_by_name_in_a_pipeline():
    from chunkc.passes.manager import PassManager
    graph, _ = PassManager.parse("canonicalize,verify").run(attention_graph("causal"))
    assert attention_nodes(graph)[0].attrs["is_causal"]


def test_gqa_head_chunks_read_their_kv_heads():
    """A loop over query heads, 2 (= one kv head's group) per iteration: q and the output are
    sliced 2 heads at a time, k and v one head at a time (the record's ratio 1/groups)."""
    from chunkc.passes.plan import ChunkedValue, ChunkRegion, Plan
    c = canonicalize(attention_graph("causal"))
    (node,) = attention_nodes(c)
    groups = H // KV
    region = ChunkRegion(nodes=(node.name,), outputs=(node.outputs[0].name,), extent=KV, chunk_size=1,
                         chunked=(ChunkedValue("q", 1, groups), ChunkedValue("k", 1), ChunkedValue("v", 1),
                                  ChunkedValue(node.outputs[0].name, 1, groups)))
    plan = Plan(graph=c, regions=(region,), backend="numpy")
    args = inputs(10)
    want = chunkc.compile(c, backend="numpy")(*args)
    np.testing.assert_allclose(chunkc.compile(c, plan, backend="numpy")(*args), want, rtol=1e-6)
    got = chunkc.compile(c, plan, backend="torch")(*(torch.from_numpy(a) for a in args))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


# -- selects and sums that eager never runs: an all-true mask, an all-zero bias -------------------


def bias_graph(cond: str) -> Graph:
    """T5's and ViT's eager-attention graphs as torch.export traces them without padding: a
    [1, 1, L, L] bool mask from ``positions >= 0`` (all true) selects a [1, H, L, L] bias
    (``where``), and the same mask made additive (``where(mask, 0.0, -inf)``, all zeros) is
    added to the scores.  ``cond="shifted"``: ``positions >= 1`` instead, false in row 0."""
    g = Graph(f"bias_{cond}")
    scores = g.add_input("scores", "f32", (1, H, "L", "L"))
    bias = g.add_input("bias", "f32", (1, H, "L", "L"))
    pos = g.op("arange", end="L")
    rows = g.op("unsqueeze", g.op("unsqueeze", g.op("unsqueeze", pos, axis=0), axis=0), axis=3)
    mask = g.op("expand", g.op("ge", rows, g.scalar(1 if cond == "shifted" else 0, "i64")), shape=(1, 1, "L", "L"))
    # two readers each: the graph outputs below must read the forwarded values too
    selected = g.op("where", mask, g.op("relu", bias), g.scalar(-1e9, "f32"))
    additive = g.op("where", mask, g.op("full", shape=(), value=0.0), g.scalar(float("-inf"), "f32"))
    both = g.op("logical_and", g.scalar(True, "bool"), mask)
    out = g.op("softmax", g.op("add", g.op("add", scores, additive), selected), axis=3)
    g.set_outputs(out, g.op("cast", both, dtype="f32"))
    chunkc.verify(g)
    return g


def test_all_true_mask_and_all_zero_bias_are_forwarded_and_values_kept():
    g = bias_graph("all_true")
    c = canonicalize(g)
    chunkc.verify(c)
    ops = [n.op.name for n in c.nodes]
    assert "where" not in ops and "logical_and" not in ops, ops
    (add,) = [n for n in c.nodes if n.op.name == "add"]  # scores + the bias; the zeros are gone
    assert {v.name for v in add.inputs} == {"scores", c.nodes[ops.index("relu")].outputs[0].name}
    args = (RNG.standard_normal((1, H, 7, 7)).astype(np.float32), RNG.standard_normal((1, H, 7, 7)).astype(np.float32))
    for backend in ("numpy", "torch"):
        call = (lambda fn: fn(*(torch.from_numpy(a) for a in args))) if backend == "torch" else (lambda fn: fn(*args))
        want, got = call(chunkc.compile(g, backend=backend)), call(chunkc.compile(c, backend=backend))
        for w, o in zip(want, got):
            np.testing.assert_array_equal(np.asarray(o), np.asarray(w))


def test_a_mask_not_proven_true_stays():
    c = canonicalize(bias_graph("shifted"))
    ops = [n.op.name for n in c.nodes]
    assert ops.count("where") == 2 and ops.count("add") == 2, ops
    assert "logical_and" not in ops  # ``True and mask`` is the mask, whatever the mask


def test_a_graph_output_is_not_forwarded_to_a_graph_input():
    g = Graph("select_input")
    x = g.add_input("x", "f32", ("L",))
    mask = g.op("ge", g.op("arange", end="L"), g.scalar(0, "i64"))
    g.set_outputs(g.op("where", mask, x, g.scalar(0.0, "f32")), g.op("add", x, g.op("full", shape=(), value=0.0)))
    assert canonicalize(g) is g  # the caller would get its own tensor back


def test_a_value_forwarded_to_a_rewritten_node_reads_its_rewrite():
    """where(all true, causal attention) -> its readers read the attention rewritten to is_causal,
    not the old node (which would then run as well)."""
    g = attention_graph("causal", gqa=False)
    (node,) = attention_nodes(g)
    mask = g.op("ge", g.op("arange", end="L"), g.scalar(0, "i64"))
    out = g.op("mul", g.op("where", g.op("reshape", mask, shape=(1, 1, "L", 1)), node.outputs[0], g.scalar(0.0, "f32")),
               g.scalar(2.0, "f32"))
    g.set_outputs(out)
    c = canonicalize(g)
    (rewritten,) = attention_nodes(c)
    assert rewritten.attrs["is_causal"] and [n.op.name for n in rewritten.outputs[0].users] == ["mul"]
    args = inputs(6, gqa=False)
    np.testing.assert_allclose(chunkc.compile(c, backend="numpy")(*args), chunkc.compile(g, backend="numpy")(*args),
                               rtol=1e-6)
