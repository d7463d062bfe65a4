"""Regions that accumulate and hold halo rows at once: a convolution's row loop that also
accumulates statistics over space (chunkc.passes.accumulate, chunkc.passes.halo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.passes.plan import Plan
from chunkc.passes.reorder import apply_regions
from chunkc.passes.search import GraphIndex, walk_regions
from chunkc.passes.split_statistics import split_statistics

from backend_cases import run_on_all_backends

PAD = ((1, 1), (1, 1))


def _w(g, rng, *shape):
    return g.add_constant("w", (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32))


def _stats_beside_a_conv(side=13, channels=4, seed=0):
    """h = tanh(conv(x)); outputs conv(h) and the spatial mean of h: a loop ending at the second
    conv holds h with a halo row on each side, and the mean must merge h's core rows only."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("stats_beside_conv")
    x = g.add_input("x", "f32", (2, channels, side, side))
    h = O.tanh(O.conv(x, _w(g, rng, channels, channels, 3, 3), padding=PAD))
    m = O.mean(h, axes=(2, 3), keepdim=True)
    z = O.conv(h, _w(g, rng, channels, channels, 3, 3), padding=PAD)
    g.set_outputs(z, m)
    return g


def _conv_norm_block(side=13, channels=8, groups=4, seed=0):
    """conv3x3 -> group_norm -> SiLU -> conv3x3: a UNet resnet block's main path."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("conv_norm_block")
    x = g.add_input("x", "f32", (1, channels, side, side))
    gamma = g.add_constant("gamma", rng.uniform(0.5, 1.5, channels).astype(np.float32))
    beta = g.add_constant("beta", rng.standard_normal(channels).astype(np.float32))
    h = O.conv(x, _w(g, rng, channels, channels, 3, 3), padding=PAD)
    y = O.silu(O.group_norm(h, gamma, beta, num_groups=groups))
    g.set_outputs(O.conv(y, _w(g, rng, channels, channels, 3, 3), padding=PAD))
    return g


def _longest(graph, end_op, axis, accumulate=False):
    end = max(i for i, n in enumerate(graph.nodes) if n.op.name == end_op)
    cands = list(walk_regions(GraphIndex(graph), end, axis, accumulate=accumulate))
    assert cands, f"no region ends at {end_op}"
    return cands[-1]


@pytest.mark.parametrize("axis", [2, 3])
def test_an_accumulator_merges_the_core_rows_of_a_value_with_a_halo(axis):
    g = _stats_beside_a_conv()
    cand = _longest(g, "conv", axis)
    assert [v.name for v in cand.accumulators] == ["mean"]
    h = next(n.outputs[0] for n in g.nodes if n.op.name == "tanh")
    assert cand.halo(h) == (1, 1)  # the second conv reads a row on each side; the mean must not merge them
    x = np.random.default_rng(1).standard_normal((2, 4, 13, 13)).astype(np.float32) + 0.5
    expected = chunkc.interpret(g, x)
    for chunk in (1, 3, 5, 13):
        new_graph, regions = apply_regions(g, [(cand, chunk)])
        plan = Plan(graph=new_graph, regions=regions)
        assert regions[0].accumulators == ("mean",) and "halo" in regions[0].describe()
        run_on_all_backends(new_graph, plan, [x], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [2, 5, 13])
def test_conv_and_group_norm_statistics_share_one_row_loop(chunk):
    """The statistics of a conv's output accumulate in the conv's own row loop (its input read
    with a halo), so the loop never holds the conv's output whole."""
    g, _ = split_statistics(_conv_norm_block())
    cand = _longest(g, "group_norm_moments", 2, accumulate=True)
    assert [g.nodes[i].op.name for i in cand.loop] == ["conv", "group_norm_moments"]
    assert cand.halo(g.inputs[0]) == (1, 1)
    x = np.random.default_rng(2).standard_normal((1, 8, 13, 13)).astype(np.float32) + 1.0
    expected = chunkc.interpret(_conv_norm_block(), x)
    new_graph, regions = apply_regions(g, [(cand, chunk)])
    run_on_all_backends(new_graph, Plan(graph=new_graph, regions=regions), [x], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("chunk", [4, 11])
def test_estimate_of_a_halo_accumulating_loop_matches_the_measured_peak(chunk):
    g = _stats_beside_a_conv(side=64, channels=16)
    cand = _longest(g, "conv", 2)
    assert cand.accumulators and cand.halos
    new_graph, regions = apply_regions(g, [(cand, chunk)])
    plan = Plan(graph=new_graph, regions=regions, backend="torch")
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 16, 64, 64)).astype(np.float32))
    got = chunkc.measure_peak(chunkc.compile(new_graph, plan, backend="torch"), x)
    est = chunkc.estimate_memory(new_graph, plan, backend="torch").peak_bytes
    assert abs(est - got) <= 0.02 * got, (est, got)


def _squeeze_excite(side=64, channels=4, wide=32, seed=0):
    """x * sigmoid(sum_c mean_space(silu(conv3x3(x)))): the wide conv output is read only by the
    spatial mean, so a conv row loop that accumulates the mean never holds it whole."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("squeeze_excite")
    x = g.add_input("x", "f32", (1, channels, side, side))
    y = O.silu(O.conv(x, _w(g, rng, wide, channels, 3, 3), padding=PAD))
    s = O.sum(O.mean(y, axes=(2, 3), keepdim=True), axes=1, keepdim=True)
    g.set_outputs(x * O.sigmoid(s))
    return g


def test_autochunk_accumulates_in_a_conv_row_loop_at_the_floor():
    g = _squeeze_excite()
    image = 4 * 64 * 64 * 4  # bytes of x (and of the output)
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1, backend="torch")
    floor = info.value.lowest_peak_bytes
    # the 32-channel conv output (8 images) is never whole: x, the output and a few rows
    assert floor < 3 * image, (floor, image)
    budget = int(floor * 1.01)
    plan = chunkc.autochunk(g, budget, backend="torch")
    both = [r for r in plan.regions if r.accumulators and any(c.halo != (0, 0) for c in r.chunked)]
    assert both, str(plan)
    x = torch.from_numpy(np.random.default_rng(4).standard_normal((1, 4, 64, 64)).astype(np.float32))
    fn = chunkc.compile(plan.graph, plan, backend="torch")
    np.testing.assert_allclose(fn(x).numpy(), chunkc.interpret(g, x.numpy())[0], rtol=1e-4, atol=1e-5)
    assert chunkc.measure_peak(fn, x) <= 1.02 * budget
    numpy_plan = chunkc.autochunk(g, budget, backend="numpy")
    got = chunkc.compile(numpy_plan.graph, numpy_plan, backend="numpy")(x.numpy())
    np.testing.assert_allclose(got, chunkc.interpret(g, x.numpy())[0], rtol=1e-4, atol=1e-5)
