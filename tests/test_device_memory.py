"""The estimate for a GPU (estimate_memory(..., device="cuda")): allocations rounded as
PyTorch's caching allocator and CuPy's pool round them, and the CUDA kernels' workspace.
The rounding and the workspace choice are checked here; against a real GPU, the op samples
and the graphs of tests/backend_cases.py are measured in the tests marked ``gpu`` (skipped,
with the reason, without one)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.errors import ChunkcError
from chunkc.ir.kernel_workspace import TorchWorkspace
from chunkc.ir.registry import lookup
from chunkc.ir.types import TensorType
from chunkc.passes.device_memory import cublas_workspace_bytes, cupy_pool_block_bytes, torch_cuda_block_bytes

MiB = 2**20


def test_pytorch_caching_allocator_rounding():
    assert [torch_cuda_block_bytes(n) for n in (0, 1, 512, 513, 4000)] == [0, 512, 512, 1024, 4096]
    assert torch_cuda_block_bytes(5 * MiB + 1) == 5 * MiB + 512  # split from a 20 MiB segment
    assert torch_cuda_block_bytes(10 * MiB + 100) == 10 * MiB + 512  # 12 MiB segment: > 1 MiB left, split
    assert torch_cuda_block_bytes(11 * MiB + 4) == 12 * MiB  # <= 1 MiB left: the whole segment
    assert torch_cuda_block_bytes(64 * MiB) == 64 * MiB


def test_cupy_pool_rounding_and_cublas_workspace():
    assert [cupy_pool_block_bytes(n) for n in (0, 1, 512, 11 * MiB + 4)] == [0, 512, 512, 11 * MiB + 512]
    assert cublas_workspace_bytes((9, 0)) == 32 * MiB
    assert cublas_workspace_bytes((8, 0)) == 8 * MiB + 128 * 1024


def _chain(cols: int) -> chunkc.Graph:
    g = chunkc.Graph("chain")
    x = g.add_input("x", "f32", ("L", cols))
    g.set_outputs(O.exp(O.exp(x, name="e0"), name="e1"))
    return g


@pytest.mark.parametrize("backend, block", [("torch", torch_cuda_block_bytes), ("cupy", cupy_pool_block_bytes)])
def test_every_allocation_is_rounded_on_the_gpu(backend, block):
    g = _chain(1000)
    sizes = {"L": 3}
    value = 3 * 1000 * 4
    assert chunkc.estimate_memory(g, sizes=sizes, backend=backend).peak_bytes == 2 * value
    gpu = chunkc.estimate_memory(g, sizes=sizes, backend=backend, device="cuda")
    assert gpu.peak_bytes == 2 * block(value) == 2 * 12288
    big = chunkc.estimate_memory(_chain(11 * MiB // 4 + 1), sizes={"L": 1}, backend=backend, device="cuda")
    assert big.peak_bytes == 2 * block(11 * MiB + 4)


def test_chunks_and_buffers_of_a_plan_are_rounded_too():
    from backend_cases import attention
    case = attention(d=64, heads=4, chunk=7)
    sizes = {"B": 1, "L": 100}
    cpu = chunkc.estimate_memory(case.graph, case.plan, sizes=sizes, backend="torch")
    gpu = chunkc.estimate_memory(case.graph, case.plan, sizes=sizes, backend="torch", device="cuda")
    assert gpu.peak_bytes > cpu.peak_bytes
    assert all(n % 512 == 0 for n in gpu.live_at_peak.values())


def test_the_gpu_estimate_takes_the_cuda_kernels_workspace():
    q = TensorType("f16", (1, 4, 256, 64))
    out = [q]
    sdpa = lookup("scaled_dot_product_attention").torch_workspace
    assert isinstance(sdpa, TorchWorkspace)
    # CPU: the flash kernel's buffers per thread; CUDA: the float log-sum-exp of each row
    assert sdpa.nbytes([q, q, q], {"is_causal": False, "query_offset": 0, "scale": None}, out, "cuda") == 4 * 256 * 4
    ln = lookup("layer_norm").torch_workspace
    x = TensorType("f16", (8, 128))
    attrs = {"num_axes": 1, "eps": 1e-5}
    assert ln.nbytes([x], attrs, [x], "cpu") == 2 * 8 * 2  # statistics in x's dtype on the CPU
    assert ln.nbytes([x], attrs, [x], "cuda") == 2 * 8 * 4  # in float on CUDA
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        ln.nbytes([x], attrs, [x], "tpu")


def test_unknown_devices_and_unmodelled_allocators_are_refused():
    g = _chain(10)
    with pytest.raises(ChunkcError, match="unknown device 'tpu'; use one of cpu, cuda"):
        chunkc.estimate_memory(g, sizes={"L": 2}, device="tpu")
    with pytest.raises(ChunkcError, match="device 'cuda' has no model of the allocator of backend 'numpy'"):
        chunkc.estimate_memory(g, sizes={"L": 2}, backend="numpy", device="cuda")


# -- on a GPU --------------------------------------------------------------------------------


def _cuda_unavailable() -> str | None:
    import torch
    return None if torch.cuda.is_available() else "needs a CUDA GPU (PyTorch)"


GPU_TOLERANCE = 0.05


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_unavailable() is not None, reason=str(_cuda_unavailable()))
@pytest.mark.parametrize("chunked", [False, True], ids=["unchunked", "chunked"])
@pytest.mark.parametrize("name", ["attention", "mlp"])
def test_cuda_peak_matches_the_gpu_estimate(name, chunked):
    import torch
    from backend_cases import attention, mlp
    case = {"attention": attention(d=64, heads=4, chunk=128), "mlp": mlp(d=64, hidden=512, chunk=64)}[name]
    sizes = {"B": 1, "L": 2048}
    plan = case.plan if chunked else None
    fn = chunkc.compile(case.graph, plan, backend="torch", device="cuda")
    args = [torch.from_numpy(a).cuda() for a in case.inputs(sizes)]
    fn(*args)
    measured = chunkc.measure_peak(fn, *args)
    estimate = chunkc.estimate_memory(case.graph, plan, sizes=sizes, backend="torch", device="cuda").peak_bytes
    assert abs(measured - estimate) <= GPU_TOLERANCE * measured, (measured, estimate)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="needs CuPy and a GPU")
@pytest.mark.parametrize("name", ["attention", "mlp"])
def test_cupy_peak_matches_the_gpu_estimate(name):
    import cupy
    from backend_cases import attention, mlp
    case = {"attention": attention(d=64, heads=4, chunk=128), "mlp": mlp(d=64, hidden=512, chunk=64)}[name]
    sizes = {"B": 1, "L": 2048}
    for plan in (None, case.plan):
        fn = chunkc.compile(case.graph, plan, backend="cupy")
        args = [cupy.asarray(a) for a in case.inputs(sizes)]
        fn(*args)
        measured = chunkc.measure_peak(fn, *args)
        estimate = chunkc.estimate_memory(case.graph, plan, sizes=sizes, backend="cupy", device="cuda").peak_bytes
        assert abs(measured - estimate) <= GPU_TOLERANCE * measured, (plan is not None, measured, estimate)
        np.testing.assert_allclose(cupy.asnumpy(fn(*args)), chunkc.interpret(case.graph, *case.inputs(sizes))[0],
                                   rtol=1e-3, atol=1e-3)


def test_a_plan_for_a_gpu_is_estimated_and_priced_for_it(tmp_path):
    """autochunk(device="cuda"): CUDA's allocator and kernels count in the plan's estimate, the
    plan says so (its estimates, its file, its report), and the GPU's costs (launches, no cache
    to fit) choose fewer, larger chunks than the CPU's."""
    from backend_cases import attention
    from chunkc.ir.sizes import evaluate
    case = attention(d=64, heads=4)
    sizes = {"B": 1, "L": 2048}
    on_gpu = chunkc.autochunk(case.graph, 0.3, sizes=sizes, device="cuda", progress=False)
    on_cpu = chunkc.autochunk(case.graph, 0.3, sizes=sizes, progress=False)
    assert (on_gpu.device, on_cpu.device) == ("cuda", "cpu")
    assert on_gpu.estimated_peak_bytes == chunkc.estimate_memory(on_gpu.graph, on_gpu).peak_bytes \
        == chunkc.estimate_memory(on_gpu.graph, on_gpu, device="cuda").peak_bytes
    assert on_gpu.unchunked_peak_bytes == chunkc.estimate_memory(case.graph, sizes=sizes, device="cuda").peak_bytes
    assert on_gpu.estimated_peak_bytes <= on_gpu.budget_bytes

    def iterations(plan) -> int:
        return sum(-(-evaluate(r.extent, sizes) // evaluate(r.chunk_size, sizes)) for r in plan.regions)
    assert iterations(on_gpu) <= iterations(on_cpu)
    assert "for the torch backend on cuda" in str(on_gpu)
    chunkc.save_plan(on_gpu, tmp_path / "p.json")
    assert chunkc.load_plan(tmp_path / "p.json").device == "cuda"
    with pytest.raises(ChunkcError, match="unknown device 'tpu'; use one of cpu, cuda"):
        chunkc.autochunk(case.graph, 0.3, sizes=sizes, device="tpu", progress=False)
