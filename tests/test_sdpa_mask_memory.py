"""SDPA with a mask of rank 3 or a permuted bias, chunked by query rows, on PyTorch (CPU).

Shrunk from fuzz case 16 (docs/benchmarks.md, the fuzz section): a rank-3 float mask sent
ATen down its composite path, whose copies of the scaled q and k^T (k^T alone is as large
as the keys) the estimate did not hold, 2-13% over it once chunked; an embedding-built
relative-position bias permuted to [heads, L, L] has a last axis that is not dense, which
the flash kernel copies.  The lowering now gives the mask four axes (the flash kernel runs),
and the record declares the copy of a mask whose last axis is strided
(``TorchWorkspace.cpu_layout``).  Estimates are held to the allocator's count.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import chunkc
from chunkc.backends import compile as compile_graph
from chunkc.ir.dtypes import DType
from chunkc.ir.parser import parse_graph
from chunkc.ir.ops.attention import _SDPA_WORKSPACE
from chunkc.ir.types import TensorType
from chunkc.measure import measure_peak
from chunkc.passes.memory import estimate_memory

SIZES = {"B": 2, "L": 192}
TOLERANCE = 0.02


_HEADS = """
    %q: f32[B, 2, L, 24] = permute(%qr) {dims = (0, 2, 1, 3)}
    %kh: f32[B, 2, L, 24] = permute(%k) {dims = (0, 2, 1, 3)}
    %vh: f32[B, 2, L, 24] = permute(%v) {dims = (0, 2, 1, 3)}
    %out: f32[B, 2, L, 24] = scaled_dot_product_attention(%q, %kh, %vh, %mask) {is_causal = false, scale = none, query_offset = 0, enable_gqa = false}
    return %out
  }"""


def _rank3_mask() -> chunkc.Graph:
    return parse_graph("""graph @rank3_mask(%x: f32[B, L, 48], %mask: f32[2, L, L], %k: f32[B, L, 2, 24],
                                               %v: f32[B, L, 2, 24]) {
    const %w: f32[48]
    %rms_norm: f32[B, L, 48] = rms_norm(%x, %w) {num_axes = 1, eps = 1e-06}
    %qr: f32[B, L, 2, 24] = reshape(%rms_norm) {shape = (size(B), size(L), 2, 24)}""" + _HEADS,
                       weights={"w": np.ones(48, np.float32)})


def _embedding_bias() -> chunkc.Graph:
    return parse_graph("""graph @embedding_bias(%qr: f32[B, L, 2, 24], %buckets: i64[L, L], %k: f32[B, L, 2, 24],
                                                   %v: f32[B, L, 2, 24]) {
    const %four: i64[] = 4
    const %rel_bias: f32[9, 2]
    %index: i64[L, L] = add(%buckets, %four)
    %embedding: f32[L, L, 2] = embedding(%rel_bias, %index)
    %mask: f32[2, L, L] = permute(%embedding) {dims = (2, 0, 1)}""" + _HEADS,
                       weights={"rel_bias": np.random.default_rng(1).standard_normal((9, 2)).astype(np.float32)})


def _arguments(g: chunkc.Graph) -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    out = []
    for v in g.inputs:
        shape = v.type.concrete_shape(SIZES)
        if v.dtype == DType.int64:
            out.append(torch.from_numpy(rng.integers(-4, 5, size=shape)))
        else:
            out.append(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)))
    return out


def _close(estimate: int, measured: int) -> bool:
    return abs(estimate - measured) <= TOLERANCE * measured


@pytest.mark.parametrize("build", [_rank3_mask, _embedding_bias])
def test_unchunked_estimate_matches_the_allocator(build):
    g = build()
    args = _arguments(g)
    estimate = estimate_memory(g, sizes=SIZES, backend="torch").peak_bytes
    measured = measure_peak(compile_graph(g, None, backend="torch"), *args)
    assert _close(estimate, measured), (estimate, measured)


@pytest.mark.parametrize("build, fraction", [(_rank3_mask, 0.9), (_rank3_mask, 0.6), (_embedding_bias, 0.6),
                                             (_embedding_bias, 0.4), (_embedding_bias, 0.2)])
def test_chunked_estimate_matches_the_allocator(build, fraction):
    g = build()
    args = _arguments(g)
    unchunked = estimate_memory(g, sizes=SIZES, backend="torch").peak_bytes
    plan = chunkc.autochunk(g, int(fraction * unchunked), sizes=dict(SIZES), backend="torch", progress=False)
    assert plan.regions
    fn = compile_graph(g, plan, backend="torch")
    measured = measure_peak(fn, *args)
    assert _close(plan.estimated_peak_bytes, measured), (plan.estimated_peak_bytes, measured)
    assert measured <= 1.02 * plan.budget_bytes
    expected = compile_graph(g, None, backend="torch")(*args)
    torch.testing.assert_close(fn(*args), expected, rtol=1e-4, atol=1e-5)


F32 = DType.float32
ATTRS = {"is_causal": False, "scale": None, "query_offset": 0, "enable_gqa": False}


@pytest.mark.parametrize("rows", [192, 64, 20, 8])
def test_composite_path_counts_the_scaled_keys(rows):
    """Rank-3 q (no head axis: the composite path): a few query rows against many keys peak
    at the matmul, where ATen's copy of k^T scaled lives beside the scores."""
    q, k = torch.randn(4, rows, 24), torch.randn(4, 192, 24)
    v = torch.randn(4, 192, 24)
    mask = torch.randn(rows, 192)
    measured = measure_peak(lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3]), q, k, v, mask)
    ins = [TensorType(F32, (4, rows, 24)), TensorType(F32, (4, 192, 24)), TensorType(F32, (4, 192, 24)),
           TensorType(F32, (rows, 192))]
    out = TensorType(F32, (4, rows, 24))
    assert _SDPA_WORKSPACE.nbytes(ins, ATTRS, [out]) + 4 * rows * 24 * 4 == pytest.approx(measured, rel=0.02, abs=64)


@pytest.mark.parametrize("last_stride", [1, 2])
def test_flash_kernel_copies_a_mask_with_a_strided_last_axis(last_stride):
    q = torch.randn(2, 192, 2, 24).permute(0, 2, 1, 3)[:, :, :20]
    k = torch.randn(2, 192, 2, 24).permute(0, 2, 1, 3)
    full = torch.randn(1, 2, 192, 192 * last_stride)
    mask = full[:, :, :20, ::last_stride]
    measured = measure_peak(lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3]), q, k, k, mask)
    ins = [TensorType(F32, (2, 2, 20, 24)), TensorType(F32, (2, 2, 192, 24)), TensorType(F32, (2, 2, 192, 24)),
           TensorType(F32, (1, 2, 20, 192))]
    strides = [tuple(t.stride()) for t in (q, k, k, mask)]
    out = TensorType(F32, (2, 2, 20, 24))
    assert _SDPA_WORKSPACE.nbytes(ins, ATTRS, [out], strides=strides) + 2 * 2 * 20 * 24 * 4 == measured
