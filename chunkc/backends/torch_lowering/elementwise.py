"""Elementwise ops: unary maths and activations, arithmetic and comparisons, where, cast, clamp."""

from __future__ import annotations

from ..codegen import Rule
from ._base import call, keywords, operands, rule, torch_dtype


# -- elementwise ----------------------------------------------------------------------

_UNARY = {
    "abs": "torch.abs", "exp": "torch.exp", "log": "torch.log", "sqrt": "torch.sqrt", "rsqrt": "torch.rsqrt",
    "reciprocal": "torch.reciprocal", "sin": "torch.sin", "cos": "torch.cos", "tan": "torch.tan",
    "atan": "torch.atan", "tanh": "torch.tanh", "erf": "torch.erf", "log1p": "torch.log1p",
    "expm1": "torch.expm1", "sigmoid": "torch.sigmoid", "relu": "torch.relu", "silu": "F.silu",
    "hardsigmoid": "F.hardsigmoid", "hardswish": "F.hardswish", "mish": "F.mish", "floor": "torch.floor",
    "ceil": "torch.ceil", "round": "torch.round", "sign": "torch.sign", "isnan": "torch.isnan",
    "isinf": "torch.isinf", "logical_not": "torch.logical_not", "neg": "torch.neg",
    # registered with the ONNX importer's extra ops
    "asin": "torch.asin", "acos": "torch.acos", "asinh": "torch.asinh", "acosh": "torch.acosh",
    "atanh": "torch.atanh", "sinh": "torch.sinh", "cosh": "torch.cosh", "bitwise_not": "torch.bitwise_not",
}
for _name, _fn in _UNARY.items():
    rule(_name)(call(_fn))


@rule("gelu")
def _gelu(ctx):
    approx = ctx.attrs["approximate"]
    return f"F.gelu({ctx.arg(0)})" if approx == "none" else f"F.gelu({ctx.arg(0)}, approximate={ctx.attr('approximate')})"


@rule("leaky_relu")
def _leaky_relu(ctx):
    return f"F.leaky_relu({ctx.arg(0)}, {ctx.attr('negative_slope')})"


@rule("elu")
def _elu(ctx):
    return f"F.elu({ctx.arg(0)}, {ctx.attr('alpha')})"


@rule("softplus")
def _softplus(ctx):
    return f"F.softplus({ctx.arg(0)}, beta={ctx.attr('beta')}, threshold={ctx.attr('threshold')})"


def _operator(symbol: str) -> Rule:
    def lower(ctx):
        a, b = operands(ctx, (0, 1), ctx.out_type().dtype, inline_scalars=True)
        return f"{a} {symbol} {b}"
    return lower


def _function(fn: str) -> Rule:
    def lower(ctx):
        a, b = operands(ctx, (0, 1), ctx.out_type().dtype)
        return f"{fn}({a}, {b})"
    return lower


rule("add")(_operator("+"))
rule("sub")(_operator("-"))
rule("mul")(_operator("*"))
rule("pow")(_operator("**"))
rule("maximum")(_function("torch.maximum"))
rule("minimum")(_function("torch.minimum"))
rule("fmod")(_function("torch.fmod"))
rule("remainder")(_function("torch.remainder"))
rule("floor_divide")(_function("torch.floor_divide"))


@rule("div")
def _div(ctx):
    out = ctx.out_type().dtype
    if out.is_floating:
        return _operator("/")(ctx)
    a, b = operands(ctx, (0, 1), out)
    return f"torch.div({a}, {b}, rounding_mode='trunc')"


def _compare(symbol: str) -> Rule:
    def lower(ctx):
        ta, tb = ctx.in_type(0), ctx.in_type(1)
        a, b = ctx.arg(0), ctx.arg(1)
        if ta.dtype == tb.dtype:  # a 0-d weight of the same type may be a plain number
            if tb.rank > 0 and ctx.scalar(0) is not None:
                a = ctx.scalar(0)
            elif ta.rank > 0 and ctx.scalar(1) is not None:
                b = ctx.scalar(1)
        return f"{a} {symbol} {b}"
    return lower


for _name, _sym in (("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
    rule(_name)(_compare(_sym))
for _name in ("logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"):
    rule(_name)(call(f"torch.{_name}"))


@rule("where")
def _where(ctx):
    a, b = operands(ctx, (1, 2), ctx.out_type().dtype)
    return f"torch.where({ctx.arg(0)}, {a}, {b})"


@rule("masked_fill")
def _masked_fill(ctx):
    return f"{ctx.arg(0)}.masked_fill({ctx.arg(1)}, {ctx.attr('value')})"


@rule("cast")
def _cast(ctx):
    if ctx.in_type(0).dtype == ctx.out_type().dtype:
        return f"{ctx.arg(0)}.clone()"  # a cast always makes a fresh tensor in the IR
    return f"{ctx.arg(0)}.to({torch_dtype(ctx.out_type().dtype)})"


@rule("clamp")
def _clamp(ctx):
    return f"torch.clamp({ctx.arg(0)}{keywords(min=ctx.attr('min') if ctx.attrs['min'] is not None else None, max=ctx.attr('max') if ctx.attrs['max'] is not None else None)})"


@rule("shift_left", "shift_right")
def _shift(ctx):
    fn = "torch.bitwise_left_shift" if ctx.op == "shift_left" else "torch.bitwise_right_shift"
    a, b = operands(ctx, (0, 1), ctx.out_type().dtype)
    return f"{fn}({a}, {b})"
