"""QuantizeLinear, DequantizeLinear (per tensor, per axis, blocked).

Both are elementwise arithmetic: ``y = (x - zero_point) * scale`` and
``y = saturate(round(x / scale) + zero_point)`` (rounding half to even), with
the scale and zero point broadcast along ``axis`` (a 1-D scale) or repeated
over blocks of ``block_size`` elements (a scale of the input's rank).
"""

from __future__ import annotations

import numpy as np

from chunkc.ir.dtypes import DType

from ..types import to_dtype
from .registry import converter
from .shape import norm_axis


def _broadcast_param(ctx, node, p, x, axis_default: int = 1):
    """A scale or zero point shaped to broadcast against x."""
    if p.rank == 0 or (p.rank == 1 and p.shape[0] == 1):
        return p
    axis = norm_axis(ctx, int(node.attr("axis", axis_default)), x.rank)
    block = int(node.attr("block_size", 0))
    if block == 0:
        if p.rank != 1:
            raise ctx.fail(f"a per-axis scale must be 1-D, got {p.type}")
        return ctx.op("reshape", p, shape=tuple(p.shape[0] if k == axis else 1 for k in range(x.rank)))
    dim = x.shape[axis]
    if not isinstance(dim, int):
        raise ctx.fail(f"blocked quantization needs a static size along axis {axis}, got {dim}")
    index = ctx.const(np.arange(dim, dtype=np.int64) // block, name=node.hint + "_blocks")
    return ctx.op("take", p, index, axis=axis)


@converter("DequantizeLinear")
def dequantize_linear(ctx, node):
    x, scale = ctx.value(0), ctx.value(1)
    out_dtype = node.attr("output_dtype", 0)
    dt = to_dtype(int(out_dtype), f"{node.describe()}: output_dtype") if out_dtype else scale.dtype
    y = ctx.op("cast", x, dtype=DType.float32)
    if ctx.has(2):
        zp = ctx.op("cast", _broadcast_param(ctx, node, ctx.value(2), x), dtype=DType.float32)
        y = ctx.op("sub", y, zp)
    y = ctx.op("mul", y, ctx.op("cast", _broadcast_param(ctx, node, scale, x), dtype=DType.float32))
    ctx.set(0, ctx.keep_dtype(y, dt))


@converter("QuantizeLinear")
def quantize_linear(ctx, node):
    """Integers (sub-byte ones included): ``saturate(round(x / scale) + zero_point)``; the float8
    and float4 formats: ``cast(x / scale + zero_point)``, saturating where ONNX's ``saturate`` says."""
    import ml_dtypes

    from .constant import SATURATING

    x, scale = ctx.value(0), ctx.value(1)
    out_dtype = node.attr("output_dtype", 0)
    if ctx.has(2):
        dt = ctx.dtype(2)
    elif out_dtype:
        dt = to_dtype(int(out_dtype), f"{node.describe()}: output_dtype")
    else:
        dt = DType.uint8
    if dt == DType.bool or dt == DType.float8_e8m0fnu:
        raise ctx.fail(f"quantizing to {dt} is not defined by ONNX")
    q = ctx.op("div", ctx.op("cast", x, dtype=DType.float32),
               ctx.op("cast", _broadcast_param(ctx, node, scale, x), dtype=DType.float32))
    if not dt.is_floating:
        q = ctx.op("round", q)
    if ctx.has(2):
        q = ctx.op("add", q, ctx.op("cast", _broadcast_param(ctx, node, ctx.value(2), x), dtype=DType.float32))
    if not dt.is_floating:
        info = ml_dtypes.iinfo(dt.numpy)
        q = ctx.op("clamp", q, min=float(info.min), max=float(info.max))
    elif dt in SATURATING and bool(node.attr("saturate", 1)):
        limit = float(ml_dtypes.finfo(dt.numpy).max)
        q = ctx.op("clamp", q, min=-limit, max=limit)
    ctx.set(0, ctx.op("cast", q, dtype=dt))
