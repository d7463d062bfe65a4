"""Reductions (ReduceSum ... ReduceLogSumExp), Softmax, LogSoftmax,
LpNormalization, MeanVarianceNormalization.

Axes come from an attribute (older opsets) or an input (ReduceSum from opset
13, the others from 18).  Reducing over an empty axis gives the reduction's
identity (0 for sums, 1 for products, -inf/inf for max/min), as ONNX says.
"""

from __future__ import annotations

import math

import numpy as np

from chunkc.ir.dtypes import DType
from chunkc.ir.sizes import product

from .. import folding as F
from .registry import converter
from .shape import norm_axis

# op type -> (IR reduction, value of the reduction over an empty set)
REDUCE = {
    "ReduceSum": ("sum", 0.0), "ReduceMean": ("mean", math.nan), "ReduceMax": ("amax", -math.inf),
    "ReduceMin": ("amin", math.inf), "ReduceProd": ("prod", 1.0), "ReduceL1": ("sum", 0.0),
    "ReduceL2": ("sum", 0.0), "ReduceSumSquare": ("sum", 0.0), "ReduceLogSum": ("sum", -math.inf),
    "ReduceLogSumExp": ("sum", -math.inf),
}


def reduce_axes(ctx, node, rank: int) -> tuple[int, ...] | None:
    """The normalized axes, () for a no-op reduction, None for all axes."""
    axes = node.attr("axes")
    if axes is None and ctx.has(1):
        axes = ctx.static_ints(1, "axes")
    if axes is None or len(axes) == 0:
        return () if int(node.attr("noop_with_empty_axes", 0)) else None
    return tuple(sorted({norm_axis(ctx, int(a), rank) for a in axes}))


def _reduce_fold(ctx, arrays):
    x = arrays[0]
    op = ctx.node.op_type
    if op not in ("ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin"):
        return None
    axes = reduce_axes(ctx, ctx.node, x.ndim)
    if axes == ():
        return [(x, ctx.dtype(0))]
    keep = bool(ctx.node.attr("keepdims", 1))
    if F.is_symbolic(x):
        if op not in ("ReduceSum", "ReduceProd") or x.size == 0:
            return None
        fn = np.sum if op == "ReduceSum" else np.prod
        return [(F.as_integers(np.asarray(fn(x, axis=axes, keepdims=keep), dtype=object)), ctx.dtype(0))]
    fn = {"ReduceSum": np.sum, "ReduceProd": np.prod, "ReduceMax": np.max, "ReduceMin": np.min}[op]
    if x.size == 0:
        return None
    return [(np.asarray(fn(x, axis=axes, keepdims=keep)).astype(x.dtype), ctx.dtype(0))]


@converter(*REDUCE, fold=_reduce_fold)
def reduce(ctx, node):
    x = ctx.value(0)
    axes = reduce_axes(ctx, node, x.rank)
    if axes == ():
        ctx.set(0, ctx.op("copy", x))
        return
    ir_op, empty_value = REDUCE[node.op_type]
    keep = bool(node.attr("keepdims", 1))
    all_axes = tuple(range(x.rank)) if axes is None else axes
    out_shape = tuple(1 if k in all_axes else s for k, s in enumerate(x.shape) if keep or k not in all_axes)
    reduced = product(x.shape[k] for k in all_axes)
    if isinstance(reduced, int) and reduced == 0:
        if x.dtype == DType.bool:  # max is "any", min is "all"
            empty_value = {"ReduceMax": False, "ReduceMin": True}.get(node.op_type, empty_value)
        ctx.set(0, ctx.graph.op("full", shape=out_shape, value=empty_value, dtype=x.dtype, name=node.hint))
        return
    op = node.op_type
    dtype = x.dtype
    if op == "ReduceLogSumExp":
        m = ctx.op("amax", x, axes=axes, keepdim=True)
        s = ctx.op("sum", ctx.op("exp", ctx.op("sub", x, m)), axes=axes, keepdim=keep)
        m_out = m if keep else ctx.op("reshape", m, shape=out_shape)
        ctx.set(0, ctx.op("add", ctx.op("log", s), m_out))
        return
    if op == "ReduceL1":
        x = ctx.op("abs", x)
    elif op in ("ReduceL2", "ReduceSumSquare"):
        x = ctx.op("mul", x, x)
    y = ctx.op(ir_op, x, axes=axes, keepdim=keep)
    if op == "ReduceL2":
        y = ctx.op("sqrt", y)
    elif op == "ReduceLogSum":
        y = ctx.op("log", y)
    ctx.set(0, ctx.keep_dtype(y, dtype))


@converter("Softmax", "LogSoftmax")
def softmax(ctx, node):
    x = ctx.value(0)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    if ctx.opset >= 13:
        ctx.set(0, ctx.op(op, x, axis=norm_axis(ctx, int(node.attr("axis", -1)), x.rank)))
        return
    # before opset 13 the input is coerced to 2-D at `axis` (default 1)
    axis = norm_axis(ctx, int(node.attr("axis", 1)), x.rank)
    flat = ctx.op("reshape", x, shape=(product(x.shape[:axis]), product(x.shape[axis:])))
    ctx.set(0, ctx.op("reshape", ctx.op(op, flat, axis=1), shape=x.shape))


@converter("LpNormalization")
def lp_normalization(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", -1)), x.rank)
    p = int(node.attr("p", 2))
    if p == 1:
        norm = ctx.op("sum", ctx.op("abs", x), axes=(axis,), keepdim=True)
    elif p == 2:
        norm = ctx.op("sqrt", ctx.op("sum", ctx.op("mul", x, x), axes=(axis,), keepdim=True))
    else:
        raise ctx.fail(f"p={p} is not 1 or 2")
    zero = ctx.scalar(0, x.dtype)
    is_zero = ctx.op("eq", norm, zero)
    safe = ctx.op("where", is_zero, ctx.scalar(1, x.dtype), norm)
    ctx.set(0, ctx.op("where", is_zero, zero, ctx.op("div", x, safe)))


@converter("MeanVarianceNormalization")
def mean_variance_normalization(ctx, node):
    x = ctx.value(0)
    axes = tuple(sorted(norm_axis(ctx, int(a), x.rank) for a in node.attr("axes", [0, 2, 3])))
    mean = ctx.op("mean", x, axes=axes, keepdim=True)
    centered = ctx.op("sub", x, mean)
    var = ctx.op("mean", ctx.op("mul", centered, centered), axes=axes, keepdim=True)
    std = ctx.op("sqrt", var)
    ctx.set(0, ctx.op("div", centered, ctx.op("add", std, ctx.scalar(1e-9, x.dtype))))
