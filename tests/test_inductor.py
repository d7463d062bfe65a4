"""chunkc composed with torch.compile (Inductor): a generated module compiles as it is, its
run-time budget check runs outside the captured graphs, each chunk region's loop stays in
Python (one chunk is compiled, the loop is not unrolled into a graph), and the compiled
program keeps the output and the memory cut of the chunked one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import chunkc  # noqa: E402
from graphs import attention_block, inputs_for  # noqa: E402


@pytest.fixture(scope="module")
def programs():
    torch._dynamo.reset()
    g = attention_block(L="L", D=64, H=4)
    sizes = {"L": 512}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes)
    args = [torch.from_numpy(a) for a in inputs_for(g, sizes)]
    plain, chunked = chunkc.compile(g), chunkc.compile(g, plan)
    yield plain, chunked, plan, args
    torch._dynamo.reset()


def test_inductor_compiles_a_chunked_module_with_its_budget_check(programs):
    plain, chunked, plan, args = programs
    assert plan.regions and chunked.chunkc_budget is not None  # a symbolic size: the check is installed
    compiled = torch.compile(chunked)
    want = plain(*args)
    torch.testing.assert_close(compiled(*args), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled(*args), want, rtol=1e-5, atol=1e-5)  # the compiled code, warm
def test_inductor_keeps_the_memory_cut(programs):
    plain, chunked, plan, args = programs
    compiled_plain, compiled_chunked = torch.compile(plain), torch.compile(chunked)
    compiled_plain(*args), compiled_chunked(*args)  # compile outside the measurement
    peak_plain = chunkc.measure_peak(compiled_plain, *args)
    peak_chunked = chunkc.measure_peak(compiled_chunked, *args)
    assert peak_plain >= 0.5 * chunkc.measure_peak(plain, *args)  # the compiled kernels are measured
    assert peak_chunked <= 0.5 * peak_plain
    assert peak_chunked <= MEMORY_SLACK * chunkc.measure_peak(chunked, *args)


MEMORY_SLACK = 1.05  # the compiled chunked peak against the chunked program's


def test_dynamo_captures_one_chunk_not_the_unrolled_loop(programs):
    """Each captured graph holds at most one chunk of the region (one softmax), never the
    loop's iterations one after another; the code around the region is captured too."""
    plain, chunked, plan, args = programs
    torch._dynamo.reset()
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(chunked, backend=record)
    want = plain(*args)
    torch.testing.assert_close(compiled(*args), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled(*args), want, rtol=1e-5, atol=1e-5)
    softmaxes = [sum(1 for n in gm.graph.nodes if "softmax" in str(n.target)) for gm in graphs]
    from chunkc.ir.sizes import evaluate
    assert any(evaluate(r.chunk_size, plan.sizes) * 2 <= evaluate(r.extent, plan.sizes) for r in plan.regions)
    assert max(softmaxes) == 1, f"softmax calls per captured graph: {softmaxes} (the loop was unrolled)"
    assert any(n == 0 and len(gm.graph.nodes) > 4 for n, gm in zip(softmaxes, graphs))  # code outside the region
    torch._dynamo.reset()
