"""chunkc.autochunk: plans meet their budget (or say why not) and compute the same values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import re

import chunkc
from chunkc import ops as O
from chunkc.passes.plan import Plan
from chunkc.passes.chunked_reference import interpret_plan
from chunkc.passes.report import plan_report

from graphs import attention_block, inputs_for, mlp, transformer
from backend_cases import run_on_all_backends

MODELS = {
    "attention": (attention_block, {"L": 256}),
    "mlp": (mlp, {"B": 2, "L": 128}),
    "transformer2": (lambda: transformer(layers=2), {"L": 192}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.2, 0.1])
def test_plan_meets_budget_or_raises(name, fraction):
    build, sizes = MODELS[name]
    g = build()
    unchunked = chunkc.estimate_memory(g, sizes=sizes).peak_bytes
    budget = int(fraction * unchunked)
    try:
        plan = chunkc.autochunk(g, fraction, sizes=sizes)
    except chunkc.InfeasibleBudgetError as exc:
        assert exc.lowest_peak_bytes > budget
        assert exc.peak_node in {n.name for n in g.nodes}
        assert "lowest peak the search reaches" in str(exc)
        return
    assert plan.budget_bytes == budget
    # the guarantee: checked by the full estimator, independently of the search's fast model
    assert chunkc.estimate_memory(plan.graph, plan=plan, sizes=sizes).peak_bytes <= budget
    assert plan.estimated_peak_bytes <= budget
    chunkc.verify(plan.graph)
    # same values, at the planned size and at a size the chunk does not divide
    for run_sizes in (sizes, {k: (v - 3 if v > 8 else v) for k, v in sizes.items()}):
        inputs = inputs_for(g, run_sizes)
        expected = chunkc.interpret(g, *inputs)
        got = interpret_plan(plan, *inputs)
        for e, o in zip(expected, got):
            np.testing.assert_allclose(o, e, atol=1e-4, rtol=1e-4)


def test_half_budget_on_attention_is_feasible_and_reported():
    g = attention_block()
    plan = chunkc.autochunk(g, 0.5, sizes={"L": 256})
    assert len(plan.regions) >= 1
    report = plan_report(plan)
    assert "region 0" in report and "chunk" in report and "estimated peak" in report
    assert plan.estimated_slowdown is not None and plan.estimated_slowdown >= 1.0


def test_budget_in_bytes_and_percent_string():
    g = mlp()
    sizes = {"B": 2, "L": 128}
    unchunked = chunkc.estimate_memory(g, sizes=sizes).peak_bytes
    by_bytes = chunkc.autochunk(g, int(unchunked * 0.6), sizes=sizes)
    by_text = chunkc.autochunk(g, "60%", sizes=sizes)
    assert by_bytes.budget_bytes == int(unchunked * 0.6)
    assert by_text.budget_bytes == int(unchunked * 0.6)
    assert by_bytes.estimated_peak_bytes <= by_bytes.budget_bytes


def test_no_regions_when_the_budget_already_holds():
    plan = chunkc.autochunk(mlp(), 1.0, sizes={"B": 2, "L": 64})
    assert plan.regions == ()


def test_infeasible_budget_names_lowest_peak_and_node():
    g = attention_block()
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 0.01, sizes={"L": 256})
    exc = info.value
    assert exc.lowest_peak_bytes > 0
    assert f"node {exc.peak_node}" in str(exc)
    assert "budget" in str(exc)


def test_missing_sizes_are_named():
    with pytest.raises(chunkc.ChunkcError, match="symbolic sizes L"):
        chunkc.autochunk(attention_block(), 0.5)


def test_bad_budget_is_refused():
    with pytest.raises(chunkc.ChunkcError, match="budget"):
        chunkc.autochunk(mlp(), -3, sizes={"B": 1, "L": 8})


# -- region outputs written in place over dying inputs ------------------------------------------------


def _residual_stack(layers=2, L="L", D=32, F=128):
    """Pre-LN blocks x = x + mlp(ln(x)): each block's output can take its input's storage."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("residual")
    x = g.add_input("x", "f32", (L, D))
    h = O.tanh(x)  # a node's value: graph inputs are never overwritten
    for k in range(layers):
        w1 = g.add_constant(f"w1_{k}", (rng.standard_normal((F, D)) / np.sqrt(D)).astype(np.float32))
        w2 = g.add_constant(f"w2_{k}", (rng.standard_normal((D, F)) / np.sqrt(F)).astype(np.float32))
        h = h + O.linear(O.gelu(O.linear(O.layer_norm(h, num_axes=1), w1)), w2)
    g.set_outputs(O.relu(h))
    return g


def test_region_output_takes_the_storage_of_the_input_it_replaces():
    import torch
    from chunkc.passes.plan_index import PlanIndex

    g = _residual_stack()
    sizes = {"L": 512}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes, progress=False)
    pairs = [p for r in plan.regions for p in r.reuse]
    assert pairs, plan.regions  # the residual stream is updated in place
    for view in PlanIndex.build(plan.graph, plan).regions:
        for o, r in view.reuse.items():
            assert view.chunk[o].axis == view.chunk[r].axis and o.type == r.type
    x = np.random.default_rng(1).standard_normal((300, 32)).astype(np.float32)
    (want,) = chunkc.interpret(g, x)
    np.testing.assert_allclose(interpret_plan(plan, x)[0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(chunkc.compile(g, plan, backend="numpy")(x), want, rtol=1e-4, atol=1e-4)
    fn = chunkc.compile(g, plan, backend="torch")
    np.testing.assert_allclose(fn(torch.from_numpy(x)).numpy(), want, rtol=1e-4, atol=1e-4)
    assert "in place of %" in chunkc.backends.emit_source(g, plan, backend="torch")
    # the estimate counts no buffer for it, and the measure agrees
    assert chunkc.measure_peak(fn, torch.from_numpy(np.random.default_rng(2).standard_normal((512, 32))
                                                    .astype(np.float32))) == plan.estimated_peak_bytes


def test_a_reuse_that_would_overwrite_live_data_is_refused():
    from chunkc.passes.plan import ChunkedValue as CV, ChunkRegion

    def plan_with(reuse, read_after):
        g = chunkc.Graph("g")
        x = g.add_input("x", "f32", ("L", 8))
        a = O.tanh(x, name="a")
        c = O.add(O.exp(a, name="b"), a, name="c")
        g.set_outputs(O.mul(O.relu(c), a, name="e") if read_after else O.relu(c, name="e"))
        region = ChunkRegion(nodes=("b", "c"), chunked=(CV("a", 0), CV("b", 0), CV("c", 0)), outputs=("c",),
                             extent=chunkc.sym("L"), chunk_size=4, reuse=reuse)
        return Plan(g, (region,), sizes={"L": 10})

    x = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    good = plan_with((("c", "a"),), read_after=False)
    np.testing.assert_allclose(chunkc.compile(good.graph, good, backend="numpy")(x),
                               chunkc.interpret(good.graph, x)[0], rtol=1e-6)
    for reuse, read_after, message in [((("c", "x"),), False, "is not an input of the region"),
                                       ((("c", "a"),), True, "%a, which shares its storage, is read after the loop "
                                                             "(by node e)")]:
        bad = plan_with(reuse, read_after)
        for run in (lambda: chunkc.estimate_memory(bad.graph, plan=bad), lambda: chunkc.compile(bad.graph, bad)):
            with pytest.raises(chunkc.ChunkcError, match=r"output %c cannot take the storage of .*" + re.escape(message)):
                run()


def test_a_reuse_of_storage_that_a_loop_node_reads_through_another_view_is_refused():
    """Queries and keys split from one fused projection share its storage: writing the output
    over the queries a chunk at a time would overwrite keys that later iterations read whole."""
    from chunkc.passes import search as S
    from chunkc.passes.plan import ChunkedValue as CV, ChunkRegion
    from chunkc.passes.region_memory import ValueFacts, reusable

    g = chunkc.Graph("fused")
    x = g.add_input("x", "f32", ("L", 8))
    h = O.tanh(O.concat(x, x, axis=1), name="h")
    q, k = O.split(h, sizes=(8, 8), axis=1)
    q.name, k.name = "q", "k"
    kt = O.permute(k, dims=(1, 0), name="kt")
    p = O.softmax(O.matmul(q, kt, name="s"), axis=-1, name="p")
    g.set_outputs(O.relu(O.matmul(p, k, name="c"), name="r"))
    region = ChunkRegion(nodes=("s", "p", "c"), chunked=(CV("q", 0), CV("s", 0), CV("p", 0), CV("c", 0)),
                         outputs=("c",), extent=chunkc.sym("L"), chunk_size=4, reuse=(("c", "q"),))
    bad = Plan(g, (region,), sizes={"L": 10})
    for run in (lambda: chunkc.estimate_memory(bad.graph, plan=bad), lambda: chunkc.compile(bad.graph, bad)):
        with pytest.raises(chunkc.ChunkcError, match=r"output %c cannot take the storage of .*%kt?, which shares "
                                                     r"its storage, is read in the loop \(by node [sc]\)"):
            run()
    good = Plan(g, (dataclasses.replace(region, reuse=()),), sizes={"L": 10})
    x = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    np.testing.assert_allclose(chunkc.compile(g, good, backend="numpy")(x), chunkc.interpret(g, x)[0], rtol=1e-5)
    index = S.GraphIndex(g)
    facts = ValueFacts(g, index, {"L": 10})
    end = next(i for i, n in enumerate(g.nodes) if n.name == "c")
    assert any(True for _ in S.walk_regions(index, end, 0))
    for cand in S.walk_regions(index, end, 0):
        assert all(r.name != "q" for _, r in reusable(facts, index, cand)), cand



def test_a_reuse_of_a_broadcast_view_is_refused():
    """Fuzz case 11000009 (causal attention by ``bmm``): the additive mask [L, L] expanded over
    the batch to [2, 1, L, L] was taken as the storage of ``add(scores, mask)``: NumPy refused
    to write into the broadcast view, PyTorch wrote one mask element for both batch items
    (wrong values).  A view that holds one element at several indices is never written over,
    by the planner (region_memory.reusable) nor in a plan (PlanIndex)."""
    from chunkc.passes import search as S
    from chunkc.passes.plan import ChunkedValue as CV, ChunkRegion
    from chunkc.passes.region_memory import ValueFacts, reusable

    g = chunkc.Graph("broadcast_mask")
    s = g.add_input("s", "f32", (2, 1, "L", "L"))
    m = g.add_input("m", "f32", ("L", "L"))
    mask = O.expand(O.unsqueeze(O.tanh(m, name="t"), axis=0, name="u"), shape=(2, 1, chunkc.sym("L"), chunkc.sym("L")),
                    name="mask")
    g.set_outputs(O.exp(O.add(O.mul(s, 0.5, name="d"), mask, name="a"), name="e"))
    region = ChunkRegion(nodes=("d", "a"), chunked=(CV("s", 2), CV("mask", 2), CV("d", 2), CV("a", 2)),
                         outputs=("a",), extent=chunkc.sym("L"), chunk_size=4, reuse=(("a", "mask"),))
    bad = Plan(g, (region,), sizes={"L": 10})
    for run in (lambda: chunkc.estimate_memory(bad.graph, plan=bad), lambda: chunkc.compile(bad.graph, bad)):
        with pytest.raises(chunkc.ChunkcError, match=r"output %a cannot take the storage of %mask: %mask is a view "
                                                     r"that holds one element at several indices"):
            run()
    index = S.GraphIndex(g)
    facts = ValueFacts(g, index, {"L": 10})
    end = next(i for i, n in enumerate(g.nodes) if n.name == "a")
    cands = list(S.walk_regions(index, end, 2))
    assert any(cand.chunked for cand in cands)
    for cand in cands:
        assert all(r.name != "mask" for _, r in reusable(facts, index, cand)), cand
    # planned and run: every backend agrees with the interpreter
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, 1, 24, 24)).astype(np.float32), rng.standard_normal((24, 24)).astype(np.float32)]
    plan = chunkc.autochunk(g, 0.5, sizes={"L": 24}, progress=False)
    assert plan.regions
    run_on_all_backends(g, plan, inputs, chunkc.interpret(g, *inputs), rtol=1e-5, atol=1e-5)

# -- selection strategies, the floor, monotonicity ---------------------------------------------------------


class ShortestRegionFirst:
    """A selection strategy of a researcher's: the reference implementation's rule, the
    region with the fewest nodes that fits, at the largest chunk that fits."""

    def select(self, space, target, progress=None, start=None):
        state = start or space.initial()
        while state.peak_bytes > target:
            fits = [(len(c.loop), k, c, space.memory(c).largest_chunk(target))
                    for k, c in enumerate(space.candidates(state.peak_index, state.spans))]
            fits = [f for f in fits if f[3] is not None]
            if not fits:
                return None
            _, _, cand, chunk = min(fits, key=lambda f: f[:2])
            state = space.child(state, cand, chunk, state.cost + space.overhead(cand, chunk))
        return state


def test_a_selector_of_ones_own_plugs_in():
    g = transformer(layers=2)
    sizes = {"L": 192}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes, selector=ShortestRegionFirst(), progress=False)
    assert plan.estimated_peak_bytes <= plan.budget_bytes and plan.regions
    default = chunkc.autochunk(g, 0.3, sizes=sizes, progress=False)
    assert min(len(r.nodes) for r in plan.regions) <= min(len(r.nodes) for r in default.regions)
    inputs = inputs_for(g, sizes)
    for a, b in zip(interpret_plan(plan, *inputs), chunkc.interpret(g, *inputs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_feasible_budgets_are_everything_above_the_floor(name):
    """Monotone, and truthful: the floor an InfeasibleBudgetError reports is itself reachable,
    and every budget above it gets a plan (the search is a heuristic: a budget a little below
    the floor may still find one)."""
    build, sizes = MODELS[name]
    g = build()
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1, sizes=sizes, progress=False)  # one byte
    floor = info.value.lowest_peak_bytes
    unchunked = chunkc.estimate_memory(g, sizes=sizes).peak_bytes
    for budget in sorted({floor, floor + 1, (floor + unchunked) // 2, unchunked - 1}):
        plan = chunkc.autochunk(g, budget, sizes=sizes, progress=False)
        assert plan.estimated_peak_bytes <= budget
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, floor // 2, sizes=sizes, progress=False)
    assert floor // 2 < info.value.lowest_peak_bytes


def test_an_infeasible_budget_names_the_values_held_whole_at_the_floor():
    """Attention chunked by query rows reads its keys and values whole: at the flat floor they are
    held in full, and the error names them, with their sizes, as what a lower floor must remove."""
    g, L, D = attention_block(), 256, 64
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1, sizes={"L": L}, progress=False, nested=False)
    exc = info.value
    q, k, v, _ = [n.output.name for n in g.nodes if n.op.name == "linear"]  # the graph's projections, in order
    assert exc.held[k] == exc.held[v] == L * D * 4
    assert sum(exc.held.values()) <= exc.lowest_peak_bytes
    assert list(exc.held.values()) == sorted(exc.held.values(), reverse=True)
    assert f"Held in full there: %{next(iter(exc.held))} 64.00 KiB, node " in str(exc)
    assert f"%{k} 64.00 KiB, node {k} (linear)" in str(exc) and f"%{v} 64.00 KiB" in str(exc)
    # the same values the estimator finds held in full at the peak of the plan at the floor
    plan = chunkc.autochunk(g, exc.lowest_peak_bytes, sizes={"L": L}, progress=False, nested=False)
    report = chunkc.estimate_memory(plan.graph, plan=plan, sizes={"L": L})
    assert report.whole_at_peak == exc.held


def test_the_nested_floor_names_the_output_held_whole_once_keys_and_values_are_recomputed():
    """With nested loops (the written-out attention rewritten into SDPA split over its keys) the
    keys and values are recomputed a key chunk at a time: the floor is lower than the flat one,
    and the only value held whole there is the block's output, which the error names."""
    g, L, D = attention_block(), 256, 64
    flat = floor_of(g, L, nested=False)
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1, sizes={"L": L}, progress=False)
    exc = info.value
    out = g.outputs[0].name
    assert exc.lowest_peak_bytes < flat.lowest_peak_bytes
    assert exc.held == {out: L * D * 4}
    assert "(in nested loops)" in str(exc) and f"Held in full there: %{out} 64.00 KiB" in str(exc)
    plan = chunkc.autochunk(g, exc.lowest_peak_bytes, sizes={"L": L}, progress=False)
    assert any(r.inner for r in plan.regions)
    report = chunkc.estimate_memory(plan.graph, plan=plan, sizes={"L": L})
    assert report.peak_bytes <= exc.lowest_peak_bytes and report.whole_at_peak == exc.held


def floor_of(g: chunkc.Graph, L: int, **options) -> chunkc.InfeasibleBudgetError:
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1, sizes={"L": L}, progress=False, **options)
    return info.value


def test_the_values_held_whole_at_the_peak_leave_out_slices_and_workspace():
    g, sizes = mlp(), {"B": 2, "L": 128}
    unchunked = chunkc.estimate_memory(g, sizes=sizes)
    assert unchunked.whole_at_peak == {k: b for k, b in unchunked.live_at_peak.items()
                                       if not k.startswith("workspace of ")}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes, progress=False)
    report = chunkc.estimate_memory(plan.graph, plan=plan, sizes=sizes)
    sliced = {k.removesuffix(" [chunk]") for k in report.live_at_peak if k.endswith(" [chunk]")}
    assert sliced and not sliced & set(report.whole_at_peak)
    whole = {k.removesuffix(" [buffer]"): b for k, b in report.live_at_peak.items()
             if not k.endswith(" [chunk]") and not k.startswith("workspace of ")}
    assert report.whole_at_peak == whole


class _RecordsCollector:
    """The default beam selection, noting whether the cyclic garbage collector runs while it searches."""

    def __init__(self, fail: bool = False):
        self.seen: list[bool] = []
        self.fail = fail

    def select(self, space, target, progress=None, start=None):
        import gc
        self.seen.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("selector failed")
        from chunkc.passes.selection import BeamSelector
        return BeamSelector().select(space, target, progress, start)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_during_the_search_and_restored(enabled):
    import gc
    g = transformer(layers=2)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        selector = _RecordsCollector()
        plan = chunkc.autochunk(g, 0.3, sizes={"L": 192}, selector=selector, progress=False)
        assert plan.regions and selector.seen and not any(selector.seen)
        assert gc.isenabled() == enabled
        failing = _RecordsCollector(fail=True)
        with pytest.raises(RuntimeError, match="selector failed"):
            chunkc.autochunk(g, 0.3, sizes={"L": 192}, selector=failing, progress=False)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
