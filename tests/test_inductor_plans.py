"""Plans made for a program that Inductor compiles (``autochunk(..., compiled="inductor")``):
written-out attention is planned as the fused attention Inductor runs, elementwise chains
are priced as the one kernel Inductor fuses them into, a region's chunk is the largest its
budget allows, and the compiled program keeps the plan's memory and the eager values and
compiles nothing more once every chunk length has run (docs/passes.md)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import chunkc  # noqa: E402
from chunkc.errors import ChunkcError  # noqa: E402
from chunkc.ir.sizes import evaluate  # noqa: E402
from chunkc.passes.cost import COMPILED_BODY_S, Machine, TimeModel  # noqa: E402
from graphs import inputs_for, mlp  # noqa: E402
from test_inductor import _heads_attention  # noqa: E402

MEMORY_SLACK = 1.05  # the compiled program's measured peak against the plan's estimate


def _ops(graph) -> list[str]:
    return [n.op.name for n in graph.nodes]


def _compiled_run(graph, plan, args):
    """The plan's program compiled by Inductor: its outputs on two calls, how many graphs dynamo
    compiled on the first call and how many more on the second, and its measured peak."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(chunkc.compile(graph, plan, grad_mode="no_grad"))
    first = compiled(*args)
    graphs = counters["stats"]["unique_graphs"]
    second = compiled(*args)
    more = counters["stats"]["unique_graphs"] - graphs
    peak = chunkc.measure_peak(compiled, *args)
    torch._dynamo.reset()
    return first, second, graphs, more, peak


def test_written_attention_is_planned_as_the_fused_attention_inductor_runs():
    """Under Inductor the score matrix is never held (its attention fusion): the plan's graph
    computes SDPA, its estimate is below the written-out program's, and compiled it keeps that
    estimate and the eager values, compiling nothing on a second call."""
    g = _heads_attention(L="L", D=64, H=4)
    sizes = {"L": 512}
    eager_plan = chunkc.autochunk(g, 0.3, sizes=sizes)
    budget = int(0.3 * eager_plan.unchunked_peak_bytes)
    plan = chunkc.autochunk(g, budget, sizes=sizes, compiled="inductor")
    assert "scaled_dot_product_attention" in _ops(plan.graph) and "softmax" not in _ops(plan.graph)
    assert "scaled_dot_product_attention" not in _ops(g)  # the user's graph is left as it is
    assert any("written-out attention" in note for note in plan.notes), plan.notes
    assert plan.estimated_peak_bytes <= budget
    args = [torch.from_numpy(a) for a in inputs_for(g, sizes)]
    want = chunkc.compile(g)(*args)
    first, second, graphs, more, peak = _compiled_run(g, plan, args)
    torch.testing.assert_close(first, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second, want, rtol=1e-5, atol=1e-5)
    assert graphs >= 1 and more == 0
    assert peak <= MEMORY_SLACK * plan.estimated_peak_bytes, (peak, plan.estimated_peak_bytes)


def test_a_compiled_plans_chunk_is_the_largest_its_budget_allows_and_its_last_chunk_compiles_nothing():
    """An MLP whose hidden activation needs chunking: the eager cost model picks a chunk that
    keeps the loop's tensors in a cache tier, the Inductor one takes the fewest iterations the budget
    allows (one iteration fewer breaks it).  The last chunk is shorter; the compiled program
    compiles the chunk function for the first chunk and once with symbolic bounds, and a
    second call compiles nothing."""
    g = mlp(L="L", D=128, F=2048)
    sizes = {"B": 1, "L": 3001}
    budget = int(0.5 * chunkc.estimate_memory(g, sizes=sizes).peak_bytes)
    plan = chunkc.autochunk(g, budget, sizes=sizes, compiled="inductor")
    (region,) = plan.regions
    extent, chunk = evaluate(region.extent, plan.sizes), evaluate(region.chunk_size, plan.sizes)
    assert extent % chunk, f"chunk {chunk} of {extent}: the test needs a shorter last chunk"
    iterations = -(-extent // chunk)
    fewer = -(-extent // (iterations - 1))
    wider = chunkc.Plan(**{**plan.__dict__, "regions": (region.with_chunk_size(fewer),)})
    assert chunkc.estimate_memory(plan.graph, plan=wider, sizes=sizes).peak_bytes > budget
    eager_plan = chunkc.autochunk(g, budget, sizes=sizes)
    assert all(evaluate(r.chunk_size, sizes) < chunk for r in eager_plan.regions)  # a cache tier's chunk
    args = [torch.from_numpy(a) for a in inputs_for(g, sizes)]
    want = chunkc.compile(g)(*args)
    first, second, graphs, more, peak = _compiled_run(g, plan, args)
    torch.testing.assert_close(first, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second, want, rtol=1e-5, atol=1e-5)
    assert graphs <= 4 and more == 0, (graphs, more)  # before, chunk (first + symbolic), after
    assert peak <= MEMORY_SLACK * plan.estimated_peak_bytes, (peak, plan.estimated_peak_bytes)


def test_inductor_prices_an_elementwise_chain_as_one_kernel_and_each_compiled_chunk_call():
    """gelu's input (a bias add) is read only by an elementwise node: fused, its call and its
    bytes not priced, only its arithmetic; a matrix product is never fused.  A loop's
    iteration costs one compiled call more."""
    from chunkc import ops as O
    g = chunkc.Graph("chain")
    x = g.add_input("x", "f32", (4096, 256))
    y = O.exp(O.tanh(O.add(x, 1.0)) * 2.0)
    w = g.add_constant("w", __import__("numpy").ones((256, 256), "float32"))
    g.set_outputs(O.matmul(y, w))
    sizes: dict[str, int] = {}
    machine = Machine()
    eager = TimeModel(g, sizes, machine)
    fused = TimeModel(g, sizes, machine, compiled="inductor")
    kinds = {i: g.nodes[i].op.name for i in fused.fused}
    assert sorted(kinds.values()) == ["add", "mul", "tanh"], kinds  # exp feeds the product: its own kernel
    for i in fused.fused:
        assert fused.times[i] < eager.times[i] - 0.9 * machine.op_overhead_s
        assert fused.times[i] == pytest.approx(eager.flops[i] / machine.flops_per_s)
    product = _ops(g).index("matmul")
    assert fused.times[product] == eager.times[product]
    loop = list(range(len(g.nodes)))
    chunked = {v: (0, 1) for n in g.nodes for v in (*n.inputs, *n.outputs) if v.rank == 2 and v.name != "w"}
    args = (loop, chunked, list(g.outputs), 4096)
    extra = fused.loop_seconds(*args, 512) - fused.loop_seconds(*args, 4096)
    extra_eager = eager.loop_seconds(*args, 512) - eager.loop_seconds(*args, 4096)
    # 7 iterations more: each one compiled call more, and three calls fewer (the fused nodes')
    assert extra - extra_eager == pytest.approx(7 * (COMPILED_BODY_S - 3 * machine.op_overhead_s), rel=1e-3)


def test_an_unknown_compiler_or_a_compiled_training_plan_is_refused_by_name():
    g = mlp(L="L", D=16, F=64)
    with pytest.raises(ChunkcError, match=r"compiled='xla'.*'inductor'"):
        chunkc.autochunk(g, 0.5, sizes={"B": 1, "L": 64}, compiled="xla")
    with pytest.raises(ChunkcError, match=r"compiled='inductor'.*mode='train'"):
        chunkc.autochunk(g, 0.5, sizes={"B": 1, "L": 64}, compiled="inductor", mode="train")
    with pytest.raises(ChunkcError, match="compiled='tvm'"):
        TimeModel(g, {"B": 1, "L": 64}, Machine(), compiled="tvm")
