"""Reductions (several axes, keepdim), softmax/log_softmax and cumsum.

Kept axes carry; reduced axes disappear (or stay as size-1 ``mix`` axes with
``keepdim``); softmax-like ops keep their shape and mix their one axis.
"""

from __future__ import annotations

from ..dims import AxisFlow, AxisSource, DimRecord, MIX
from ..dtypes import DType
from ..registry import OpDef, register
from ..sizes import Size, product
from ..types import TensorType
from ._common import fail, identity_dims, norm_axes, norm_axis


def _reduced_shape(op, t: TensorType, attrs):
    axes = norm_axes(op, attrs["axes"], t.rank)
    if attrs["keepdim"]:
        return axes, tuple(1 if k in axes else s for k, s in enumerate(t.shape))
    return axes, tuple(s for k, s in enumerate(t.shape) if k not in axes)


def _reduce_dims(ins, attrs, outs) -> DimRecord:
    t = ins[0]
    axes = norm_axes("reduce", attrs["axes"], t.rank)
    flows = []
    for k in range(t.rank):
        if k in axes:
            if attrs["keepdim"]:
                flows.append(MIX)
        else:
            flows.append(AxisFlow("carry", (AxisSource(0, k),)))
    return (tuple(flows),)


def reduction(name: str, fn, out_dtype=None, float_only=False, doc=""):
    def infer(ins, attrs):
        t = ins[0]
        if float_only and not t.dtype.is_floating:
            raise fail(name, f"input must be floating point, got {t}")
        _, shape = _reduced_shape(name, t, attrs)
        return (TensorType(out_dtype or t.dtype, shape),)

    def ref(xp, x, axes, keepdim, **kw):
        ax = tuple(range(x.ndim)) if axes is None else tuple(a % max(x.ndim, 1) for a in (axes if isinstance(axes, tuple) else (axes,)))
        out = fn(xp, x, ax, keepdim, **kw)
        return xp.asarray(out) if out_dtype is not None else xp.asarray(out).astype(x.dtype, copy=False)

    attrs = {"axes": None, "keepdim": False}
    if name == "var":
        attrs["correction"] = 1
    return register(OpDef(name=name, infer=infer, dims=_reduce_dims, reference=ref, attrs=attrs,
                          flops=lambda ins, a, outs: ins[0].numel(), doc=doc))


reduction("sum", lambda xp, x, ax, kd: xp.sum(x, axis=ax, keepdims=kd))
reduction("mean", lambda xp, x, ax, kd: xp.mean(x, axis=ax, keepdims=kd), float_only=True)
reduction("amax", lambda xp, x, ax, kd: xp.max(x, axis=ax, keepdims=kd))
reduction("amin", lambda xp, x, ax, kd: xp.min(x, axis=ax, keepdims=kd))
reduction("prod", lambda xp, x, ax, kd: xp.prod(x, axis=ax, keepdims=kd))
reduction("any", lambda xp, x, ax, kd: xp.any(x, axis=ax, keepdims=kd), out_dtype=DType.bool)
reduction("all", lambda xp, x, ax, kd: xp.all(x, axis=ax, keepdims=kd), out_dtype=DType.bool)
reduction("var", lambda xp, x, ax, kd, correction=1: xp.var(x, axis=ax, keepdims=kd, ddof=correction),
          float_only=True, doc="var(x, axes=, keepdim=, correction=1)")


def _arg_infer(name):
    def infer(ins, attrs):
        t = ins[0]
        axis = norm_axis(name, attrs["axis"], t.rank)
        shape = tuple(1 if k == axis else s for k, s in enumerate(t.shape)) if attrs["keepdim"] else \
            tuple(s for k, s in enumerate(t.shape) if k != axis)
        return (TensorType(DType.int64, shape),)
    return infer


def _arg_dims(ins, attrs, outs) -> DimRecord:
    t = ins[0]
    axis = norm_axis("argmax", attrs["axis"], t.rank)
    flows = []
    for k in range(t.rank):
        if k == axis:
            if attrs["keepdim"]:
                flows.append(MIX)
        else:
            flows.append(AxisFlow("carry", (AxisSource(0, k),)))
    return (tuple(flows),)


for _name, _fn in (("argmax", "argmax"), ("argmin", "argmin")):
    register(OpDef(name=_name, infer=_arg_infer(_name), dims=_arg_dims, attrs={"axis": -1, "keepdim": False},
                   reference=(lambda f: lambda xp, x, axis, keepdim: getattr(xp, f)(x, axis=axis, keepdims=keepdim).astype("int64"))(_fn),
                   flops=lambda ins, a, outs: ins[0].numel()))


def _along_axis_infer(name, float_only=True):
    def infer(ins, attrs):
        t = ins[0]
        if float_only and not t.dtype.is_floating:
            raise fail(name, f"input must be floating point, got {t}")
        norm_axis(name, attrs["axis"], t.rank)
        return (t,)
    return infer


def _along_axis_dims(ins, attrs, outs) -> DimRecord:
    t = ins[0]
    return (identity_dims(t.rank, skip=(norm_axis("softmax", attrs["axis"], t.rank),)),)


def _softmax(xp, x, axis):
    m = xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(x - m)
    return (e / xp.sum(e, axis=axis, keepdims=True)).astype(x.dtype, copy=False)


def _log_softmax(xp, x, axis):
    m = xp.max(x, axis=axis, keepdims=True)
    s = x - m
    return (s - xp.log(xp.sum(xp.exp(s), axis=axis, keepdims=True))).astype(x.dtype, copy=False)


register(OpDef(name="softmax", infer=_along_axis_infer("softmax"), dims=_along_axis_dims, reference=_softmax,
               attrs={"axis": -1}, flops=lambda ins, a, outs: 5 * outs[0].numel()))
register(OpDef(name="log_softmax", infer=_along_axis_infer("log_softmax"), dims=_along_axis_dims,
               reference=_log_softmax, attrs={"axis": -1}, flops=lambda ins, a, outs: 5 * outs[0].numel()))
register(OpDef(name="cumsum", infer=_along_axis_infer("cumsum", float_only=False), dims=_along_axis_dims,
               reference=lambda xp, x, axis: xp.cumsum(x, axis=axis).astype(x.dtype, copy=False),
               attrs={"axis": -1}))


def reduced_numel(t: TensorType, axes) -> Size:
    return product(t.shape[a] for a in axes)
