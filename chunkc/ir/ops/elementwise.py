"""Elementwise ops: unary maths and activations, broadcasting binary ops,
comparisons, ``where``, ``masked_fill``, ``cast`` and ``clamp``.

Every output axis carries the matching axis of each input that is not
broadcast from size 1 (see :func:`broadcast_dims`).

The NumPy references allocate their output once and work in place on it
(``out=`` and augmented assignment), so an op's peak is its output; the few
that need a temporary declare it as ``workspace``.
"""

from __future__ import annotations

import math

import sympy

from ..dims import DimRecord
from ..dtypes import DType, dtype as to_dtype, promote
from ..elements import as_bool, as_int, broadcast_to, comparison, exact, pointwise
from ..kernel_workspace import TorchWorkspace, nbytes, promoted_operands
from ..lowering import LoweringContext, LoweringFn, TorchLowering, keywords, operands, torch_dtype
from ..registry import Forward, OpDef, REQUIRED, register
from ..sizes import ceildiv
from ..types import TensorType
from ._common import (broadcast_dims, broadcast_shape, broadcast_shapes, fail, fresh, one_of, optional_float, quiet,
                      result_dtype)
from ..layout import contiguous_strides, empty_strided, numpy_layout
from .special import erf, erf_

CARRIES = " Carries: every axis (inputs broadcast along an axis are used whole)."


def _unary_infer(name, float_only=False, out_dtype=None):
    def infer(ins, attrs):
        if float_only and not ins[0].dtype.is_floating:
            raise fail(name, f"input must be floating point, got {ins[0]}")
        return (ins[0].with_dtype(out_dtype) if out_dtype else ins[0],)
    return infer


def reads_floats(ins, attrs) -> bool:
    """A ``discontinuous`` record: the op steps where a floating-point input crosses a
    boundary (integer inputs are exact: every program computes them alike)."""
    return any(t.dtype.is_floating for t in ins)


def _bcast_dims(ins, attrs, outs) -> DimRecord:
    return (broadcast_dims(ins, outs[0]),)


def unary(name: str, fn, flops: int = 1, float_only: bool = True, attrs=None, doc: str = "",
          out_dtype: DType | None = None, check=None, workspace=None, torch: TorchLowering | None = None,
          elements=None, torch_workspace=None, saves: tuple = ("inputs",), discontinuous=False) -> OpDef:
    infer = _unary_infer(name, float_only, out_dtype)
    if check is not None:
        base = infer

        def infer(ins, attrs):  # noqa: F811 (attribute checks before the shape rule)
            check(attrs)
            return base(ins, attrs)
    return register(OpDef(
        name=name, infer=infer, dims=_bcast_dims, reference=fn, attrs=attrs or {}, workspace=workspace, torch=torch,
        keeps_layout=True, torch_workspace=torch_workspace, discontinuous=discontinuous,
        flops=lambda ins, a, outs: flops * outs[0].numel(), doc=(doc or f"{name}(x).") + CARRIES, elements=elements,
        saves=saves,
    ))


# -- lean kernels: one fresh array, then in place ----------------------------------


def _gelu(xp, x, approximate="none"):
    if approximate == "tanh":
        out = fresh(xp, xp.multiply(x, x))
        out *= x
        out *= 0.044715
        out += x
        out *= math.sqrt(2.0 / math.pi)
        xp.tanh(out, out=out)
    else:
        out = fresh(xp, xp.multiply(x, 1.0 / math.sqrt(2.0)))
        erf_(xp, out)
    out += 1.0
    out *= x
    out *= 0.5
    return out


def _sigmoid(xp, x):
    out = fresh(xp, xp.negative(x))
    with quiet(xp):
        xp.exp(out, out=out)
    out += 1.0
    xp.reciprocal(out, out=out)
    return out


def _silu(xp, x):
    out = _sigmoid(xp, x)
    out *= x
    return out


def _rsqrt(xp, x):
    out = fresh(xp, xp.sqrt(x))
    with quiet(xp):
        xp.reciprocal(out, out=out)
    return out


def _reciprocal(xp, x):
    with quiet(xp):
        return xp.reciprocal(x)


def _leaky_relu(xp, x, negative_slope=0.01):
    out = fresh(xp, xp.multiply(x, negative_slope))
    # for x >= 0 the result is x, else slope*x: the larger of the two when slope <= 1
    (xp.maximum if negative_slope <= 1 else xp.minimum)(out, x, out=out)
    return out


def _elu(xp, x, alpha=1.0):
    out = fresh(xp, xp.minimum(x, 0))
    xp.expm1(out, out=out)
    out *= alpha
    if 0 <= alpha <= 1:
        xp.maximum(out, x, out=out)  # alpha*(e^x - 1) >= x for x <= 0 when alpha <= 1
    else:
        xp.copyto(out, x, where=x > 0)  # a bool temporary (declared as workspace)
    return out


def _elu_workspace(ins, attrs, outs):
    return 0 if 0 <= attrs["alpha"] <= 1 else _bool_workspace(ins, attrs, outs)


def _softplus(xp, x, beta=1.0, threshold=20.0):
    out = fresh(xp, xp.multiply(x, beta))
    linear = out > threshold  # where beta*x > threshold the result is x (a bool temporary: workspace)
    xp.minimum(out, threshold, out=out)  # exp cannot overflow
    xp.exp(out, out=out)
    xp.log1p(out, out=out)
    out /= beta
    xp.copyto(out, x, where=linear)
    return out


def _bool_workspace(ins, attrs, outs):
    return ceildiv(outs[0].numel(), outs[0].dtype.itemsize)


def _softplus_check(attrs):
    optional_float("softplus", "beta", attrs["beta"], allow_none=False)
    optional_float("softplus", "threshold", attrs["threshold"], allow_none=False)
    if not attrs["beta"] > 0:
        raise fail("softplus", f"beta must be > 0, got {attrs['beta']}")


def _hardsigmoid(xp, x):
    out = fresh(xp, xp.add(x, 3.0))
    xp.clip(out, 0.0, 6.0, out=out)
    out /= 6.0
    return out


def _hardswish(xp, x):
    out = fresh(xp, xp.add(x, 3.0))
    xp.clip(out, 0.0, 6.0, out=out)
    out *= x
    out /= 6.0
    return out


def _mish(xp, x):
    with quiet(xp):
        out = fresh(xp, xp.exp(x))
    xp.log1p(out, out=out)
    xp.tanh(out, out=out)
    out *= x
    return out


def _relu(xp, x):
    return xp.maximum(x, x.dtype.type(0))


def _log_like(fn):
    def ref(xp, x):
        with quiet(xp):
            return fn(xp, x)
    return ref


unary("neg", lambda xp, x: xp.negative(x), float_only=False, doc="neg(x) = -x.", saves=(), torch="torch.neg({0})",
      elements=pointwise(lambda x: -x))
unary("abs", lambda xp, x: xp.abs(x), float_only=False, torch="torch.abs({0})")
unary("exp", _log_like(lambda xp, x: xp.exp(x)), flops=4, saves=("outputs",), torch="torch.exp({0})")
unary("log", _log_like(lambda xp, x: xp.log(x)), flops=4, torch="torch.log({0})")
unary("sqrt", _log_like(lambda xp, x: xp.sqrt(x)), flops=2, saves=("outputs",), torch="torch.sqrt({0})")
unary("rsqrt", _rsqrt, flops=3, doc="rsqrt(x) = 1/sqrt(x).", saves=("outputs",), torch="torch.rsqrt({0})")
unary("reciprocal", _reciprocal, doc="reciprocal(x) = 1/x.", saves=("outputs",), torch="torch.reciprocal({0})")
unary("sin", lambda xp, x: xp.sin(x), flops=4, torch="torch.sin({0})")
unary("cos", lambda xp, x: xp.cos(x), flops=4, torch="torch.cos({0})")
unary("tan", lambda xp, x: xp.tan(x), flops=4, torch="torch.tan({0})")
unary("atan", lambda xp, x: xp.arctan(x), flops=4, torch="torch.atan({0})")
unary("tanh", lambda xp, x: xp.tanh(x), flops=4, saves=("outputs",), torch="torch.tanh({0})")
unary("erf", lambda xp, x: erf(xp, x), flops=8, torch="torch.erf({0})")
unary("log1p", _log_like(lambda xp, x: xp.log1p(x)), flops=4, doc="log1p(x) = log(1 + x), accurate near 0.",
      torch="torch.log1p({0})")
unary("expm1", _log_like(lambda xp, x: xp.expm1(x)), flops=4, doc="expm1(x) = exp(x) - 1, accurate near 0.",
      torch="torch.expm1({0})")
unary("sigmoid", _sigmoid, flops=4, saves=("outputs",), torch="torch.sigmoid({0})")
unary("relu", _relu, float_only=False, saves=("outputs",), torch="torch.relu({0})")


def _gelu_torch(ctx: LoweringContext) -> str:
    if ctx.attrs["approximate"] == "none":
        return f"F.gelu({ctx.arg(0)})"
    return f"F.gelu({ctx.arg(0)}, approximate={ctx.attr('approximate')})"


unary("gelu", _gelu, flops=8, attrs={"approximate": "none"},
      check=lambda a: one_of("gelu", "approximate", a["approximate"], ("none", "tanh")),
      doc="gelu(x, approximate='none'|'tanh'): x*Phi(x); 'tanh' uses the tanh formula.", torch=_gelu_torch)
unary("silu", _silu, flops=5, doc="silu(x) = x*sigmoid(x).", torch="F.silu({0})")
unary("leaky_relu", _leaky_relu, flops=2, attrs={"negative_slope": 0.01},
      check=lambda a: optional_float("leaky_relu", "negative_slope", a["negative_slope"], allow_none=False),
      doc="leaky_relu(x, negative_slope=0.01): x if x >= 0 else slope*x.", torch="F.leaky_relu({0}, {negative_slope})")
unary("elu", _elu, flops=5, attrs={"alpha": 1.0}, workspace=_elu_workspace,
      check=lambda a: optional_float("elu", "alpha", a["alpha"], allow_none=False),
      doc="elu(x, alpha=1.0): x if x > 0 else alpha*(exp(x) - 1).", torch="F.elu({0}, {alpha})")
unary("softplus", _softplus, flops=6, attrs={"beta": 1.0, "threshold": 20.0}, check=_softplus_check,
      workspace=_bool_workspace, torch="F.softplus({0}, beta={beta}, threshold={threshold})",
      doc="softplus(x, beta=1, threshold=20): log(1 + exp(beta*x))/beta; x where beta*x > threshold.")
unary("hardsigmoid", _hardsigmoid, flops=3, doc="hardsigmoid(x) = clip(x + 3, 0, 6)/6.", torch="F.hardsigmoid({0})")
unary("hardswish", _hardswish, flops=4, doc="hardswish(x) = x*clip(x + 3, 0, 6)/6.", torch="F.hardswish({0})")
unary("mish", _mish, flops=10, doc="mish(x) = x*tanh(log(1 + exp(x))).", torch="F.mish({0})")
unary("floor", lambda xp, x: xp.floor(x), torch="torch.floor({0})", discontinuous=True)
unary("ceil", lambda xp, x: xp.ceil(x), torch="torch.ceil({0})", discontinuous=True)
unary("round", lambda xp, x: xp.rint(x), discontinuous=True,
      doc="round(x): to the nearest integer, halves to even (as PyTorch).",
      torch="torch.round({0})")
unary("sign", lambda xp, x: xp.sign(x), float_only=False, torch="torch.sign({0})", discontinuous=reads_floats)
unary("isnan", lambda xp, x: xp.isnan(x), float_only=False, out_dtype=DType.bool, doc="isnan(x) -> bool.",
      torch="torch.isnan({0})")
unary("isinf", lambda xp, x: xp.isinf(x), float_only=False, out_dtype=DType.bool, doc="isinf(x) -> bool.",
      torch="torch.isinf({0})",  # ATen: abs(x) == inf, a copy of x on every device
      torch_workspace=TorchWorkspace(aten=lambda ins, a, outs: nbytes(ins[0]) if ins[0].dtype.is_floating else 0))
unary("logical_not", lambda xp, x: xp.logical_not(x), float_only=False, out_dtype=DType.bool,
      doc="logical_not(x) -> bool.", torch="torch.logical_not({0})",
      elements=pointwise(sympy.Not, kind="bool"))


# -- binary -------------------------------------------------------------------------


def _binary_infer(name, bool_out=False, float_only=False):
    def infer(ins, attrs):
        shape = broadcast_shapes(name, ins)
        if bool_out:
            return (TensorType(DType.bool, shape),)
        dt = result_dtype(ins)
        if float_only and not dt.is_floating:
            raise fail(name, f"inputs must promote to a floating type, got {ins[0]} and {ins[1]}")
        return (TensorType(dt, shape),)
    return infer


def _promoted(xp, a, b):
    return promote(to_dtype(a.dtype), to_dtype(b.dtype)).numpy


def _arith(ufunc: str):
    """``ufunc(a, b)`` computed in chunkc's promoted dtype (PyTorch's rule, not NumPy's)."""
    def ref(xp, a, b):
        f = getattr(xp, ufunc)
        dt = _promoted(xp, a, b)
        with quiet(xp):
            if a.dtype == dt and b.dtype == dt:
                return f(a, b)
            return f(a, b, dtype=dt)
    return ref


def _div(xp, a, b):
    dt = _promoted(xp, a, b)
    with quiet(xp):
        if dt.kind == "f":
            return xp.true_divide(a, b) if a.dtype == dt and b.dtype == dt else xp.true_divide(a, b, dtype=dt)
        return xp.trunc(xp.true_divide(a, b)).astype(dt)  # integers: truncate toward zero (ONNX Div)


def binary(name: str, fn, bool_out: bool = False, flops: int = 1, doc: str = "", float_only: bool = False,
           torch: TorchLowering | None = None, elements=None, lowering_converts: bool = True,
           saves: tuple = ("inputs",), canonicalize=None, discontinuous=False) -> OpDef:
    """``lowering_converts``: the PyTorch lowering converts the operands to the result's dtype
    (:func:`operands`); else it passes them as they are (comparisons, logical ops)."""
    return register(OpDef(
        name=name, infer=_binary_infer(name, bool_out, float_only), dims=_bcast_dims, reference=fn, num_inputs=(2, 2),
        keeps_layout=True,
        flops=lambda ins, a, outs: flops * outs[0].numel(), doc=(doc or f"{name}(a, b).") + CARRIES, torch=torch,
        elements=elements, saves=saves, canonicalize=canonicalize, discontinuous=discontinuous,
        torch_workspace=promoted_operands((0, 1), casts_in_lowering=lowering_converts),
    ))


def _cmp(ufunc: str):
    return lambda xp, a, b: getattr(xp, ufunc)(a, b)


# PyTorch lowerings of the binary ops: operands converted where PyTorch would promote
# differently from chunkc (a 0-d tensor of a wider type); a 0-d weight written as a number.


def infix(symbol: str) -> LoweringFn:
    """``a <symbol> b`` in the result's dtype."""
    def lower(ctx: LoweringContext) -> str:
        a, b = operands(ctx, (0, 1), ctx.out_type().dtype, inline_scalars=True)
        return f"{a} {symbol} {b}"
    return lower


def promoted_call(fn: str) -> LoweringFn:
    """``fn(a, b)`` in the result's dtype."""
    def lower(ctx: LoweringContext) -> str:
        a, b = operands(ctx, (0, 1), ctx.out_type().dtype)
        return f"{fn}({a}, {b})"
    return lower


def _div_torch(ctx: LoweringContext) -> str:
    out = ctx.out_type().dtype
    if out.is_floating:
        return infix("/")(ctx)
    a, b = operands(ctx, (0, 1), out)
    return f"torch.div({a}, {b}, rounding_mode='trunc')"


def _compare(symbol: str) -> LoweringFn:
    """``a <symbol> b``; a 0-d weight of the other operand's dtype may be a plain number."""
    def lower(ctx: LoweringContext) -> str:
        ta, tb = ctx.in_type(0), ctx.in_type(1)
        a, b = ctx.arg(0), ctx.arg(1)
        if ta.dtype == tb.dtype:
            if tb.rank > 0 and ctx.scalar(0) is not None:
                a = ctx.scalar(0)
            elif ta.rank > 0 and ctx.scalar(1) is not None:
                b = ctx.scalar(1)
        return f"{a} {symbol} {b}"
    return lower


def forward_to(node, value) -> Forward | None:
    """``Forward(value)`` when ``value`` can stand for the node's output: same dtype and shape
    (nothing to cast or broadcast), and not a graph input or constant returned as a graph
    output (the caller would get that tensor itself back)."""
    out = node.outputs[0]
    if value.type != out.type or (value.producer is None and out in node.graph.outputs):
        return None
    return Forward(value)


def _neutral(element, operands: tuple[int, ...]):
    """A rule: ``x + 0``, ``x - 0``, ``x and True``, ``x or False`` is ``x``: the other operand of
    one proven to be the neutral ``element`` everywhere, at a position in ``operands``.  ViT's
    eager-attention graph adds a [1, 1, L, L] mask that is all zeros (transformers' mask
    without padding, materialized by torch.export) to every layer's scores, where eager adds
    none.  (``-0.0 + 0.0`` is ``+0.0``: an equal value.)"""
    def rule(node, analysis):
        for i in operands:
            found = forward_to(node, node.inputs[1 - i]) if analysis.of(node.inputs[i]) == element else None
            if found is not None:
                return found
        return None
    return rule


binary("add", _arith("add"), saves=(), torch=infix("+"), elements=pointwise(lambda a, b: a + b),
       canonicalize=_neutral(0, (1, 0)),
       doc="add(a, b); canonicalizes to one operand when the other is proven zero and it has the output's type.")
binary("sub", _arith("subtract"), saves=(), torch=infix("-"), elements=pointwise(lambda a, b: a - b),
       canonicalize=_neutral(0, (1,)),
       doc="sub(a, b); canonicalizes to a when b is proven zero and a has the output's type.")
binary("mul", _arith("multiply"), saves=("cross",), torch=infix("*"), elements=pointwise(lambda a, b: a * b))
binary("div", _div, doc="div(a, b): true division; integers truncate toward zero.", saves=("cross", 1), torch=_div_torch)
binary("pow", _arith("power"), flops=4, torch=infix("**"))
binary("maximum", _arith("maximum"), doc="maximum(a, b): elementwise, NaN propagates.",
       torch=promoted_call("torch.maximum"))
binary("minimum", _arith("minimum"), doc="minimum(a, b): elementwise, NaN propagates.",
       torch=promoted_call("torch.minimum"))
binary("fmod", _arith("fmod"), discontinuous=reads_floats,
       doc="fmod(a, b): remainder with the sign of a (C fmod, torch.fmod).",
       torch=promoted_call("torch.fmod"))
binary("remainder", _arith("remainder"), discontinuous=reads_floats,
       doc="remainder(a, b): remainder with the sign of b (Python %).",
       torch=promoted_call("torch.remainder"))
binary("floor_divide", _arith("floor_divide"), discontinuous=reads_floats, doc="floor_divide(a, b) = floor(a / b).",
       torch=promoted_call("torch.floor_divide"))
binary("atan2", _arith("arctan2"), flops=4, float_only=True, torch=promoted_call("torch.atan2"),
       doc="atan2(a, b): the angle of the point (b, a), in [-pi, pi]; inputs promote to a floating type.")
for _name, _ufunc, _symbol, _rel in (("eq", "equal", "==", sympy.Eq), ("ne", "not_equal", "!=", sympy.Ne),
                                     ("lt", "less", "<", sympy.Lt), ("le", "less_equal", "<=", sympy.Le),
                                     ("gt", "greater", ">", sympy.Gt), ("ge", "greater_equal", ">=", sympy.Ge)):
    binary(_name, _cmp(_ufunc), bool_out=True, doc=f"{_name}(a, b) -> bool.", torch=_compare(_symbol),
           elements=comparison(_rel), lowering_converts=False, discontinuous=reads_floats)
binary("logical_and", _cmp("logical_and"), bool_out=True,
       doc="logical_and(a, b) -> bool; canonicalizes to one operand when the other is proven true and it is bool "
           "of the output's shape.",
       torch="torch.logical_and({0}, {1})", elements=pointwise(sympy.And, kind="bool"), lowering_converts=False,
       canonicalize=_neutral(sympy.true, (1, 0)))
binary("logical_or", _cmp("logical_or"), bool_out=True,
       doc="logical_or(a, b) -> bool; canonicalizes to one operand when the other is proven false and it is bool "
           "of the output's shape.",
       torch="torch.logical_or({0}, {1})", elements=pointwise(sympy.Or, kind="bool"), lowering_converts=False,
       canonicalize=_neutral(sympy.false, (1, 0)))
binary("logical_xor", _cmp("logical_xor"), bool_out=True, doc="logical_xor(a, b) -> bool.",
       torch="torch.logical_xor({0}, {1})", lowering_converts=False)


# -- where, masked_fill, cast, clamp ------------------------------------------------------


def _where_infer(ins, attrs):
    cond, a, b = ins
    if cond.dtype != DType.bool:
        raise fail("where", f"condition (input 0) must be bool, got {cond}")
    return (TensorType(result_dtype([a, b]), broadcast_shapes("where", ins)),)


def _select(xp, shape, dtype, cond, a, b, like_operands: bool = True):
    """``b``, overwritten by ``a`` where ``cond`` holds, cast into one fresh array laid out as
    NumPy lays out an elementwise result (chunkc/ir/layout.py), or in C order: no other
    allocation (``xp.where`` buffers up to 8192 elements of each operand it broadcasts or
    casts, and ``astype`` copies a whole operand)."""
    ops = [o for o in (cond, a, b) if hasattr(o, "strides")] if like_operands else []
    strides = numpy_layout(shape, [(o.shape, [s // o.itemsize for s in o.strides]) for o in ops]) if ops \
        else contiguous_strides(shape)
    out = empty_strided(xp, shape, strides, dtype)
    with quiet(xp):
        xp.copyto(out, b, casting="unsafe")
        xp.copyto(out, a, casting="unsafe", where=cond)
    return out


def _where_ref(xp, cond, a, b):
    return _select(xp, broadcast_shape(cond.shape, a.shape, b.shape), _promoted(xp, a, b), cond, a, b)


def _where_torch(ctx: LoweringContext) -> str:
    a, b = operands(ctx, (1, 2), ctx.out_type().dtype)
    return f"torch.where({ctx.arg(0)}, {a}, {b})"


def _where_elements(fs, attrs, ins, outs):
    # selection is exact for any dtype; promotion of bool/int branches to a wider int is too
    if outs[0].dtype.is_floating and any(not t.dtype.is_floating for t in ins[1:]):
        return None
    c, a, b = (broadcast_to(f, t, outs[0]) for f, t in zip(fs, ins))
    return sympy.Piecewise((a, as_bool(c, ins[0])), (b, True))


def _where_canonicalize(node, analysis):
    """The branch a condition proven constant always takes.  transformers' bidirectional mask
    without padding is all true under torch.export (eager passes no mask at all): T5's
    relative position bias then went through a [1, H, L, L] select per layer that eager
    never runs."""
    f = analysis.of(node.inputs[0])
    if f not in (sympy.true, sympy.false):
        return None
    return forward_to(node, node.inputs[1] if f == sympy.true else node.inputs[2])


register(OpDef(name="where", infer=_where_infer, dims=_bcast_dims, reference=_where_ref, num_inputs=(3, 3),
               saves=(0,), torch=_where_torch, elements=_where_elements, keeps_layout=True,
               torch_workspace=promoted_operands((1, 2), aten_casts=True), canonicalize=_where_canonicalize,
               doc="where(cond, a, b): a where cond holds, else b; all three broadcast; canonicalizes to a (b) "
                   "when cond is proven always true (false) and that branch has the output's type." + CARRIES))


def _masked_fill_infer(ins, attrs):
    x, mask = ins
    if mask.dtype != DType.bool:
        raise fail("masked_fill", f"mask (input 1) must be bool, got {mask}")
    optional_float("masked_fill", "value", attrs["value"], allow_none=False)
    shape = broadcast_shapes("masked_fill", ins)
    if len(shape) != x.rank or any(a is not b and a != b for a, b in zip(shape, x.shape)):
        raise fail("masked_fill", f"mask {mask} must broadcast to the input's shape {x}")
    return (x,)


def _masked_fill_ref(xp, x, mask, value):
    with quiet(xp):
        fill = xp.asarray(value).astype(x.dtype)
    return _select(xp, x.shape, x.dtype, mask, fill, x, like_operands=False)  # C order, as PyTorch's masked_fill


register(OpDef(name="masked_fill", infer=_masked_fill_infer, dims=_bcast_dims, reference=_masked_fill_ref,
               num_inputs=(2, 2), attrs={"value": REQUIRED}, saves=(1,), torch="{0}.masked_fill({1}, {value})",
               doc="masked_fill(x, mask, value=v): v where mask holds, else x." + CARRIES))


def _cast_infer(ins, attrs):
    try:
        dt = to_dtype(attrs["dtype"])
    except TypeError as exc:
        raise fail("cast", str(exc)) from None
    return (ins[0].with_dtype(dt),)


def _cast_ref(xp, x, dtype):
    with quiet(xp):
        return x.astype(to_dtype(dtype).numpy)


def _cast_torch(ctx: LoweringContext) -> str:
    if ctx.in_type(0).dtype == ctx.out_type().dtype:
        return f"{ctx.arg(0)}.clone()"  # a cast always makes a fresh tensor in the IR
    return f"{ctx.arg(0)}.to({torch_dtype(ctx.out_type().dtype)})"


def _cast_elements(fs, attrs, ins, outs):
    src, dst = ins[0].dtype, outs[0].dtype
    if src == dst:
        return fs[0]
    if dst == DType.bool:
        return as_bool(fs[0], ins[0]) if exact(ins[0]) else None
    return as_int(fs[0], ins[0]) if exact(outs[0]) and exact(ins[0]) else None


def _cast_steps(ins, attrs) -> bool:
    """A float cast to integers or bool steps (truncation, nonzero); so does one to a float with
    fewer mantissa bits: where its input moves by one ulp of its own type, the output may jump by
    a whole ulp of the narrower type, which a later subtraction can leave far above float32's
    tolerance (fuzz case 8000051: f32 -> f16 -> f32, then a sum that cancels)."""
    src, dst = ins[0].dtype, to_dtype(attrs["dtype"])
    if not src.is_floating:
        return False
    return not dst.is_floating or dst.mantissa_bits < src.mantissa_bits


register(OpDef(name="cast", infer=_cast_infer, dims=_bcast_dims, reference=_cast_ref, attrs={"dtype": REQUIRED},
               saves=(), torch=_cast_torch, discontinuous=_cast_steps, flops=lambda *a: 0, elements=_cast_elements,
               keeps_layout=True,
               doc="cast(x, dtype=f16): convert the element type (a fresh array)." + CARRIES))


def _clamp_ref(xp, x, min=None, max=None):
    t = x.dtype.type
    return xp.clip(x, None if min is None else t(min), None if max is None else t(max))


def _clamp_infer(ins, attrs):
    if attrs["min"] is None and attrs["max"] is None:
        raise fail("clamp", "give min, max or both")
    optional_float("clamp", "min", attrs["min"])
    optional_float("clamp", "max", attrs["max"])
    return (ins[0],)


def _clamp_torch(ctx: LoweringContext) -> str:
    bounds = {k: ctx.attr(k) if ctx.attrs[k] is not None else None for k in ("min", "max")}
    return f"torch.clamp({ctx.arg(0)}{keywords(**bounds)})"


register(OpDef(name="clamp", infer=_clamp_infer, dims=_bcast_dims, reference=_clamp_ref, torch=_clamp_torch,
               keeps_layout=True,
               attrs={"min": None, "max": None}, doc="clamp(x, min=, max=): clip to a range." + CARRIES))
