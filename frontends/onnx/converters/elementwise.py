"""Elementwise ONNX ops: unary maths and activations, broadcasting binary ops,
comparisons and logic, variadic Max/Min/Sum/Mean, Clip, Where, Mod, Pow.

Each maps onto one IR op or a short composition; ops that exporters apply to
shapes (Add, Mul, Div, Equal, Where...) also fold at import time, symbolic
sizes included (see frontends/onnx/folding.py).
"""

from __future__ import annotations

import numpy as np

from chunkc.ir.dtypes import DType

from .. import folding as F
from .registry import converter

# -- unary ----------------------------------------------------------------------------

UNARY = {
    "Abs": "abs", "Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
    "Sin": "sin", "Cos": "cos", "Tan": "tan", "Atan": "atan", "Asin": "asin", "Acos": "acos",
    "Sinh": "sinh", "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh",
    "Tanh": "tanh", "Erf": "erf", "Sigmoid": "sigmoid", "Relu": "relu", "Floor": "floor", "Ceil": "ceil",
    "Round": "round", "Sign": "sign", "Not": "logical_not", "IsNaN": "isnan", "Softplus": "softplus",
    "Mish": "mish", "HardSwish": "hardswish", "BitwiseNot": "bitwise_not",
}

_UNARY_FOLD = {
    "Abs": (np.abs, abs), "Neg": (np.negative, lambda a: -a),
    "Floor": (np.floor, F.floor_fn), "Ceil": (np.ceil, F.ceil_fn),
    "Not": (np.logical_not, None), "Sign": (np.sign, None),
}


def _unary(ctx, node):
    ctx.set(0, ctx.op(UNARY[node.op_type], ctx.value(0)))


def _unary_fold(ctx, arrays):
    numeric, symbolic = _UNARY_FOLD[ctx.node.op_type]
    (a,) = arrays
    dt = ctx.dtype(0)
    if F.is_symbolic(a):
        if symbolic is None:
            return None
        return [(F.as_integers(F.elementwise(symbolic, a)), dt)]
    with np.errstate(all="ignore"):
        return [(np.asarray(numeric(a)).astype(dt.numpy), dt)]


converter(*(op for op in UNARY if op not in _UNARY_FOLD))(_unary)
converter(*_UNARY_FOLD, fold=_unary_fold)(_unary)


@converter("LeakyRelu")
def leaky_relu(ctx, node):
    ctx.set(0, ctx.op("leaky_relu", ctx.value(0), negative_slope=float(node.attr("alpha", 0.01))))


@converter("Elu")
def elu(ctx, node):
    ctx.set(0, ctx.op("elu", ctx.value(0), alpha=float(node.attr("alpha", 1.0))))


@converter("Selu")
def selu(ctx, node):
    x = ctx.value(0)
    y = ctx.op("elu", x, alpha=float(node.attr("alpha", 1.67326319217681884765625)))
    ctx.set(0, ctx.op("mul", y, ctx.scalar(float(node.attr("gamma", 1.05070102214813232421875)), x.dtype)))


@converter("Celu")
def celu(ctx, node):
    # celu(x) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) = alpha * elu(x / alpha) for x <= 0
    x = ctx.value(0)
    alpha = float(node.attr("alpha", 1.0))
    a = ctx.scalar(alpha, x.dtype)
    scaled = ctx.op("mul", ctx.op("elu", ctx.op("div", x, a)), a)
    ctx.set(0, ctx.op("where", ctx.op("gt", x, ctx.scalar(0, x.dtype)), x, scaled))


@converter("Gelu")
def gelu(ctx, node):
    approx = node.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        raise ctx.fail(f"approximate={approx!r} is not 'none' or 'tanh'")
    ctx.set(0, ctx.op("gelu", ctx.value(0), approximate=approx))


@converter("HardSigmoid")
def hard_sigmoid(ctx, node):
    x = ctx.value(0)
    y = ctx.op("add", ctx.op("mul", x, ctx.scalar(float(node.attr("alpha", 0.2)), x.dtype)),
               ctx.scalar(float(node.attr("beta", 0.5)), x.dtype))
    ctx.set(0, ctx.op("clamp", y, min=0.0, max=1.0))


@converter("Softsign")
def softsign(ctx, node):
    x = ctx.value(0)
    ctx.set(0, ctx.op("div", x, ctx.op("add", ctx.op("abs", x), ctx.scalar(1.0, x.dtype))))


@converter("ThresholdedRelu")
def thresholded_relu(ctx, node):
    x = ctx.value(0)
    cond = ctx.op("gt", x, ctx.scalar(float(node.attr("alpha", 1.0)), x.dtype))
    ctx.set(0, ctx.op("where", cond, x, ctx.scalar(0, x.dtype)))


@converter("Shrink")
def shrink(ctx, node):
    x = ctx.value(0)
    lambd, bias = float(node.attr("lambd", 0.5)), float(node.attr("bias", 0.0))
    zero = ctx.scalar(0, x.dtype)
    low = ctx.op("where", ctx.op("lt", x, ctx.scalar(-lambd, DType.float64)),
                 ctx.op("add", x, ctx.scalar(bias, x.dtype)), zero)
    ctx.set(0, ctx.op("where", ctx.op("gt", x, ctx.scalar(lambd, DType.float64)),
                      ctx.op("sub", x, ctx.scalar(bias, x.dtype)), low))


@converter("PRelu")
def prelu(ctx, node):
    x, slope = ctx.value(0), ctx.value(1)
    neg = ctx.op("mul", x, slope)
    ctx.set(0, ctx.op("where", ctx.op("lt", x, ctx.scalar(0, x.dtype)), neg, x))


@converter("Swish")
def swish(ctx, node):
    x = ctx.value(0)
    alpha = float(node.attr("alpha", 1.0))
    if alpha == 1.0:
        ctx.set(0, ctx.op("silu", x))
    else:
        ctx.set(0, ctx.op("mul", x, ctx.op("sigmoid", ctx.op("mul", x, ctx.scalar(alpha, x.dtype)))))


@converter("IsInf")
def is_inf(ctx, node):
    x = ctx.value(0)
    inf = ctx.op("isinf", x)
    pos, neg = int(node.attr("detect_positive", 1)), int(node.attr("detect_negative", 1))
    if pos and neg:
        ctx.set(0, inf)
    elif pos or neg:
        side = ctx.op("gt" if pos else "lt", x, ctx.scalar(0, x.dtype))
        ctx.set(0, ctx.op("logical_and", inf, side))
    else:
        ctx.set(0, ctx.op("logical_and", inf, ctx.op("logical_not", inf)))


# -- binary ---------------------------------------------------------------------------

BINARY = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Equal": "eq", "Greater": "gt", "Less": "lt",
    "GreaterOrEqual": "ge", "LessOrEqual": "le", "And": "logical_and", "Or": "logical_or",
    "Xor": "logical_xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
}
_COMPARE = {"Equal": "eq", "Greater": "gt", "Less": "lt", "GreaterOrEqual": "ge", "LessOrEqual": "le"}
_ARITH_FOLD = {
    "Add": (np.add, lambda a, b: a + b), "Sub": (np.subtract, lambda a, b: a - b),
    "Mul": (np.multiply, lambda a, b: a * b),
}


def _binary(ctx, node):
    ctx.set(0, ctx.op(BINARY[node.op_type], ctx.value(0), ctx.value(1)))


def _binary_fold(ctx, arrays):
    a, b = arrays
    op = ctx.node.op_type
    if op in _COMPARE:
        if F.is_symbolic(a, b):
            return [(F.as_bools(F.elementwise(F.compare(_COMPARE[op]), a, b)), DType.bool)]
        fn = {"eq": np.equal, "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal}[_COMPARE[op]]
        return [(fn(a, b), DType.bool)]
    if op in ("And", "Or", "Xor"):
        fn = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}[op]
        return [(fn(a, b), DType.bool)]
    dt = ctx.dtype(0)
    numeric, symbolic = _ARITH_FOLD[op] if op in _ARITH_FOLD else (None, None)
    if op == "Div":
        numeric = _numeric_div
        symbolic = F.trunc_div if not dt.is_floating else F.true_div
    if numeric is None:
        return None
    if F.is_symbolic(a, b):
        return [(F.as_integers(F.elementwise(symbolic, a, b)), dt)]
    with np.errstate(all="ignore"):
        return [(np.asarray(numeric(a, b)).astype(dt.numpy), dt)]


def _numeric_div(a, b):
    if np.issubdtype(np.result_type(a, b), np.integer):
        if np.any(b == 0):
            raise F.Undecided
        q = np.abs(a) // np.abs(b)
        return np.where((a >= 0) == (b >= 0), q, -q)
    return a / b


converter(*(op for op in BINARY if op not in _ARITH_FOLD and op not in _COMPARE and op not in ("And", "Or", "Xor")))(_binary)
converter(*_ARITH_FOLD, *_COMPARE, "And", "Or", "Xor", fold=_binary_fold)(_binary)


@converter("Div", fold=_binary_fold)
def div(ctx, node):
    a, b = ctx.value(0), ctx.value(1)
    if a.dtype.is_floating:
        ctx.set(0, ctx.op("div", a, b))
    else:  # integer division rounds toward zero in ONNX
        q = ctx.op("div", ctx.op("cast", a, dtype=DType.float64), ctx.op("cast", b, dtype=DType.float64))
        ctx.set(0, ctx.op("cast", q, dtype=a.dtype))


@converter("Pow")
def pow_(ctx, node):
    x, y = ctx.value(0), ctx.value(1)
    out = ctx.op("pow", x, y)
    ctx.set(0, out if out.dtype == x.dtype else ctx.op("cast", out, dtype=x.dtype))


def _mod_fold(ctx, arrays):
    a, b = arrays
    dt = ctx.dtype(0)
    if int(ctx.node.attr("fmod", 0)) or dt.is_floating:
        if F.is_symbolic(a, b):
            return None
        with np.errstate(all="ignore"):
            return [(np.fmod(a, b).astype(dt.numpy), dt)]
    if F.is_symbolic(a, b):
        return [(F.as_integers(F.elementwise(F.floor_mod, a, b)), dt)]
    if np.any(b == 0):
        return None
    return [(np.mod(a, b).astype(dt.numpy), dt)]


@converter("Mod", fold=_mod_fold)
def mod(ctx, node):
    a, b = ctx.value(0), ctx.value(1)
    fmod = int(node.attr("fmod", 0))
    ctx.set(0, ctx.op("fmod" if fmod else "remainder", a, b))


@converter("BitShift")
def bit_shift(ctx, node):
    direction = node.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.fail(f"direction={direction!r} is not 'LEFT' or 'RIGHT'")
    ctx.set(0, ctx.op("shift_left" if direction == "LEFT" else "shift_right", ctx.value(0), ctx.value(1)))


# -- variadic ---------------------------------------------------------------------------


def _variadic_fold(ctx, arrays):
    op = ctx.node.op_type
    dt = ctx.dtype(0)
    if op == "Mean":
        return None
    fn = {"Max": F.sym_max, "Min": F.sym_min, "Sum": lambda a, b: a + b}[op]
    out = arrays[0]
    for a in arrays[1:]:
        if a is None:
            continue
        if F.is_symbolic(out, a):
            out = F.as_integers(F.elementwise(fn, out, a))
        else:
            out = np.asarray({"Max": np.maximum, "Min": np.minimum, "Sum": np.add}[op](out, a))
    return [(out if out.dtype == object else out.astype(dt.numpy), dt)]


@converter("Max", "Min", "Sum", "Mean", fold=_variadic_fold)
def variadic(ctx, node):
    op = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}[node.op_type]
    values = [ctx.value(i) for i in range(len(node.inputs)) if ctx.has(i)]
    out = values[0]
    for v in values[1:]:
        out = ctx.op(op, out, v)
    if node.op_type in ("Sum", "Mean"):
        out = ctx.keep_dtype(out, values[0].dtype)
    if node.op_type == "Mean" and len(values) > 1:
        out = ctx.op("div", out, ctx.scalar(float(len(values)), out.dtype))
    elif len(values) == 1:
        out = ctx.op("copy", out)
    ctx.set(0, out)


# -- clip and where ------------------------------------------------------------------------


@converter("Clip")
def clip(ctx, node):
    x = ctx.value(0)
    if ctx.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")
    else:
        lo = ctx.known(1) if ctx.has(1) else None
        hi = ctx.known(2) if ctx.has(2) else None
        dynamic = (ctx.has(1) and lo is None) or (ctx.has(2) and hi is None)
        if dynamic:  # bounds computed at run time: maximum/minimum with tensors
            out = x
            if ctx.has(1):
                out = ctx.op("maximum", out, ctx.value(1))
            if ctx.has(2):
                out = ctx.op("minimum", out, ctx.value(2))
            ctx.set(0, out if out is not x else ctx.op("copy", x))
            return
        lo = None if lo is None else np.asarray(lo).reshape(-1)[0].item()
        hi = None if hi is None else np.asarray(hi).reshape(-1)[0].item()
    if lo is None and hi is None:
        ctx.set(0, ctx.op("copy", x))
        return
    if lo is not None and hi is not None and lo > hi:  # ONNX: everything becomes max
        ctx.set(0, ctx.op("full_like", x, value=hi))
        return
    ctx.set(0, ctx.op("clamp", x, min=lo, max=hi))


def _where_fold(ctx, arrays):
    c, a, b = arrays
    if F.is_symbolic(c):
        return None
    dt = ctx.dtype(1)
    if F.is_symbolic(a, b):
        return [(np.where(c, F.to_object(a), F.to_object(b)), dt)]
    return [(np.where(c, a, b).astype(dt.numpy), dt)]


@converter("Where", fold=_where_fold)
def where(ctx, node):
    ctx.set(0, ctx.op("where", ctx.value(0), ctx.value(1), ctx.value(2)))
