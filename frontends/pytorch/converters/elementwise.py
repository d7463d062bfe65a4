"""Elementwise ATen ops: arithmetic, comparisons, logic, activations, casts.

Arithmetic is computed in torch's result type (the output's dtype), so integer
inputs of a true division or Python floats are promoted as torch does;
comparisons compute in the promoted type of their operands.
"""

from __future__ import annotations

import math

from chunkc.ir.dtypes import DType

from ..context import Args, Ctx
from .registry import converts

aten = __import__("torch").ops.aten


def _scaled(cx: Ctx, v, factor, dt):
    return v if factor == 1 else cx.op("mul", v, cx.const(factor, dt))


@converts(aten.add, aten.sub)
def add_sub(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    x, y = cx.tensor(a.self, dt), cx.tensor(a.other, dt)
    y = _scaled(cx, y, a.get("alpha", 1), dt)
    return cx.op("add" if cx.node.target.overloadpacket is aten.add else "sub", x, y)


@converts(aten.rsub)
def rsub(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    x = _scaled(cx, cx.tensor(a.self, dt), a.get("alpha", 1), dt)
    return cx.op("sub", cx.tensor(a.other, dt), x)


_ARITH = {aten.mul: "mul", aten.maximum: "maximum", aten.minimum: "minimum", aten.fmax: "maximum",
          aten.fmin: "minimum", aten.remainder: "remainder", aten.fmod: "fmod", aten.floor_divide: "floor_divide",
          aten.atan2: "atan2"}


@converts(*_ARITH)
def arith(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    return cx.op(_ARITH[cx.node.target.overloadpacket], cx.tensor(a.self, dt), cx.tensor(a.other, dt))


@converts(aten.pow)
def pow_(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    base, exp = a.self, a.exponent
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        if exp == 1:
            return cx.tensor(base, dt)
        if exp == 2:
            x = cx.tensor(base, dt)
            return cx.op("mul", x, x)
        if exp == 0.5 and dt.is_floating:
            return cx.op("sqrt", cx.tensor(base, dt))
    return cx.op("pow", cx.tensor(base, dt), cx.tensor(exp, dt))


@converts(aten.div)
def div(cx: Ctx, a: Args):
    mode = a.get("rounding_mode")
    dt = cx.out_dtype()
    if mode is None:
        return cx.op("div", cx.tensor(a.self, dt), cx.tensor(a.other, dt))
    if mode == "floor":
        if dt.is_floating:
            return cx.op("floor", cx.op("div", cx.tensor(a.self, dt), cx.tensor(a.other, dt)))
        return cx.op("floor_divide", cx.tensor(a.self, dt), cx.tensor(a.other, dt))
    if mode == "trunc":
        # integers: exact in float64 below 2**53; chunkc has no integer truncating division
        work = dt if dt.is_floating else DType.float64
        q = cx.op("div", cx.tensor(a.self, work), cx.tensor(a.other, work))
        return cx.cast(_trunc(cx, q), dt)
    raise cx.fail(f"div with rounding_mode={mode!r}")


def _trunc(cx: Ctx, q):
    neg = cx.op("lt", q, cx.const(0, q.dtype))
    return cx.op("where", neg, cx.op("ceil", q), cx.op("floor", q))


_COMPARE = {aten.eq: "eq", aten.ne: "ne", aten.lt: "lt", aten.le: "le", aten.gt: "gt", aten.ge: "ge"}


@converts(*_COMPARE)
def compare(cx: Ctx, a: Args):
    dt = cx.result_type("self", "other")
    return cx.op(_COMPARE[cx.node.target.overloadpacket], cx.tensor(a.self, dt), cx.tensor(a.other, dt))


# ``a & b`` on tensors is ``aten.__and__`` before decomposition (the importer may skip it) and
# ``aten.bitwise_and`` after: the same op either way.
_LOGICAL = {aten.logical_and: "logical_and", aten.logical_or: "logical_or", aten.logical_xor: "logical_xor",
            aten.bitwise_and: "logical_and", aten.bitwise_or: "logical_or", aten.bitwise_xor: "logical_xor",
            aten.__and__: "logical_and", aten.__or__: "logical_or", aten.__xor__: "logical_xor"}
_BITWISE = {aten.bitwise_and: "bitwise_and", aten.bitwise_or: "bitwise_or", aten.bitwise_xor: "bitwise_xor",
            aten.__and__: "bitwise_and", aten.__or__: "bitwise_or", aten.__xor__: "bitwise_xor"}


@converts(*_LOGICAL)
def logical(cx: Ctx, a: Args):
    packet = cx.node.target.overloadpacket
    if packet in _BITWISE and cx.out_dtype() != DType.bool:
        dt = cx.out_dtype()
        return cx.op(_BITWISE[packet], cx.tensor(a.self, dt), cx.tensor(a.other, dt))
    x, y = cx.tensor(a.self, DType.bool), cx.tensor(a.other, DType.bool)
    return cx.op(_LOGICAL[packet], x, y)


@converts(aten.logical_not, aten.bitwise_not)
def logical_not(cx: Ctx, a: Args):
    if cx.out_dtype() != DType.bool:
        return cx.op("bitwise_not", a.self)
    return cx.op("logical_not", cx.tensor(a.self, DType.bool))


# -- unary maths ---------------------------------------------------------------------

_UNARY = {
    aten.neg: "neg", aten.abs: "abs", aten.exp: "exp", aten.log: "log", aten.sqrt: "sqrt", aten.rsqrt: "rsqrt",
    aten.reciprocal: "reciprocal", aten.sin: "sin", aten.cos: "cos", aten.tan: "tan", aten.tanh: "tanh",
    aten.atan: "atan", aten.erf: "erf", aten.sigmoid: "sigmoid", aten.relu: "relu", aten.silu: "silu",
    aten.floor: "floor", aten.ceil: "ceil", aten.sign: "sign", aten.sgn: "sign", aten.log1p: "log1p",
    aten.expm1: "expm1", aten.hardswish: "hardswish", aten.hardsigmoid: "hardsigmoid", aten.mish: "mish",
}
_EXTRA_UNARY = {aten.asin: "asin", aten.acos: "acos", aten.sinh: "sinh", aten.cosh: "cosh", aten.asinh: "asinh",
                aten.acosh: "acosh", aten.atanh: "atanh"}


@converts(*_UNARY)
def unary(cx: Ctx, a: Args):
    # int inputs of float functions (sqrt of an int tensor) compute in the float result type
    return cx.op(_UNARY[cx.node.target.overloadpacket], cx.tensor(a.self, cx.out_dtype()))


@converts(*_EXTRA_UNARY)
def unary_extra(cx: Ctx, a: Args):
    return cx.op(_EXTRA_UNARY[cx.node.target.overloadpacket], cx.tensor(a.self, cx.out_dtype()))


@converts(aten.round)
def round_(cx: Ctx, a: Args):
    decimals = a.get("decimals", 0)
    x = cx.tensor(a.self, cx.out_dtype())
    if decimals == 0:
        return cx.op("round", x)
    f = cx.const(10.0 ** decimals, x.dtype)
    return cx.op("div", cx.op("round", cx.op("mul", x, f)), f)


@converts(aten.trunc, aten.fix)
def trunc(cx: Ctx, a: Args):
    x = a.self
    return _trunc(cx, x) if x.dtype.is_floating else x


@converts(aten.frac)
def frac(cx: Ctx, a: Args):
    return cx.op("sub", a.self, _trunc(cx, a.self))


@converts(aten.square)
def square(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    return cx.op("mul", x, x)


_LOG_BASE = {aten.log2: 2.0, aten.log10: 10.0}


@converts(*_LOG_BASE)
def log_base(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    return cx.op("mul", cx.op("log", x), cx.const(1.0 / math.log(_LOG_BASE[cx.node.target.overloadpacket]), x.dtype))


@converts(aten.exp2)
def exp2(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    return cx.op("exp", cx.op("mul", x, cx.const(math.log(2.0), x.dtype)))


@converts(aten.erfc)
def erfc(cx: Ctx, a: Args):
    x = cx.tensor(a.self, cx.out_dtype())
    return cx.op("sub", cx.const(1.0, x.dtype), cx.op("erf", x))


@converts(aten.isnan, aten.isinf)
def isnan_isinf(cx: Ctx, a: Args):
    name = "isnan" if cx.node.target.overloadpacket is aten.isnan else "isinf"
    if not a.self.dtype.is_floating:
        return cx.op("ne", a.self, a.self)  # integers are never nan or inf
    return cx.op(name, a.self)


@converts(aten.isfinite)
def isfinite(cx: Ctx, a: Args):
    x = a.self
    if not x.dtype.is_floating:
        return cx.op("eq", x, x)
    return cx.op("logical_not", cx.op("logical_or", cx.op("isnan", x), cx.op("isinf", x)))


# -- activations with parameters -------------------------------------------------------


@converts(aten.gelu)
def gelu(cx: Ctx, a: Args):
    return cx.op("gelu", a.self, approximate=a.get("approximate", "none"))


@converts(aten.leaky_relu)
def leaky_relu(cx: Ctx, a: Args):
    return cx.op("leaky_relu", a.self, negative_slope=float(a.get("negative_slope", 0.01)))


@converts(aten.elu)
def elu(cx: Ctx, a: Args):
    alpha, scale, input_scale = float(a.get("alpha", 1.0)), float(a.get("scale", 1.0)), float(a.get("input_scale", 1.0))
    x = a.self
    if scale == 1.0 and input_scale == 1.0:
        return cx.op("elu", x, alpha=alpha)
    # scale * (x if x > 0 else alpha * (exp(input_scale * x) - 1))  (selu, celu)
    dt = x.dtype
    neg = cx.op("mul", cx.op("expm1", cx.op("mul", x, cx.const(input_scale, dt))), cx.const(alpha, dt))
    y = cx.op("where", cx.op("gt", x, cx.const(0.0, dt)), x, neg)
    return cx.op("mul", y, cx.const(scale, dt))


@converts(aten.softplus)
def softplus(cx: Ctx, a: Args):
    return cx.op("softplus", a.self, beta=float(a.get("beta", 1.0)), threshold=float(a.get("threshold", 20.0)))


@converts(aten.hardtanh, aten.relu6)
def hardtanh(cx: Ctx, a: Args):
    lo, hi = (0.0, 6.0) if cx.node.target.overloadpacket is aten.relu6 else (a.get("min_val", -1.0), a.get("max_val", 1.0))
    return cx.op("clamp", a.self, min=lo, max=hi)


@converts(aten.threshold)
def threshold(cx: Ctx, a: Args):
    x = a.self
    keep = cx.op("gt", x, cx.const(a.threshold, x.dtype))
    return cx.op("where", keep, x, cx.const(a.value, x.dtype))


@converts(aten._prelu_kernel, aten.prelu)
def prelu(cx: Ctx, a: Args):
    x, w = a.self, a.weight
    if w.rank == 1 and x.rank >= 2 and w.shape[0] != 1:  # one slope per channel (axis 1)
        w = cx.op("reshape", w, shape=(w.shape[0],) + (1,) * (x.rank - 2))
    return cx.op("where", cx.op("gt", x, cx.const(0, x.dtype)), x, cx.op("mul", x, w))


@converts(aten.lerp)
def lerp(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    x, end, w = cx.tensor(a.self, dt), cx.tensor(a.end, dt), cx.tensor(a.weight, dt)
    return cx.op("add", x, cx.op("mul", w, cx.op("sub", end, x)))


# -- selection and clamping --------------------------------------------------------------


@converts(aten.where)
def where(cx: Ctx, a: Args):
    if "self" not in a:
        raise cx.fail("where(condition) with one argument is data-dependent (it is nonzero)")
    dt = cx.out_dtype()
    return cx.op("where", cx.tensor(a.condition, DType.bool), cx.tensor(a.self, dt), cx.tensor(a.other, dt))


@converts(aten.masked_fill)
def masked_fill(cx: Ctx, a: Args):
    x, mask, value = a.self, cx.tensor(a.mask, DType.bool), a.value
    if isinstance(value, (bool, int, float)):
        value = bool(value) if x.dtype == DType.bool else float(value) if x.dtype.is_floating else int(value)
        return cx.op("masked_fill", x, mask, value=value)
    return cx.op("where", mask, cx.tensor(value, x.dtype), x)


@converts(aten.clamp, aten.clamp_min, aten.clamp_max)
def clamp(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    x = cx.tensor(a.self, dt)
    packet = cx.node.target.overloadpacket
    lo = a.get("min") if packet is not aten.clamp_max else None
    hi = a.get("max") if packet is not aten.clamp_min else None
    if lo is None and hi is None:
        return x
    if isinstance(lo, (int, float, type(None))) and isinstance(hi, (int, float, type(None))):
        conv = float if dt.is_floating else int
        return cx.op("clamp", x, min=None if lo is None else conv(lo), max=None if hi is None else conv(hi))
    if lo is not None:
        x = cx.op("maximum", x, cx.tensor(lo, dt))
    if hi is not None:
        x = cx.op("minimum", x, cx.tensor(hi, dt))
    return x


# -- casts, copies and no-ops ---------------------------------------------------------------


@converts(aten._to_copy, aten.to, aten.type_as)
def to_copy(cx: Ctx, a: Args):
    return cx.cast(a.self, cx.out_dtype())


@converts(aten.clone, aten.contiguous)
def clone(cx: Ctx, a: Args):
    # chunkc has no memory formats: a clone is a (possibly free) contiguous copy
    return cx.op("contiguous", a.self)


@converts(aten.alias, aten.detach, aten.lift_fresh_copy, aten.lift_fresh, aten.dropout, aten.feature_dropout,
          aten.alpha_dropout, aten.feature_alpha_dropout)
def identity(cx: Ctx, a: Args):
    if a.get("train", False):
        raise cx.fail("dropout in training mode (call module.eval() before importing)")
    x = a.get("self", None)
    return x if x is not None else a.input


@converts(aten.native_dropout)
def native_dropout(cx: Ctx, a: Args):
    if a.get("train", False):
        raise cx.fail("dropout in training mode (call module.eval() before importing)")
    if cx.output_used(1):
        raise cx.fail("the dropout mask (output 1) is used")
    return (a.input, None)


@converts(aten.copy)
def copy(cx: Ctx, a: Args):
    # functional copy_(self, src): src broadcast to self's shape, in self's dtype
    src = cx.tensor(a.src, a.self.dtype)
    if tuple(src.shape) != tuple(a.self.shape):
        src = cx.op("expand", src, shape=tuple(a.self.shape))
    return cx.op("copy", src)


@converts(aten.fill, aten.zero)
def fill(cx: Ctx, a: Args):
    value = a.get("value", 0)
    if isinstance(value, (bool, int, float)):
        return cx.op("full_like", a.self, value=value)
    return cx.op("expand", cx.tensor(value, a.self.dtype), shape=tuple(a.self.shape))
