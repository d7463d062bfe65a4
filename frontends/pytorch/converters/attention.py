"""Scaled dot-product attention, fused (kept whole by the decomposition table)."""

from __future__ import annotations

import torch

from chunkc.ir.dtypes import DType

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


def _repeat_heads(cx: Ctx, kv, heads: int):
    """Grouped-query attention: repeat each of the Hkv heads heads/Hkv times (axis -3)."""
    hkv = kv.shape[-3]
    if hkv == heads:
        return kv
    if not (isinstance(hkv, int) and isinstance(heads, int) and heads % hkv == 0):
        raise cx.fail(f"enable_gqa with {heads} query heads and {hkv} key/value heads")
    lead = tuple(kv.shape[:-3])
    x = cx.op("unsqueeze", kv, axis=kv.rank - 2)  # [..., Hkv, 1, S, D]
    x = cx.op("expand", x, shape=lead + (hkv, heads // hkv) + tuple(kv.shape[-2:]))
    return cx.op("reshape", x, shape=lead + (heads,) + tuple(kv.shape[-2:]))


def _attention(cx: Ctx, q, k, v, mask, dropout_p, is_causal, scale, gqa=False):
    if dropout_p:
        raise cx.fail(f"attention dropout p={dropout_p} (call module.eval(); eval mode passes dropout_p=0)")
    if gqa:
        k, v = _repeat_heads(cx, k, q.shape[-3]), _repeat_heads(cx, v, q.shape[-3])
    ins = [q, k, v]
    if mask is not None:
        ins.append(mask if mask.dtype == DType.bool else cx.cast(mask, q.dtype))
    return cx.op("scaled_dot_product_attention", *ins, is_causal=bool(is_causal),
                 scale=None if scale is None else float(scale))


@converts(aten.scaled_dot_product_attention)
def sdpa(cx: Ctx, a: Args):
    return _attention(cx, a.query, a.key, a.value, a.get("attn_mask"), a.get("dropout_p", 0.0),
                      a.get("is_causal", False), a.get("scale"), bool(a.get("enable_gqa", False)))


@converts(aten._scaled_dot_product_flash_attention_for_cpu, aten._scaled_dot_product_flash_attention,
          aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_cudnn_attention)
def sdpa_fused(cx: Ctx, a: Args):
    for i in range(1, len(cx.out_types)):
        if cx.output_used(i):
            raise cx.fail(f"output {i} of fused attention (logsumexp or RNG state) is used")
    mask = a.get("attn_mask", a.get("attn_bias"))
    y = _attention(cx, a.query, a.key, a.value, mask, a.get("dropout_p", 0.0), a.get("is_causal", False),
                   a.get("scale"))
    return (y,) + (None,) * (len(cx.out_types) - 1)
