"""Rematerialization: cheap, large values are recomputed before each reader instead of held."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.passes.remat import RematOptions, rematerializable

from graphs import _weights, attention, inputs_for, layer_norm_by_hand

SIZES = {"L": 512}


def causal_stack(layers: int = 2, D: int = 64, H: int = 16, fused_qkv: bool = False) -> chunkc.Graph:
    """Attention layers sharing one causal mask [L, L] built from ``arange`` comparisons.

    With 16 heads the scores [16, L, L] (float32) are 64 times the boolean mask: the mask is
    small beside the unchunked peak but large beside a budget a few percent of it."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("causal_stack")
    x = g.add_input("x", "f32", ("L", D))
    W = _weights(g, rng)
    i = O.arange(end="L", graph=g)
    blocked = O.logical_not(O.le(O.unsqueeze(i, axis=0), O.unsqueeze(i, axis=1)))
    for _ in range(layers):
        x = x + attention(g, layer_norm_by_hand(x), W, "L", D, H, causal_mask=blocked)
    g.set_outputs(x)
    return g


def floor(graph: chunkc.Graph, **options) -> int:
    with pytest.raises(chunkc.InfeasibleBudgetError) as err:
        chunkc.autochunk(graph, budget=1, sizes=SIZES, **options)
    return err.value.lowest_peak_bytes


def test_a_mask_small_beside_the_peak_is_large_beside_a_low_budget():
    g = causal_stack()
    peak = chunkc.estimate_memory(g, sizes=SIZES).peak_bytes
    mask_nodes = {n.name for n in rematerializable(g, SIZES, peak // 64)} - {n.name for n in rematerializable(g, SIZES, peak)}
    assert any(n.startswith("logical_not") for n in mask_nodes), mask_nodes
    # held, the mask (L*L bytes) sits under the floor; recomputed per query chunk, it does not
    # (without the recompute rounds, which would recompute the held mask too)
    held = floor(g, remat_options=RematOptions(lower_references=()), recompute_rounds=0)
    recomputed = floor(g, recompute_rounds=0)
    assert recomputed <= held - SIZES["L"] ** 2 // 2, (held, recomputed)


def test_plans_that_recompute_the_mask_compute_what_the_graph_computes():
    g = causal_stack()
    # below what the graph reaches with the mask held: only the copies judged against a lower
    # reference (planned when nothing else meets the budget) get there
    # (without the recompute rounds, which would recompute the held mask too)
    held = floor(g, remat_options=RematOptions(lower_references=()), recompute_rounds=0)
    recomputed = floor(g, recompute_rounds=0)
    budget = recomputed + (held - recomputed) // 2
    plan = chunkc.autochunk(g, budget=budget, sizes=SIZES)
    assert any("rematerialized" in note for note in plan.notes), plan.notes
    assert plan.estimated_peak_bytes <= budget
    x = inputs_for(g, SIZES)
    expect = chunkc.compile(g, backend="numpy")(*x)
    got = chunkc.compile(plan.graph, plan=plan, backend="numpy")(*x)
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)
    fn = chunkc.compile(plan.graph, plan=plan, backend="torch")
    xt = [torch.from_numpy(a) for a in x]
    np.testing.assert_allclose(fn(*xt).numpy(), expect, rtol=1e-4, atol=1e-4)
    assert chunkc.measure_peak(fn, *xt) <= 1.02 * budget


def _fused_layer(d: int = 32, heads: int = 2) -> chunkc.Graph:
    """GPT-2's spelling: the residual stream's norm read by one fused QKV projection."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("fused_layer")
    x = g.add_input("x", "f32", ("L", d))
    ln = g.op("layer_norm", x, g.add_constant("g", np.ones(d, np.float32)), g.add_constant("b", np.zeros(d, np.float32)))
    w = g.add_constant("w", rng.standard_normal((d, 3 * d)).astype(np.float32) / 4)
    qkv = O.reshape(g.op("addmm", g.add_constant("c", np.zeros(3 * d, np.float32)), ln, w), shape=(1, "L", 3 * d))
    q, k, v = O.split(qkv, sizes=(d, d, d), axis=2)
    heads_of = lambda t: O.permute(O.reshape(t, shape=(1, "L", heads, d // heads)), dims=(0, 2, 1, 3))
    y = g.op("scaled_dot_product_attention", heads_of(q), heads_of(k), heads_of(v), is_causal=True)
    y = O.reshape(O.permute(y, dims=(0, 2, 1, 3)), shape=("L", d))
    g.set_outputs(y + x)
    return g


def test_the_norm_of_a_held_stream_is_recomputed_for_each_part_of_a_folded_projection():
    from chunkc.passes.fold_split import fold_splits
    from chunkc.passes.remat import rematerialize
    g = _fused_layer()
    peak = chunkc.estimate_memory(g, sizes=SIZES).peak_bytes
    # one reader (the fused projection): nothing to recompute; three after folding: one copy each,
    # so the keys' and values' projections no longer keep the norm alive for the queries' loop
    assert rematerialize(g, SIZES, peak).copies == {}
    copies = rematerialize(fold_splits(g), SIZES, peak).copies
    assert sorted(copies.values()).count("layer_norm") == 3, copies
    # flat loops' floor (nested loops, autochunk's last fallback, go lower; passes.md "Nested loops")
    # (attention's CPU buffers are per thread: the floor moves with the thread count)
    lowest = floor(g, nested=False)
    plan = chunkc.autochunk(g, budget=lowest + (peak - lowest) // 4, sizes=SIZES, nested=False)
    x = inputs_for(g, SIZES)
    np.testing.assert_allclose(chunkc.compile(plan.graph, plan=plan, backend="numpy")(*x),
                               chunkc.compile(g, backend="numpy")(*x), rtol=1e-4, atol=1e-4)
