"""Reductions, arg-reductions, scans, softmax, sorting."""

from __future__ import annotations

import torch

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


def _axes(dims, rank: int):
    """torch's ``dim`` (None, int or list; [] means all) as chunkc ``axes``."""
    if dims is None:
        return None
    if isinstance(dims, int):
        dims = [dims]
    if len(dims) == 0:
        return None
    return tuple(sorted({d % rank for d in dims})) if rank else None


_SUMLIKE = {aten.sum: "sum", aten.mean: "mean", aten.prod: "prod"}


@converts(aten.sum, aten.mean, aten.prod)
def sum_mean(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())  # dtype= and int/bool sums accumulate in the result type
    return cx.op(_SUMLIKE[cx.node.target.overloadpacket], x, axes=_axes(a.get("dim"), x.rank),
                 keepdim=bool(a.get("keepdim", False)))


@converts(aten.amax, aten.amin)
def amax(cx: Ctx, a: Args):
    name = "amax" if cx.node.target.overloadpacket is aten.amax else "amin"
    x = a.self
    return cx.op(name, x, axes=_axes(a.get("dim"), x.rank), keepdim=bool(a.get("keepdim", False)))


@converts(aten.max, aten.min)
def max_min(cx: Ctx, a: Args):
    is_max = cx.node.target.overloadpacket is aten.max
    x = a.self
    if "other" in a:  # max.other: elementwise
        dt = cx.out_dtype()
        return cx.op("maximum" if is_max else "minimum", cx.tensor(x, dt), cx.tensor(a.other, dt))
    if "dim" not in a:  # max(): all elements
        return cx.op("amax" if is_max else "amin", x, axes=None, keepdim=False)
    axis, keepdim = a.dim % max(x.rank, 1), bool(a.get("keepdim", False))
    values = cx.op("amax" if is_max else "amin", x, axes=(axis,), keepdim=keepdim) if cx.output_used(0) else None
    index = cx.op("argmax" if is_max else "argmin", x, axis=axis, keepdim=keepdim) if cx.output_used(1) else None
    return (values, index)


@converts(aten.argmax, aten.argmin)
def argmax(cx: Ctx, a: Args):
    name = "argmax" if cx.node.target.overloadpacket is aten.argmax else "argmin"
    x = a.self
    dim, keepdim = a.get("dim"), bool(a.get("keepdim", False))
    if dim is None:  # over the flattened tensor
        flat = cx.op("reshape", x, shape=(-1,))
        out = cx.op(name, flat, axis=0, keepdim=False)
        return cx.op("reshape", out, shape=(1,) * x.rank) if keepdim else out
    return cx.op(name, x, axis=dim % max(x.rank, 1), keepdim=keepdim)


@converts(aten.any, aten.all)
def any_all(cx: Ctx, a: Args):
    name = "any" if cx.node.target.overloadpacket is aten.any else "all"
    x = a.self
    return cx.op(name, x, axes=_axes(a.get("dim"), x.rank), keepdim=bool(a.get("keepdim", False)))


def _correction(a: Args) -> float:
    if a.get("correction") is not None:
        c = a.correction
        return int(c) if float(c).is_integer() else c
    return 1 if a.get("unbiased", True) else 0


@converts(aten.var, aten.std)
def var_std(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    v = cx.op("var", x, axes=_axes(a.get("dim"), x.rank), keepdim=bool(a.get("keepdim", False)),
              correction=_correction(a))
    return cx.op("sqrt", v) if cx.node.target.overloadpacket is aten.std else v


@converts(aten.var_mean, aten.std_mean)
def var_mean(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    axes, keepdim = _axes(a.get("dim"), x.rank), bool(a.get("keepdim", False))
    v = cx.op("var", x, axes=axes, keepdim=keepdim, correction=_correction(a))
    if cx.node.target.overloadpacket is aten.std_mean:
        v = cx.op("sqrt", v)
    return (v, cx.op("mean", x, axes=axes, keepdim=keepdim))


@converts(aten.linalg_vector_norm, aten.norm)
def vector_norm(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    ord_ = a.get("ord", a.get("p", 2))
    ord_ = 2 if ord_ is None else ord_
    axes, keepdim = _axes(a.get("dim"), x.rank), bool(a.get("keepdim", False))
    absx = cx.op("abs", x)
    if ord_ == float("inf"):
        return cx.op("amax", absx, axes=axes, keepdim=keepdim)
    if ord_ == float("-inf"):
        return cx.op("amin", absx, axes=axes, keepdim=keepdim)
    if ord_ == 1:
        return cx.op("sum", absx, axes=axes, keepdim=keepdim)
    if ord_ == 2:
        return cx.op("sqrt", cx.op("sum", cx.op("mul", x, x), axes=axes, keepdim=keepdim))
    if ord_ == 0:
        nz = cx.cast(cx.op("ne", x, cx.const(0, x.dtype)), x.dtype)
        return cx.op("sum", nz, axes=axes, keepdim=keepdim)
    p = cx.const(float(ord_), x.dtype)
    s = cx.op("sum", cx.op("pow", absx, p), axes=axes, keepdim=keepdim)
    return cx.op("pow", s, cx.const(1.0 / float(ord_), x.dtype))


@converts(aten.logsumexp)
def logsumexp(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    axes, keepdim = _axes(a.get("dim"), x.rank), bool(a.get("keepdim", False))
    m = cx.op("amax", x, axes=axes, keepdim=True)
    s = cx.op("sum", cx.op("exp", cx.op("sub", x, m)), axes=axes, keepdim=True)
    out = cx.op("add", cx.op("log", s), m)
    return out if keepdim else cx.op("squeeze", out, axes=axes)


@converts(aten.cumsum)
def cumsum(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    return cx.op("cumsum", x, axis=a.dim % max(x.rank, 1))


@converts(aten._softmax, aten.softmax, aten._log_softmax, aten.log_softmax, aten._safe_softmax)
def softmax(cx: Ctx, a: Args):
    packet = cx.node.target.overloadpacket
    name = "log_softmax" if packet in (aten._log_softmax, aten.log_softmax) else "softmax"
    x = cx.tensor(a.self, cx.out_dtype())
    return cx.op(name, x, axis=a.dim % max(x.rank, 1))


@converts(aten.topk)
def topk(cx: Ctx, a: Args):
    x = a.self
    return cx.op_multi("topk", x, k=a.k, axis=a.get("dim", -1) % max(x.rank, 1),
                       largest=bool(a.get("largest", True)), sorted=bool(a.get("sorted", True)))


@converts(aten.sort)
def sort(cx: Ctx, a: Args):
    x = a.self
    return cx.op_multi("sort", x, axis=a.get("dim", -1) % max(x.rank, 1), descending=bool(a.get("descending", False)))


@converts(aten.argsort)
def argsort(cx: Ctx, a: Args):
    x = a.self
    _, idx = cx.op_multi("sort", x, axis=a.get("dim", -1) % max(x.rank, 1),
                         descending=bool(a.get("descending", False)))
    return idx

