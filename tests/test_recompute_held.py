"""Recomputing what the lowest plan holds whole (chunkc.passes.remat.recompute_chain, autochunk's
recompute rounds): a UNet up block whose concatenated input feeds a group norm's statistics, its
apply pass and a 1x1 shortcut."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.passes.remat import recompute_chain
from chunkc.passes.split_statistics import split_statistics

PAD = ((1, 1), (1, 1))
SIDE = 64  # (at 32 a convolution kernel's own workspace on a few rows is a large share of the floor)


def _w(g, rng, *shape):
    return g.add_constant("w", (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32))


def _up_block(side=SIDE, seed=0):
    """cat(conv3x3(upsample(low)), skip) -> group_norm -> SiLU -> conv3x3, plus a 1x1 shortcut of
    the concat: the concat (24 channels) is read by the statistics, the apply pass and the shortcut."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("up_block")
    low = g.add_input("low", "f32", (1, 16, side // 2, side // 2))
    skip = g.add_input("skip", "f32", (1, 8, side, side))
    up = O.interpolate(low, size=(side, side), mode="nearest", align_corners=False)
    c = O.concat(O.conv(up, _w(g, rng, 16, 16, 3, 3), padding=PAD), skip, axis=1, name="joined")
    gamma = g.add_constant("gamma", rng.uniform(0.5, 1.5, 24).astype(np.float32))
    beta = g.add_constant("beta", rng.standard_normal(24).astype(np.float32))
    h = O.conv(O.silu(O.group_norm(c, gamma, beta, num_groups=4)), _w(g, rng, 8, 24, 3, 3), padding=PAD)
    g.set_outputs(h + O.conv(c, _w(g, rng, 8, 24, 1, 1)))
    return g


def _inputs(side=SIDE, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 16, side // 2, side // 2)).astype(np.float32),
            rng.standard_normal((1, 8, side, side)).astype(np.float32)]


def _floor(graph, **options):
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(graph, 1, **options)
    return info.value.lowest_peak_bytes


def test_the_chain_stops_at_small_inputs_and_at_values_held_anyway():
    g, _ = split_statistics(_up_block())
    chain = recompute_chain(g, {}, "joined")
    # the concat, the conv and the upsampling; not the half-size input nor the skip (graph inputs)
    assert sorted(n.op.name for n in chain) == ["concat", "conv", "interpolate"]
    assert recompute_chain(g, {}, "joined", max_nodes=2) is None
    assert recompute_chain(g, {}, g.outputs[0].name) is None  # a graph output is held anyway
    assert recompute_chain(g, {}, "no_such_value") is None


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_recomputing_the_held_concat_lowers_the_floor_and_runs(backend):
    g = _up_block()
    held = _floor(g, backend=backend, recompute_rounds=0)
    lower = _floor(g, backend=backend)
    assert lower < 0.75 * held, (lower, held)
    budget = int(lower * 1.02)
    plan = chunkc.autochunk(g, budget, backend=backend)
    assert any(note.startswith("recomputed %joined") for note in plan.notes), plan.notes
    # the statistics accumulate in a row loop that recomputes the concat with its halo
    assert any(r.accumulators and any(c.halo != (0, 0) for c in r.chunked) for r in plan.regions), str(plan)
    inputs = _inputs()
    expected = chunkc.interpret(g, *inputs)[0]
    if backend == "numpy":
        got = chunkc.compile(plan.graph, plan, backend="numpy")(*inputs)
    else:
        fn = chunkc.compile(plan.graph, plan, backend="torch")
        args = [torch.from_numpy(a) for a in inputs]
        got = fn(*args).numpy()
        assert chunkc.measure_peak(fn, *args) <= 1.02 * budget
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_the_report_names_what_the_floor_holds_whole():
    g = _up_block()
    budget = int(_floor(g, backend="torch", recompute_rounds=0) * 1.02)
    plan = chunkc.autochunk(g, budget, backend="torch", recompute_rounds=0)
    rep = chunkc.estimate_memory(plan.graph, plan, backend="torch")
    # the concat, written whole by its region, is the largest value held at the peak; the loop's
    # chunks are live too, but not held whole
    assert list(rep.whole_at_peak)[0] == "joined" and rep.whole_at_peak["joined"] == 24 * SIDE * SIDE * 4
    chunks = {name.split(" ")[0] for name in rep.live_at_peak if name.endswith("[chunk]")}
    assert chunks and not chunks & set(rep.whole_at_peak)


DEEP = 13  # 1x1 convolutions before each norm: one more than the chain a round once recomputed at most
CH = 8


def _deep_chains(side=32, stages=2, seed=0):
    """Twice: DEEP 1x1 convolutions (not cheap enough to rematerialize up front) -> group_norm ->
    SiLU -> conv3x3.  Each norm's input is made by a chain longer than 12 nodes, read by the
    statistics and by the apply pass: held whole unless the whole chain is recomputed for each."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("deep_chains")
    x = g.add_input("image", "f32", (1, CH, side, side))
    for _ in range(stages):
        for _ in range(DEEP):
            x = O.conv(x, _w(g, rng, CH, CH, 1, 1))
        gamma = g.add_constant("gamma", rng.uniform(0.5, 1.5, CH).astype(np.float32))
        beta = g.add_constant("beta", rng.standard_normal(CH).astype(np.float32))
        x = O.conv(O.silu(O.group_norm(x, gamma, beta, num_groups=4)), _w(g, rng, CH, CH, 3, 3), padding=PAD)
    g.set_outputs(x)
    return g


def _held_at_floor(graph, **options):
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(graph, 1, backend="torch", progress=False, **options)
    return info.value.lowest_peak_bytes, info.value.held


def test_long_chains_are_recomputed_round_after_round():
    g = _deep_chains()
    image_bytes = CH * 32 * 32 * 4
    short_floor, short_held = _held_at_floor(g, recompute_nodes=12)
    floor, held = _held_at_floor(g)
    # with chains of 12 nodes at most, a norm's input (or what it makes) stays whole at the floor
    assert max(v for k, v in short_held.items() if k != g.outputs[0].name) == image_bytes, short_held
    # recomputing the whole chain for each pass, one stage after the other, leaves only the output whole
    assert floor < short_floor
    assert [k for k, v in held.items() if v >= image_bytes] == [g.outputs[0].name], held


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_plan_that_recomputes_long_chains_runs_within_its_estimate(backend):
    from chunkc.passes.chunked_reference import interpret_plan

    g = _deep_chains()
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1, backend=backend, progress=False)
    plan = chunkc.autochunk(g, int(info.value.lowest_peak_bytes * 1.02), backend=backend, progress=False)
    assert sum(note.startswith("recomputed %") for note in plan.notes) >= 2, plan.notes
    x = np.random.default_rng(3).standard_normal((1, CH, 32, 32)).astype(np.float32)
    expected = chunkc.interpret(g, x)[0]
    np.testing.assert_allclose(interpret_plan(plan, x)[0], expected, rtol=1e-4, atol=1e-4)
    fn = chunkc.compile(plan.graph, plan, backend=backend, strict=True)
    if backend == "numpy":
        np.testing.assert_allclose(fn(x), expected, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_allclose(fn(torch.from_numpy(x)).numpy(), expected, rtol=1e-4, atol=1e-4)
        assert chunkc.measure_peak(fn, torch.from_numpy(x)) == plan.estimated_peak_bytes


def test_alike_held_values_are_tried_cheapest_first_and_much_smaller_ones_last():
    from chunkc.passes.autochunk import _cheapest_first

    held = {"deep": 8 << 20, "input_conv": 8 << 20, "half": 5 << 20, "small": 2 << 20}
    price = {"deep": 3.0, "input_conv": 0.1, "half": 0.05, "small": 0.0}.__getitem__
    # at least half the largest: by price; the smaller value keeps its place after them
    assert _cheapest_first(list(held), held, price) == ["half", "input_conv", "deep", "small"]
    assert _cheapest_first([], held, price) == []


def test_the_price_of_a_round_is_the_chain_at_each_reader_per_byte_held():
    from chunkc.passes.autochunk import AutochunkOptions, _Planner, _recompute_price
    from chunkc.passes.memory import estimate_memory

    g, _ = split_statistics(_up_block())
    unchunked = estimate_memory(g, backend="torch")
    planner = _Planner(g, {}, AutochunkOptions(progress=False), 1, unchunked, [], 0.0, {})
    chain = recompute_chain(g, {}, "joined")
    times = planner.space.times
    joined = g.value("joined")
    readers = [n for n in g.nodes if joined in n.inputs]
    assert len(readers) == 3  # the statistics, the apply pass and the shortcut
    want = sum(times.times[times.position[n]] for n in chain) * 3 / joined.type.nbytes({})
    assert _recompute_price(planner, "joined", 128) == pytest.approx(want)
    assert _recompute_price(planner, "joined", 2) == float("inf")  # no chain that short


def test_an_optimistic_relaxation_is_aimed_lower_not_dropped_for_the_floors_chunks(monkeypatch):
    """When the floor's regions relaxed to the budget are over it by the full estimator (the fast
    region model was optimistic), the relaxation is aimed lower again: the plan keeps chunks
    larger than the floor's one row, within the budget, and its values are the unchunked ones."""
    from chunkc.ir.sizes import evaluate
    from chunkc.passes import autochunk as A
    from chunkc.passes.selection import SearchSpace

    g = _up_block()
    budget = int(_floor(g, backend="torch") * 1.6)
    real = SearchSpace.largest_chunk
    # a fast model that allows half as much again as fits: every relaxation at the budget is over it
    monkeypatch.setattr(SearchSpace, "largest_chunk",
                        lambda self, cand, target: None if (c := real(self, cand, target)) is None else int(1.5 * c))

    def largest_chunk(tries):
        monkeypatch.setattr(A._Planner._relaxed, "__defaults__", (tries,))
        plan = chunkc.autochunk(g, budget, backend="torch", progress=False)
        assert plan.estimated_peak_bytes <= budget
        return plan, max(evaluate(r.chunk_size, plan.sizes) for r in plan.regions)

    assert largest_chunk(1)[1] == 1  # one relaxation only: the floor's plan, a row at a time
    plan, chunk = largest_chunk(A.RELAX_TRIES)
    assert chunk > 1, str(plan)
    inputs = _inputs()
    fn = chunkc.compile(plan.graph, plan, backend="torch")
    args = [torch.from_numpy(a) for a in inputs]
    np.testing.assert_allclose(fn(*args).numpy(), chunkc.interpret(g, *inputs)[0], rtol=1e-4, atol=1e-4)
    assert chunkc.measure_peak(fn, *args) <= 1.02 * budget


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_round_the_budget_does_not_need_is_left_out(backend):
    """Above the floor without recomputation, a plan that recomputes the concat at each reader
    (as a round would) gives way to the plan that holds it: predicted faster, within the budget."""
    from chunkc.passes.autochunk import AutochunkOptions, _fewer_copies, _Planner, _replayed
    from chunkc.passes.chunked_reference import interpret_plan
    from chunkc.passes.cost import TimeModel
    from chunkc.passes.memory import estimate_memory

    g, _ = split_statistics(_up_block())
    budget = int(_floor(g, backend=backend, recompute_rounds=0) * 1.3)
    # slowdowns against the user's graph, as autochunk gives them: copies count
    start = _Planner(g, {}, AutochunkOptions(progress=False, backend=backend), budget,
                     estimate_memory(g, backend=backend), [], 0.0, {},
                     reference_seconds=TimeModel(g, {}, backend=backend).total)
    kept = _replayed(start, ["joined"], 128)
    assert kept.recomputed == ("joined",) and len(kept.graph.nodes) > len(g.nodes)
    copied = kept.plan()
    assert copied is not None
    plan = _fewer_copies(start, kept, copied, 128, tries=4)
    assert plan is not copied and plan.estimated_slowdown < copied.estimated_slowdown
    assert any(n.startswith("kept %joined whole") for n in plan.notes), plan.notes
    assert len(plan.graph.nodes) < len(kept.graph.nodes) and plan.estimated_peak_bytes <= budget
    assert _fewer_copies(start, kept, copied, 128, tries=0) is copied
    inputs = _inputs()
    expected = chunkc.interpret(g, *inputs)[0]
    np.testing.assert_allclose(interpret_plan(plan, *inputs)[0], expected, rtol=1e-4, atol=1e-4)
    fn = chunkc.compile(plan.graph, plan, backend=backend)
    if backend == "numpy":
        np.testing.assert_allclose(fn(*inputs), expected, rtol=1e-4, atol=1e-4)
    else:
        args = [torch.from_numpy(a) for a in inputs]
        np.testing.assert_allclose(fn(*args).numpy(), expected, rtol=1e-4, atol=1e-4)
        assert chunkc.measure_peak(fn, *args) <= 1.02 * budget
