"""The PyTorch backend's memory estimate against the CPU allocator, op by op.

Every sample of the op database (tests/opdb.py, the big memory samples included) is
compiled as a one-node graph for the PyTorch backend, run once to warm up, then
measured with ``chunkc.measure_peak`` -- the CPU allocator's blocks, kernel
temporaries included -- and held to ``estimate_memory(..., backend="torch")``: the
outputs plus the op record's ``torch_workspace``.  The estimate must bound the
measurement (the budget guarantee) and stay within 1% (plus a few hundred bytes of
wrapped scalars and index tables) above it.

Ops PyTorch has no kernel for run on the host in NumPy (``ON_HOST``): the CPU
allocator does not see NumPy's arrays, so for them only the bound is checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

import chunkc
from chunkc.backends import compile as compile_graph
from chunkc.ir.lowering import OnHost
from chunkc.ir.registry import all_ops
from chunkc.measure import trace_allocations

from opdb import Sample, all_infos, as_tuple, build, rng_for

INFOS = all_infos()
OPS = sorted(name for name in INFOS if name in all_ops() and INFOS[name].raises is None)
RELATIVE = 0.01
SLACK = 320  # bytes: 0-d tensors wrapping Python numbers, small index tables of a kernel
# oneDNN picks its layouts and scratch pads itself: on a few channels per group (a grouped
# convolution's input may stay plain or be blocked) and in strided transposed convolutions
# (a scratch pad the record bounds) the estimate may exceed the peak by this much more.
ONEDNN_SLACK = {"conv": 2048, "conv_transpose": 80 * 1024}


def _sizes_from_run(node, outputs) -> dict[str, int]:
    """Symbols of the outputs' shapes (sizes known once the node has run) bound to the run's."""
    sizes: dict[str, int] = {}
    for value, out in zip(node.outputs, outputs):
        for s, n in zip(value.shape, out.shape):
            if isinstance(s, sympy.Symbol):
                sizes[s.name] = int(n)
    return sizes


def measured_and_estimated(name: str, sample) -> tuple[int, int, str]:
    """(allocator peak, estimate, what the allocator had live at its peak)."""
    inputs = [np.ascontiguousarray(a) for a in sample.inputs]
    g, node = build(name, inputs, sample.attrs)
    fn = compile_graph(g, None, "torch")
    args = [torch.from_numpy(a.copy()) for a in inputs]
    outputs = as_tuple(fn(*args))  # warm up: caches and lazily built tables are not activation memory
    sizes = _sizes_from_run(node, outputs)
    del outputs
    trace = trace_allocations(fn, *args)
    estimate = chunkc.estimate_memory(g, sizes=sizes or None, backend="torch").peak_bytes
    return trace.peak, estimate, trace.format(6)


def _arrays(rng, *specs):
    out = []
    for dtype, shape in specs:
        if dtype == "bool":
            out.append(rng.random(shape) < 0.5)
        elif dtype.startswith("int"):  # valid indices (and small integers): 0 to 3
            out.append(rng.integers(0, 4, size=shape).astype(dtype))
        else:
            out.append(rng.uniform(-1, 1, size=shape).astype(dtype))
    return tuple(out)


F32, F16 = "float32", "float16"
# Samples large enough that the kernels' temporaries that scale with the input dominate their
# bytes (the op database's samples are small): one or more per kind of temporary declared.
WORKSPACE_SAMPLES = {
    "add": [((F32, (64, 64, 64)), ("int64", (64, 64, 64))), ((F16, (64, 64, 64)), (F32, (64,)))],
    "eq": [((F32, (64, 64, 64)), ("int64", (64, 64, 64)))],
    "logical_and": [((F32, (64, 64, 64)), ("int64", (64, 64, 64)))],
    "bitwise_and": [(("int32", (64, 64, 64)), ("int64", (64, 64, 64)))],
    "where": [(("bool", (64, 64, 64)), (F32, (64, 64, 64)), ("int32", (64, 64, 64)))],
    "concat": [((F32, (64, 64, 64)), ("int64", (64, 64, 64)), {"axis": 1})],
    "stack": [((F32, (64, 64, 64)), (F16, (64, 64, 64)), {"axis": 1})],
    "isinf": [((F32, (64, 64, 64)),)],
    "sum": [(("int32", (64, 256, 64)), {"axes": -1})],
    "prod": [((F32, (64, 256, 64)), {"axes": (0, 2)}), (("int32", (64, 256, 64)), {"axes": -1})],
    "mean": [((F16, (64, 256, 64)), {"axes": (0,), "keepdim": True})],
    "any": [((F32, (64, 256, 64)), {"axes": -1})],
    "cumsum": [(("int32", (64, 256, 64)), {"axis": 1})],
    "roll": [((F32, (64, 64, 64)), {"shifts": (1, 2, 3), "axes": (0, 1, 2)})],
    "sort": [((F32, (64, 64, 64)), {"axis": 1})],
    "take": [((F32, (400, 50)), ("int32", (3000,)), {"axis": 0})],
    "gather": [((F32, (400, 50)), ("int32", (400, 50)), {"axis": 1})],
    "scatter_elements": [((F32, (400, 50)), ("int32", (300, 50)), (F32, (300, 50)), {"axis": 0, "reduction": "add"})],
    "scatter_nd": [((F32, (40, 50, 6)), ("int64", (3000, 2)), (F32, (3000, 6)), {"reduction": "add"})],
    "matmul": [((F32, (2, 4, 256, 64)), (F32, (2, 1, 64, 128))), ((F16, (8, 256, 64)), (F32, (64, 128)))],
    "einsum": [((F32, (2, 256, 4, 64)), (F32, (2, 256, 4, 64)), {"equation": "bqhd,bkhd->bhqk"}),
               ((F32, (8, 256, 64)), (F32, (8, 64, 128)), (F32, (8, 128, 32)), {"equation": "bij,bjk,bkl->bil"}),
               ((F32, (1, 64, 32, 8)), (F32, (1, 64, 32, 8)), {"equation": "bikc,bjkc->bijc"})],
    "layer_norm": [((F16, (16, 512, 128)),)],
    # one (sample, group) block normalized by ATen's kernel at a time (chunkc.backends.torch_runtime)
    "group_norm_moments": [((F32, (2, 32, 64, 64)), {"num_groups": 8}), (("float64", (1, 8, 32, 32)), {"num_groups": 2})],
    "rms_norm": [((F32, (16, 512, 128)), (F32, (128,))), ((F16, (16, 512, 128)),)],
    "interpolate": [((F32, (4, 16, 64, 32)), {"size": (32, 16)}), ((F32, (16, 64, 500)), {"size": (1000,), "mode": "linear"})],
    "max_pool": [((F32, (4, 32, 64, 64)), {"kernel": (3, 3), "stride": (2, 2), "padding": ((1, 0), (0, 1))})],
    "avg_pool": [((F32, (4, 32, 63, 63)), {"kernel": (3, 3), "stride": (2, 2), "padding": ((1, 0), (0, 1)),
                                          "ceil_mode": True, "count_include_pad": False})],
    "conv": [((F32, (1, 16, 32, 32)), (F32, (32, 16, 3, 3)), {"padding": ((1, 1), (1, 1))}),
             ((F32, (1, 64, 32, 32)), (F32, (128, 64, 3, 3)), {"padding": ((1, 1), (1, 1)), "stride": (2, 2)}),
             ((F32, (2, 20, 32, 32)), (F32, (40, 20, 3, 3)), {"padding": ((1, 0), (1, 1))})],
    "conv_transpose": [((F32, (1, 16, 32, 32)), (F32, (16, 32, 3, 3)), {"padding": ((1, 1), (1, 1)), "stride": (2, 2)}),
                       ((F32, (2, 16, 50)), (F32, (16, 40, 3)), (F32, (40,)))],
    "scaled_dot_product_attention": [
        ((F32, (1, 4, 1000, 32)),) * 3,
        ((F32, (1, 4, 256, 32)),) * 3 + (("bool", (256, 256)),),
        ((F32, (4, 256, 32)),) * 3 + (("bool", (256, 256)),),
        ((F16, (4, 256, 32)),) * 3,
        ((F32, (1, 4, 256, 32)), (F32, (1, 4, 256, 32)), (F32, (1, 4, 256, 16)), {"is_causal": True}),
        ((F32, (1, 4, 128, 32)), (F32, (1, 4, 512, 32)), (F32, (1, 4, 512, 32)), {"is_causal": True, "query_offset": 256}),
    ],
}


def _workspace_cases():
    for name, cases in WORKSPACE_SAMPLES.items():
        for k, case in enumerate(cases):
            attrs = case[-1] if isinstance(case[-1], dict) else {}
            specs = case[:-1] if attrs else case
            yield pytest.param(name, specs, attrs, id=f"{name}-{k}")


@pytest.mark.parametrize("name, specs, attrs", list(_workspace_cases()))
def test_torch_estimate_matches_kernel_temporaries_at_scale(name, specs, attrs):
    sample = Sample(_arrays(np.random.default_rng(0), *specs), attrs)
    measured, estimate, trace = measured_and_estimated(name, sample)
    assert measured <= estimate + SLACK, f"{name} {sample}: measured {measured} B, estimated {estimate} B\n{trace}"
    assert estimate <= measured * (1 + RELATIVE) + SLACK + ONEDNN_SLACK.get(name, 0), (
        f"{name} {sample}: estimated {estimate} B, measured {measured} B\n{trace}")
    # the sample is large enough that what the kernels take besides the output shows
    out = sum(v.type.nbytes() for v in build(name, sample.inputs, attrs)[1].outputs)
    assert measured - out > SLACK, f"{name} {sample}: no temporary to speak of ({measured} B, output {out} B)"


@pytest.mark.parametrize("name", OPS)
def test_torch_estimate_bounds_the_allocator(name):
    info = INFOS[name]
    on_host = isinstance(all_ops()[name].torch, OnHost)
    samples = info.samples(rng_for(name)) + (info.big(rng_for(name)) if info.big else [])
    for sample in samples:
        measured, estimate, trace = measured_and_estimated(name, sample)
        assert measured <= estimate + SLACK, (
            f"{name} {sample}: the allocator peaked at {measured} B, the estimate says {estimate} B: declare the "
            f"kernel's temporaries in the record's torch_workspace\n{trace}")
        if not on_host:
            assert estimate <= measured * (1 + RELATIVE) + SLACK + ONEDNN_SLACK.get(name, 0), (
                f"{name} {sample}: estimated {estimate} B, the allocator peaked at {measured} B\n{trace}")


# -- on a GPU: the CUDA estimate (device="cuda") against torch.cuda.max_memory_allocated --------

CUDA_RELATIVE = 0.05  # the caching allocator may hand out a cached block up to 1 MiB larger
CUDA_SLACK = 64 * 1024  # blocks of 512 B at least; a multi-block reduction's buffer and semaphores


def _cuda_unavailable() -> str | None:
    return None if torch.cuda.is_available() else "needs a CUDA GPU (PyTorch)"


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_unavailable() is not None, reason=str(_cuda_unavailable()))
@pytest.mark.parametrize("name", OPS)
def test_cuda_estimate_bounds_the_caching_allocator(name):
    info = INFOS[name]
    on_host = isinstance(all_ops()[name].torch, OnHost)
    samples = info.samples(rng_for(name)) + (info.big(rng_for(name)) if info.big else [])
    samples += [Sample(_arrays(np.random.default_rng(0), *specs), attrs)
                for _, specs, attrs in (p.values for p in _workspace_cases()) if _ == name]
    for sample in samples:
        inputs = [np.ascontiguousarray(a) for a in sample.inputs]
        g, node = build(name, inputs, sample.attrs)
        fn = compile_graph(g, None, "torch", device="cuda")
        args = [torch.from_numpy(a.copy()).cuda() for a in inputs]
        outputs = as_tuple(fn(*args))
        sizes = _sizes_from_run(node, outputs)
        del outputs
        measured = chunkc.measure_peak(fn, *args)
        estimate = chunkc.estimate_memory(g, sizes=sizes or None, backend="torch", device="cuda").peak_bytes
        assert measured <= estimate * (1 + CUDA_RELATIVE) + CUDA_SLACK, (
            f"{name} {sample} on CUDA: the caching allocator peaked at {measured} B, the estimate says {estimate} B: "
            "declare the CUDA kernels' temporaries (TorchWorkspace cuda=)")
        if not on_host:
            assert estimate <= measured * (1 + CUDA_RELATIVE) + CUDA_SLACK, (
                f"{name} {sample} on CUDA: estimated {estimate} B, the caching allocator peaked at {measured} B")
