"""Causal SDPA chunked by query rows on PyTorch (CPU): ``rt.causal_attention`` at an offset.

A chunk of causal queries at rows ``offset .. offset + n`` used to be one SDPA call with a
bool mask of its rows ([n, offset + n]); ATen's CPU flash kernel then read a float copy of
that mask at every key block and computed the upper half of the causal square, and the
chunked GPT-2 SDPA of the fused-attention benchmark ran its attention 1.2-1.3x slower than
the unchunked causal kernel.  The rows now run as two flash calls, the keys every query sees
and the causal square, merged by their log-sum-exp: no mask exists.  Values are held to
attention in float64 with the explicit mask, memory to a measurement and to the estimate.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import chunkc
from chunkc.backends.torch_runtime import causal_attention
from chunkc.ir.parser import parse_graph
from chunkc.passes.plan import ChunkRegion, ChunkedValue, Plan

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 3e-2}


def _reference(q, k, v, offset: int, scale: float) -> torch.Tensor:
    rows = torch.arange(q.shape[-2])[:, None] + offset
    mask = torch.arange(k.shape[-2])[None, :] <= rows
    if k.shape[1] != q.shape[1]:  # shared key/value heads
        k, v = (t.repeat_interleave(q.shape[1] // k.shape[1], dim=1) for t in (k, v))
    return F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask, scale=scale)


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("rows, keys, offset", [
    (64, 512, 100),   # keys past the rows' last query are not read
    (128, 300, 256),  # the last rows: fewer keys than rows past the offset
    (50, 100, 100),   # the rows start at the last key
    (50, 100, 120),   # rows past every key see all of them
    (7, 7, 0),        # the first rows: one causal call
    (33, 1000, 967),
])
def test_causal_rows_match_masked_attention(dtype, rows, keys, offset):
    gen = torch.Generator().manual_seed(rows + keys + offset)
    q, k, v = (torch.randn(2, 3, n, 16, generator=gen, dtype=dtype) for n in (rows, keys, keys))
    got = causal_attention(q, k, v, offset, scale=0.3)
    assert got.dtype == dtype and got.shape == q.shape
    assert (got.double() - _reference(q, k, v, offset, 0.3)).abs().max().item() < TOLERANCE[dtype]


def test_causal_rows_differentiate_as_masked_attention():
    """With autograd recording (a training step's region re-run) the rows take the masked call:
    the flash kernel's backward drops the log-sum-exp's gradient, which the split's merge needs
    (q's and k's gradients were off by 0.1-0.3 here)."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, n, 8, generator=gen, dtype=torch.float64, requires_grad=True) for n in (24, 90, 90))
    causal_attention(q, k, v, 50, scale=0.4).square().sum().backward()
    got = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    _reference(q, k, v, 50, 0.4).square().sum().backward()
    for g, t in zip(got, (q, k, v)):
        assert (g - t.grad).abs().max().item() < 1e-10


def test_shared_heads_take_the_split_call():
    """Under enable_gqa the flash kernel reads each key head in place for its group of query
    heads: the rows are split as without groups (no mask), with the reference's values."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 256, 16, generator=gen)
    k, v = (torch.randn(1, 2, 4096, 16, generator=gen) for _ in range(2))
    got = causal_attention(q, k, v, 3000, scale=0.25, enable_gqa=True)
    assert (got.double() - _reference(q, k, v, 3000, 0.25)).abs().max().item() < 1e-5
    with torch.inference_mode():
        peak = chunkc.measure_peak(causal_attention, q, k, v, 3000, 0.25, True)
    mask = 256 * 3256 * 5  # the rows' bools and ATen's float copy, were the masked call made
    assert peak < mask // 8, f"peak {peak} B: the rows' mask ({mask} B) is still made"


def test_causal_rows_hold_no_mask():
    """Late rows of a long sequence: the mask of the rows ([256, 4096] bools and ATen's float
    copy, 5 MiB) was 20 times the output; now the peak is a few outputs."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 256, 64, generator=gen)
    k, v = (torch.randn(1, 4, 4096, 64, generator=gen) for _ in range(2))
    with torch.inference_mode():
        peak = chunkc.measure_peak(causal_attention, q, k, v, 3840, 0.125)
    output = q.numel() * 4
    mask = 256 * 4096 * 4
    assert peak < output + mask // 2, f"peak {peak} B: the rows' mask ({mask} B) is still made"
    assert peak <= 4 * output, f"peak {peak} B against an output of {output} B"


CAUSAL = """graph @causal_rows(%q: f32[1, 4, 2048, 64], %k: f32[1, KV, 2048, 64], %v: f32[1, KV, 2048, 64]) {
    %o: f32[1, 4, 2048, 64] = scaled_dot_product_attention(%q, %k, %v) {is_causal = true, scale = none, query_offset = 0, enable_gqa = GQA}
    return %o
}"""


@pytest.mark.parametrize("chunk,kv", [(96, 4), (512, 4), (96, 2)])
def test_chunked_causal_plan_estimate_and_values(chunk, kv):
    """A causal SDPA looped over its query rows (with grouped key heads, kv < 4): the chunked
    program equals the unchunked one, and its measured peak is the estimate's (the rows'
    workspace as the record states it)."""
    graph = parse_graph(CAUSAL.replace("KV", str(kv)).replace("GQA", "true" if kv < 4 else "false"))
    region = ChunkRegion(nodes=("o",), chunked=(ChunkedValue("q", 2), ChunkedValue("o", 2)), outputs=("o",),
                         extent=2048, chunk_size=chunk)
    plan = Plan(graph=graph, regions=(region,), backend="torch")
    gen = torch.Generator().manual_seed(2)
    args = [torch.randn(1, n, 2048, 64, generator=gen) for n in (4, kv, kv)]
    fn, plain = chunkc.compile(graph, plan, backend="torch"), chunkc.compile(graph, backend="torch")
    assert (fn(*args) - plain(*args)).abs().max().item() < 1e-5
    measured = chunkc.measure_peak(fn, *args)
    estimate = chunkc.estimate_memory(graph, plan, backend="torch").peak_bytes
    assert abs(estimate - measured) <= 0.02 * measured, f"estimate {estimate} B, measured {measured} B"
