"""chunkc composed with torch.compile (Inductor): a generated module compiles as it is, its
run-time budget check runs outside the captured graphs, each chunk region's loop stays in
Python (one chunk is compiled, the loop is not unrolled into a graph), two loads of one
program each compile with their own code, and the compiled program keeps the output and the
memory cut of the chunked one (an attention block; small GPT-2, ViT, Evoformer and UNet)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import chunkc  # noqa: E402
from chunkc import zoo  # noqa: E402
from chunkc.backends.runtime import load_source  # noqa: E402
from graphs import attention_block, inputs_for  # noqa: E402

MEMORY_SLACK = 1.05  # the compiled chunked peak against the chunked program's


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


def test_two_loads_of_one_source_have_code_of_their_own():
    """Python compares code objects by value; each load's (nested ones included) carries a
    constant of its own, so that dynamo's instruction cache, keyed by that value, never hands
    one load's nested chunk function to the other; docstrings are untouched."""
    source = ('def forward(x):\n    def chunk_region_0(start, stop):\n        return x[start:stop]\n'
              '    return chunk_region_0\n\n\ndef documented():\n    """Doc."""\n')
    a, b = load_source(source, "twin"), load_source(source, "twin")
    assert compile(source, "a", "exec") == compile(source, "b", "exec")  # what Python does by itself
    assert a.forward.__code__ != b.forward.__code__
    assert a.forward(1).__code__ != b.forward(1).__code__  # the nested chunk functions
    assert a.forward([1, 2, 3])(1, 3) == [2, 3] and a.forward(1).__doc__ is None
    assert b.documented.__doc__ == "Doc."


def test_one_plan_compiled_twice_runs_under_torch_compile(programs):
    """Two modules of one source, each compiled by torch.compile: before each load had code
    of its own, the second one's chunk function ran the first one's compiled code
    (NameError: name '__compiled_fn_...' is not defined)."""
    plain, chunked, plan, args = programs
    torch._dynamo.reset()
    twin = chunkc.compile(plan.graph, plan)
    assert twin.chunkc_source == chunked.chunkc_source
    first, second = torch.compile(chunked), torch.compile(twin)
    want = plain(*args)
    for fn in (first, second, first, second):
        torch.testing.assert_close(fn(*args), want, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


def _heads_attention(L="L", D=64, H=4, seed=0) -> chunkc.Graph:
    """Attention on ``x [1, L, D]`` written op by op with a batch and a heads axis, as models
    write it (Inductor's attention patterns are four-dimensional)."""
    import numpy as np
    from chunkc import ops as O
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("heads_attention")
    x = g.add_input("x", "f32", (1, L, D))

    def heads(t):
        return O.permute(O.reshape(t, shape=(1, L, H, D // H)), dims=(0, 2, 1, 3))

    def weight():
        return g.add_constant("w", (rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32))
    q, k, v = (heads(O.linear(x, weight())) for _ in range(3))
    p = O.softmax(O.matmul(q, O.transpose(k, -1, -2)) * (1.0 / np.sqrt(D // H)), axis=-1)
    g.set_outputs(O.reshape(O.permute(O.matmul(p, v), dims=(0, 2, 1, 3)), shape=(1, L, D)))
    return g


def _views_moved(chunked) -> list[str]:
    """The statements of the generated chunk function ``chunk_region_0`` that make views of
    whole values computed before the loop."""
    body = chunked.chunkc_source.split("def chunk_region_0")[1].split("rt.run_chunks(chunk_region_0")[0]
    return [line.strip() for line in body.splitlines() if "# permute ->" in line or "# reshape ->" in line]


def test_views_only_a_region_reads_are_made_in_its_chunk_function():
    """The key's transpose and the key's and value's heads are views that only the region
    reads: they are made inside the chunk function (so that a compiled chunk holds the whole
    attention pattern), the projections they view stay alive through the loop and die after
    it, and the program computes what the unchunked one does."""
    g = _heads_attention()
    sizes = {"L": 512}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes)
    chunked = chunkc.compile(g, plan)
    moved = _views_moved(chunked)
    assert len(moved) == 5, moved  # k: reshape, permute, transpose; v: reshape, permute
    transpose = next(line for line in moved if ".permute((0, 1, 3, 2))" in line)  # the key's, to [1, H, D, L]
    top = chunked.chunkc_source.split("def chunk_region_0")[0]
    assert transpose.split(" = ")[0] + " = " not in top  # not made before the loop as well
    after = chunked.chunkc_source.split("rt.run_chunks(chunk_region_0")[1].split("\n")[2]
    assert after.strip().startswith("del ") and "linear" in after  # the projections die after the loop
    args = [torch.from_numpy(a) for a in inputs_for(g, sizes)]
    torch.testing.assert_close(chunked(*args), chunkc.compile(g)(*args), rtol=1e-5, atol=1e-5)
    assert chunkc.measure_peak(chunked, *args) <= 1.05 * plan.estimated_peak_bytes


def test_inductor_fuses_the_attention_in_each_chunk_and_compiles_the_last_shorter_chunk_no_more():
    """Compiled with Inductor, each chunk's attention (matmul, scale, softmax, matmul) becomes
    Inductor's fused attention kernel, as it does in the compiled unchunked program: the
    pattern needs the key's transpose in the chunk's graph.  The chunk function is compiled
    for the first chunk and once more with symbolic bounds, which the last, shorter chunk
    reuses: a second call compiles nothing."""
    from torch._dynamo.utils import counters
    from torch._inductor.compile_fx import compile_fx

    from chunkc.ir.sizes import evaluate
    g = _heads_attention()
    sizes = {"L": 512}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes)
    (region,) = plan.regions
    chunk = evaluate(region.chunk_size, plan.sizes)
    assert 512 % chunk, f"chunk {chunk}: the test needs a shorter last chunk"
    args = [torch.from_numpy(a) for a in inputs_for(g, sizes)]
    chunked = chunkc.compile(g, plan)
    want = chunkc.compile(g)(*args)
    graphs = []

    def inductor(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    torch._dynamo.reset()
    counters.clear()
    try:
        with torch._inductor.config.patch(force_disable_caches=True):  # the pattern passes run, no cached graph
            compiled = torch.compile(chunked, backend=inductor)
            torch.testing.assert_close(compiled(*args), want, rtol=1e-5, atol=1e-5)
        chunk_graphs = [gm for gm in graphs if any("softmax" in str(n.target) for n in gm.graph.nodes)]
        assert 1 <= len(chunk_graphs) <= 2, f"{len(chunk_graphs)} compilations of the chunk function"
        assert counters["inductor"]["fuse_attention"] == len(chunk_graphs), dict(counters["inductor"])
        seen = len(graphs)
        torch.testing.assert_close(compiled(*args), want, rtol=1e-5, atol=1e-5)
        assert len(graphs) == seen  # every chunk, the last one included, ran compiled code
    finally:
        torch._dynamo.reset()


def _unet_explicit_attention():
    from benchmarks.common import unet_explicit_attention  # the inductor benchmark's UNet
    return unet_explicit_attention(max_side=128)


# key: (the zoo model, small; its size; the plan's budget as a fraction of the estimated
# unchunked peak).  The ViT's plan keeps its attention region the peak: outside the regions,
# Inductor copies the image to channels-last for the patch convolution and computes the
# embeddings and the rematerialized layer norms in one fused kernel (docs/backends.md).
ZOO = {
    "gpt2": (lambda: zoo.gpt2(n_layer=1, n_embd=64, n_head=2, n_positions=1024), 512, 0.3),
    "vit": (lambda: zoo.vit(n_layer=1, hidden=64, heads=8, patch=16, max_side=256), 256, 0.6),
    "evoformer": (lambda: zoo.evoformer(max_res=64), 48, 0.5),
    "unet": (_unet_explicit_attention, 64, 0.5),
}


def _tensors(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@pytest.mark.slow
@pytest.mark.parametrize("key", list(ZOO))
def test_a_compiled_chunked_zoo_model_keeps_its_cut_and_the_eager_values(key):
    factory, size, fraction = ZOO[key]
    case = factory()
    graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    args = tuple(case.make_inputs(size))
    plan = chunkc.autochunk(graph, fraction, sizes=dict(graph.bind_sizes(args)), progress=False)
    assert plan.regions
    plain = chunkc.compile(graph, grad_mode="no_grad")
    chunked = chunkc.compile(graph, plan, grad_mode="no_grad")
    with torch.no_grad():
        want = _tensors(case.module(*args))
    torch._dynamo.reset()
    compiled = torch.compile(chunked)
    for got, ref in zip(_tensors(compiled(*args)), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    peak_chunked = chunkc.measure_peak(chunked, *args)
    assert peak_chunked <= 0.75 * chunkc.measure_peak(plain, *args)  # the plan cuts the peak
    peak_compiled = chunkc.measure_peak(compiled, *args)
    assert peak_compiled <= MEMORY_SLACK * peak_chunked, (
        f"{key}: compiled chunked peak {peak_compiled} B, chunked program {peak_chunked} B")
    torch._dynamo.reset()


def test_a_halo_region_runs_chunk_by_chunk_under_torch_compile():
    """A halo region (convolutions chunked along rows that overlap) is a chunk function run by
    rt.run_chunks too, and Inductor gives its values."""
    from test_halo import _graph, _input, _longest, chain
    from chunkc.passes.plan import Plan
    g = _graph(chain)
    plan = Plan(g, (_longest(g).to_region(g, 5),))
    chunked = chunkc.compile(g, plan, grad_mode="no_grad")
    assert "rt.run_chunks(chunk_region_0, extent, chunk)" in chunked.chunkc_source
    assert "held in this iteration" in chunked.chunkc_source  # a halo loop
    x = torch.from_numpy(_input())
    torch._dynamo.reset()
    compiled = torch.compile(chunked)
    for _ in range(2):  # the first chunk, then the others with symbolic bounds
        torch.testing.assert_close(compiled(x), chunkc.compile(g, grad_mode="no_grad")(x), rtol=1e-4, atol=1e-4)
    torch._dynamo.reset()
