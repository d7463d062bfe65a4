"""chunkc composed with torch.compile (Inductor): a generated module compiles as it is, its
run-time budget check runs outside the captured graphs, and the compiled program keeps the
output and the memory cut of the chunked one."""

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
    assert peak_chunked <= 1.10 * chunkc.measure_peak(chunked, *args)
