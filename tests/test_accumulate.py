"""Accumulating regions: a chunk loop that reduces its own chunk axis (chunkc.passes.accumulate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import chunkc
from chunkc import ops as O
from chunkc.errors import ChunkcError
from chunkc.passes.chunked_reference import interpret_plan
from chunkc.passes.plan import ChunkedValue, ChunkRegion, Plan
from chunkc.passes.plan_file import load_plan, save_plan
from chunkc.passes.reorder import apply_regions
from chunkc.passes.accumulate import accumulating_axes
from chunkc.passes.search import GraphIndex, candidate_axes, walk_regions
from chunkc.passes.split_statistics import split_statistics

from strategies import random_graphs
from backend_cases import longest_accumulating_plan, run_on_all_backends

SHAPE = (3, 10, 4)


def _reduction_graph(op, axes, keepdim):
    g = chunkc.Graph(f"acc_{op}")
    x = g.add_input("x", "f32", SHAPE)
    h = O.tanh(x) * 3.0
    g.set_outputs(getattr(O, op)(h, axes=axes, keepdim=keepdim))
    return g


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("axes,keepdim", [(1, False), (1, True), ((1, 2), False), ((0, 1), True)])
@pytest.mark.parametrize("chunk", [3, 4])
def test_reductions_over_the_chunk_axis_match_unchunked(op, axes, keepdim, chunk):
    g = _reduction_graph(op, axes, keepdim)
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    expected = chunkc.interpret(g, x)
    new_graph, plan = longest_accumulating_plan(g, 1, chunk)  # 10 rows in chunks that do not divide it
    assert plan.regions[0].accumulators == (g.nodes[-1].outputs[0].name,)
    assert len(plan.regions[0].nodes) == 3  # tanh, mul and the reduction run in the loop
    run_on_all_backends(new_graph, plan, [x], expected)


def test_var_does_not_accumulate():
    g = _reduction_graph("var", 1, False)
    assert list(walk_regions(GraphIndex(g), len(g.nodes) - 1, 1, accumulate=True)) == []


def test_reduction_of_another_axis_is_not_an_accumulator():
    g = _reduction_graph("sum", 2, False)  # reduces axis 2; the chunk runs along axis 1
    assert list(walk_regions(GraphIndex(g), len(g.nodes) - 1, 1, accumulate=True)) == []


def _middle_graph():
    """One loop along axis 1 makes y (sliced) and three accumulators read after it."""
    g = chunkc.Graph("middle")
    x = g.add_input("x", "f32", SHAPE)
    h = O.exp(O.tanh(x))
    s = O.sum(h, axes=1, keepdim=True)
    m = O.amax(h, axes=(1, 2))
    mu = O.mean(h, axes=1)
    y = O.sin(h)
    g.set_outputs(y, O.exp(s) * 2.0, m, mu)
    return g


def test_accumulators_inside_a_region_that_ends_elsewhere():
    g = _middle_graph()
    index = GraphIndex(g)
    end = next(i for i, n in enumerate(g.nodes) if n.op.name == "sin")
    cand = list(walk_regions(index, end, 1))[-1]
    assert sorted(v.name for v in cand.accumulators) == ["amax", "mean", "sum"]
    assert cand.start == 0
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    expected = chunkc.interpret(g, x)
    for chunk in (1, 3, 7):
        new_graph, regions = apply_regions(g, [(cand, chunk)])
        run_on_all_backends(new_graph, Plan(graph=new_graph, regions=regions), [x], expected)


def test_a_loop_node_may_not_read_an_accumulator():
    g = chunkc.Graph("reads_acc")
    x = g.add_input("x", "f32", SHAPE)
    s = O.sum(x, axes=1, keepdim=True)
    g.set_outputs(x * s)  # the product needs the finished sum
    index = GraphIndex(g)
    cands = list(walk_regions(index, len(g.nodes) - 1, 1))
    assert all(not c.accumulators for c in cands)  # the sum is computed whole, before the loop
    bad = ChunkRegion(nodes=("sum", "mul"), chunked=(ChunkedValue("x", 1), ChunkedValue("mul", 1)),
                      outputs=("mul",), extent=10, chunk_size=3, accumulators=("sum",))
    with pytest.raises(ChunkcError, match="accumulator %sum is read inside the loop .by node mul."):
        chunkc.estimate_memory(g, Plan(graph=g, regions=(bad,)))


def test_plan_refuses_an_op_that_does_not_accumulate():
    g = _reduction_graph("var", 1, False)
    names = [n.name for n in g.nodes]
    region = ChunkRegion(nodes=tuple(names), chunked=(ChunkedValue("x", 1), ChunkedValue(names[0], 1),
                                                      ChunkedValue(names[1], 1)),
                         outputs=("var",), extent=10, chunk_size=3, accumulators=("var",))
    with pytest.raises(ChunkcError, match="op var .node var. does not accumulate over axis 1"):
        interpret_plan(Plan(graph=g, regions=(region,)), np.zeros(SHAPE, np.float32))


def test_accumulators_round_trip_through_plan_files(tmp_path):
    g = _reduction_graph("mean", 1, False)
    new_graph, plan = longest_accumulating_plan(g, 1, 3)
    save_plan(plan, tmp_path / "p.json")
    loaded = load_plan(tmp_path / "p.json")
    assert loaded.regions == plan.regions and loaded.regions[0].accumulators == ("mean",)


def _resnet_block(side=12, channels=8, groups=4, seed=0):
    """x -> exp -> group_norm -> silu -> 1x1 projection -> + x: group norm over space."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("gn_block")
    x = g.add_input("x", "f32", (2, channels, side, side))
    w = g.add_constant("w", rng.uniform(0.5, 1.5, channels).astype(np.float32))
    b = g.add_constant("b", rng.standard_normal(channels).astype(np.float32))
    h = O.exp(x * 0.5)
    y = O.silu(O.group_norm(h, w, b, num_groups=groups))
    g.set_outputs(O.sigmoid(y) + 1.0)
    return g


def test_group_norm_split_matches_the_fused_op():
    g = _resnet_block()
    split, pairs = split_statistics(g)
    assert [p.name for p in pairs] == ["group_norm"]
    assert {n.op.name for n in split.nodes} >= {"group_norm_moments", "group_norm_apply"}
    x = np.random.default_rng(3).standard_normal((2, 8, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(chunkc.interpret(split, x)[0], chunkc.interpret(g, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_group_norm_chunks_along_space(backend):
    g = _resnet_block()
    x = np.random.default_rng(4).standard_normal((2, 8, 12, 12)).astype(np.float32)
    expected = chunkc.interpret(g, x)
    unchunked = chunkc.estimate_memory(g, backend=backend).peak_bytes
    plan = chunkc.autochunk(g, budget=0.6, backend=backend)
    assert plan.estimated_peak_bytes <= 0.6 * unchunked
    assert any("group_norm_apply" in r.nodes for r in plan.regions), str(plan)  # normalized a chunk at a time
    run_on_all_backends(plan.graph, plan, [x], expected, atol=1e-4, rtol=1e-4)


def _moments_region(graph, chunk, axis=2):
    """The split graph with the statistics accumulated over ``axis`` in a loop that also runs
    their producers (exp, mul)."""
    split, _ = split_statistics(graph)
    end = next(i for i, n in enumerate(split.nodes) if n.op.name == "group_norm_moments")
    cand = list(walk_regions(GraphIndex(split), end, axis, accumulate=True))[-1]
    assert [split.nodes[i].op.name for i in cand.loop] == ["mul", "exp", "group_norm_moments"]
    new_graph, regions = apply_regions(split, [(cand, chunk)])
    return new_graph, Plan(graph=new_graph, regions=regions)


@pytest.mark.parametrize("axis,chunk", [(2, 5), (3, 7), (2, 12)])
def test_group_norm_statistics_accumulate_over_space(axis, chunk):
    g = _resnet_block()
    x = np.random.default_rng(4).standard_normal((2, 8, 12, 12)).astype(np.float32) + 2.0
    expected = chunkc.interpret(g, x)
    new_graph, plan = _moments_region(g, chunk, axis)
    assert plan.regions[0].accumulators == ("group_norm_moments",)
    assert "accumulated over the chunk axis (whole, merged each iteration): %group_norm_moments" in str(plan)
    run_on_all_backends(new_graph, plan, [x], expected, atol=1e-5, rtol=1e-5)


def test_group_norm_is_fused_back_where_no_region_uses_the_split():
    g = _resnet_block()
    plan = chunkc.autochunk(g, budget=0.99, backend="torch")
    ops = {n.op.name for n in plan.graph.nodes}
    used = {n for r in plan.regions for n in r.nodes}
    if not any(n.startswith("group_norm") for n in used):
        assert "group_norm" in ops and "group_norm_moments" not in ops


def test_accumulating_region_memory_matches_the_torch_measure():
    g = _resnet_block(side=48, channels=32)
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((2, 32, 48, 48)).astype(np.float32))
    new_graph, plan = _moments_region(g, 10)
    plan.backend = "torch"
    module = chunkc.compile(new_graph, plan, backend="torch")
    measured = chunkc.measure_peak(module, x)
    estimated = chunkc.estimate_memory(plan.graph, plan, backend="torch").peak_bytes
    assert abs(measured - estimated) <= 0.02 * measured, (measured, estimated)


@pytest.mark.parametrize("chunk", [7, 48])
def test_statistics_of_sliced_rows_match_and_their_copies_are_estimated(chunk):
    """group_norm_moments straight on a region input: each chunk is a slice of rows, whose
    (sample, group) blocks are not dense; the PyTorch lowering copies one block at a time
    before ATen's group-norm kernel, and the estimate counts that copy (a whole-axis chunk
    is dense: no copy)."""
    g = chunkc.Graph("sliced_moments")
    x = g.add_input("x", "f32", (2, 32, 48, 48))
    g.set_outputs(O.group_norm_moments(x, num_groups=8))
    cand = list(walk_regions(GraphIndex(g), 0, 2, accumulate=True))[-1]
    new_graph, regions = apply_regions(g, [(cand, chunk)])
    plan = Plan(graph=new_graph, regions=regions, backend="torch")
    data = np.random.default_rng(6).standard_normal((2, 32, 48, 48)).astype(np.float32) * 3.0 + 1.0
    grouped = data.astype(np.float64).reshape(2, 8, -1)
    want = np.stack((grouped.mean(-1), (grouped * grouped).mean(-1)), axis=-1)
    module = chunkc.compile(new_graph, plan, backend="torch")
    got = module(torch.from_numpy(data))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    measured = chunkc.measure_peak(module, torch.from_numpy(data))
    estimated = chunkc.estimate_memory(new_graph, plan, backend="torch").peak_bytes
    block = 4 * 48 * 48 * 4  # one group's channels of every row, float32
    copied = chunk < 48
    assert measured >= (2 if copied else 1) * (block * chunk // 48), measured  # the kernel's block (and the copy)
    assert abs(measured - estimated) <= 512, (measured, estimated)


@settings(max_examples=40, deadline=None)
@given(random_graphs(max_nodes=10))
def test_random_graphs_accumulating_regions_match(case):
    """Property: every region ending at an accumulating reduction, and every region with an
    accumulator inside, run chunked by the reference interpreter equals the unchunked run."""
    g = case.graph
    inputs = case.inputs()
    expected = chunkc.interpret(g, *inputs)
    index = GraphIndex(g)
    walks = [(end, axis, True) for end, n in enumerate(g.nodes) for axis in accumulating_axes(n)]
    walks += [(end, axis, False) for end, n in enumerate(g.nodes) for axis in candidate_axes(n)]
    for end, axis, accumulate in walks:
        for k, cand in enumerate(walk_regions(index, end, axis, accumulate=accumulate)):
            if k >= 12:
                break
            if not cand.accumulators:
                continue
            for chunk in (1, 2):
                new_graph, regions = apply_regions(g, [(cand, chunk)])
                got = interpret_plan(Plan(graph=new_graph, regions=regions, sizes=case.sizes), *inputs)
                for e, o in zip(expected, got):
                    np.testing.assert_allclose(o, e, atol=1e-4, rtol=1e-4,
                                               err_msg=f"{case.description}: region {cand.start}..{cand.end}")


def _pointwise_conv_block(channels=16, side=32, seed=0):
    """conv1x1 -> group_norm -> SiLU -> conv1x1 -> + x: the resnet block of a UNet with
    pointwise convolutions (whose records carry space)."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("pointwise_block")
    x = g.add_input("x", "f32", (1, channels, side, side))
    w = g.add_constant("w", rng.uniform(0.5, 1.5, channels).astype(np.float32))
    b = g.add_constant("b", rng.standard_normal(channels).astype(np.float32))
    k = g.add_constant("k", (rng.standard_normal((channels, channels, 1, 1)) / 4).astype(np.float32))
    y = O.conv(O.silu(O.group_norm(O.conv(x, k), w, b, num_groups=4)), k)
    g.set_outputs(O.add(y, x))
    return g


def _floor(graph, **options):
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(graph, 1, backend="torch", **options)
    return info.value.lowest_peak_bytes


def test_group_norm_split_lowers_the_floor_of_a_resnet_block():
    g = _pointwise_conv_block()
    unsplit, split = _floor(g, rewrite=False), _floor(g)
    assert split < 0.6 * unsplit, (split, unsplit)  # the normalization no longer holds its input and output whole
    plan = chunkc.autochunk(g, int(split * 1.05), backend="torch")
    assert any("group_norm_apply" in r.nodes for r in plan.regions)
    x = torch.from_numpy(np.random.default_rng(6).standard_normal((1, 16, 32, 32)).astype(np.float32))
    got = chunkc.compile(g, plan, backend="torch")(x).numpy()
    np.testing.assert_allclose(got, chunkc.interpret(g, x.numpy())[0], rtol=1e-4, atol=1e-4)


def test_a_split_whose_apply_output_a_region_slices_is_not_fused_back():
    """The apply pass runs before the loop, which reads its output as slices: fusing the split
    back would rename the value the region names."""
    from chunkc.passes.split_statistics import fuse_unused_splits
    split, splits = split_statistics(_resnet_block())
    silu = next(n for n in split.nodes if n.op.name == "silu")
    apply_out = silu.inputs[0]
    region = ChunkRegion(nodes=(silu.name,), chunked=(ChunkedValue(apply_out.name, 2), ChunkedValue(silu.outputs[0].name, 2)),
                         outputs=(silu.outputs[0].name,), extent=12, chunk_size=5)
    plan = Plan(graph=split, regions=(region,))
    kept = fuse_unused_splits(plan, splits, lambda g, p: chunkc.estimate_memory(g, p).peak_bytes)
    assert kept is plan  # nothing fused: the region slices the apply's output
    x = np.random.default_rng(7).standard_normal((2, 8, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(interpret_plan(kept, x)[0], chunkc.interpret(_resnet_block(), x)[0], rtol=1e-5, atol=1e-5)
