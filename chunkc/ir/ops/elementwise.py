"""Elementwise ops: unary maths and activations, broadcasting binary ops,
comparisons, ``where``, ``masked_fill``, ``cast`` and ``clamp``.

Every output axis carries the matching axis of each input that is not
broadcast from size 1 (see :func:`broadcast_dims`).
"""

from __future__ import annotations

import math

from ..dims import DimRecord
from ..dtypes import DType, dtype as to_dtype
from ..registry import OpDef, REQUIRED, register
from ..types import TensorType
from ._common import broadcast_dims, broadcast_shapes, fail, result_dtype
from .special import erf


def _unary_infer(name, float_only=False):
    def infer(ins, attrs):
        if float_only and not ins[0].dtype.is_floating:
            raise fail(name, f"input must be floating point, got {ins[0]}")
        return (ins[0],)
    return infer


def _bcast_dims(ins, attrs, outs) -> DimRecord:
    return (broadcast_dims(ins, outs[0]),)


def unary(name: str, fn, flops: int = 1, float_only: bool = True, attrs=None, doc: str = "") -> OpDef:
    return register(OpDef(
        name=name, infer=_unary_infer(name, float_only), dims=_bcast_dims, reference=fn,
        attrs=attrs or {}, flops=lambda ins, a, outs: flops * outs[0].numel(), doc=doc,
    ))


def _gelu(xp, x, approximate="none"):
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return (0.5 * x * (1.0 + xp.tanh(c * (x + 0.044715 * x * x * x)))).astype(x.dtype)
    return (0.5 * x * (1.0 + erf(xp, x / math.sqrt(2.0)))).astype(x.dtype)


def _sigmoid(xp, x):
    return (1.0 / (1.0 + xp.exp(-x))).astype(x.dtype)


unary("neg", lambda xp, x: -x, float_only=False)
unary("abs", lambda xp, x: xp.abs(x), float_only=False)
unary("exp", lambda xp, x: xp.exp(x), flops=4)
unary("log", lambda xp, x: xp.log(x), flops=4)
unary("sqrt", lambda xp, x: xp.sqrt(x), flops=2)
unary("rsqrt", lambda xp, x: (1.0 / xp.sqrt(x)).astype(x.dtype), flops=3)
unary("reciprocal", lambda xp, x: (1.0 / x).astype(x.dtype))
unary("sin", lambda xp, x: xp.sin(x), flops=4)
unary("cos", lambda xp, x: xp.cos(x), flops=4)
unary("tanh", lambda xp, x: xp.tanh(x), flops=4)
unary("erf", lambda xp, x: erf(xp, x), flops=8)
unary("sigmoid", _sigmoid, flops=4)
unary("relu", lambda xp, x: xp.maximum(x, 0).astype(x.dtype), float_only=False)
unary("gelu", _gelu, flops=8, attrs={"approximate": "none"},
      doc="GELU; approximate='tanh' uses the tanh formula.")
unary("silu", lambda xp, x: (x * _sigmoid(xp, x)).astype(x.dtype), flops=5)
unary("floor", lambda xp, x: xp.floor(x))
unary("sign", lambda xp, x: xp.sign(x), float_only=False)
unary("logical_not", lambda xp, x: xp.logical_not(x), float_only=False)


def _binary_infer(name, compare=False, logical=False):
    def infer(ins, attrs):
        shape = broadcast_shapes(name, ins)
        if compare or logical:
            return (TensorType(DType.bool, shape),)
        return (TensorType(result_dtype(ins), shape),)
    return infer


def _same_dtype(fn):
    def ref(xp, a, b):
        out = fn(xp, a, b)
        dt = xp.result_type(a, b)
        return out.astype(dt, copy=False) if hasattr(out, "astype") else xp.asarray(out, dtype=dt)
    return ref


def binary(name: str, fn, compare: bool = False, logical: bool = False, flops: int = 1) -> OpDef:
    return register(OpDef(
        name=name, infer=_binary_infer(name, compare, logical), dims=_bcast_dims,
        reference=fn if (compare or logical) else _same_dtype(fn), num_inputs=(2, 2),
        flops=lambda ins, a, outs: flops * outs[0].numel(),
    ))


binary("add", lambda xp, a, b: a + b)
binary("sub", lambda xp, a, b: a - b)
binary("mul", lambda xp, a, b: a * b)
binary("div", lambda xp, a, b: a / b)
binary("pow", lambda xp, a, b: xp.power(a, b), flops=4)
binary("maximum", lambda xp, a, b: xp.maximum(a, b))
binary("minimum", lambda xp, a, b: xp.minimum(a, b))
binary("eq", lambda xp, a, b: a == b, compare=True)
binary("ne", lambda xp, a, b: a != b, compare=True)
binary("lt", lambda xp, a, b: a < b, compare=True)
binary("le", lambda xp, a, b: a <= b, compare=True)
binary("gt", lambda xp, a, b: a > b, compare=True)
binary("ge", lambda xp, a, b: a >= b, compare=True)
binary("logical_and", lambda xp, a, b: xp.logical_and(a, b), logical=True)
binary("logical_or", lambda xp, a, b: xp.logical_or(a, b), logical=True)


def _where_infer(ins, attrs):
    cond, a, b = ins
    if cond.dtype != DType.bool:
        raise fail("where", f"condition (input 0) must be bool, got {cond}")
    return (TensorType(result_dtype([a, b]), broadcast_shapes("where", ins)),)


def _where_ref(xp, cond, a, b):
    return xp.where(cond, a, b).astype(xp.result_type(a, b), copy=False)


register(OpDef(name="where", infer=_where_infer, dims=_bcast_dims, reference=_where_ref, num_inputs=(3, 3),
               doc="where(cond, a, b): a where cond holds, else b; all three broadcast."))


def _masked_fill_infer(ins, attrs):
    x, mask = ins
    if mask.dtype != DType.bool:
        raise fail("masked_fill", f"mask (input 1) must be bool, got {mask}")
    shape = broadcast_shapes("masked_fill", ins)
    if len(shape) != x.rank or any(a is not b and a != b for a, b in zip(shape, x.shape)):
        raise fail("masked_fill", f"mask {mask} must broadcast to the input's shape {x}")
    return (x,)


def _masked_fill_ref(xp, x, mask, value):
    return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)


register(OpDef(name="masked_fill", infer=_masked_fill_infer, dims=_bcast_dims, reference=_masked_fill_ref,
               num_inputs=(2, 2), attrs={"value": REQUIRED},
               doc="masked_fill(x, mask, value=v): v where mask holds, else x."))


def _cast_infer(ins, attrs):
    return (ins[0].with_dtype(to_dtype(attrs["dtype"])),)


def _cast_ref(xp, x, dtype):
    return x.astype(to_dtype(dtype).numpy)


register(OpDef(name="cast", infer=_cast_infer, dims=_bcast_dims, reference=_cast_ref, attrs={"dtype": REQUIRED},
               doc="cast(x, dtype=f16): convert the element type."))


def _clamp_ref(xp, x, min=None, max=None):
    return xp.clip(x, min, max).astype(x.dtype, copy=False)


def _clamp_infer(ins, attrs):
    if attrs["min"] is None and attrs["max"] is None:
        raise fail("clamp", "give min, max or both")
    return (ins[0],)


register(OpDef(name="clamp", infer=_clamp_infer, dims=_bcast_dims, reference=_clamp_ref,
               attrs={"min": None, "max": None}, doc="clamp(x, min=, max=): clip to a range."))
