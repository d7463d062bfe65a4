"""Lowering table of the PyTorch backend: one rule per op, keyed by op name.

A rule gets a :class:`~chunkc.backends.codegen.NodeContext` and returns the
expression that computes the node: its value when the node has one output, a
sequence of values when it has several.
Rules use the leanest PyTorch call for each op (``F.linear``, ``F.softmax``,
``F.layer_norm``, ``F.scaled_dot_product_attention``...), so that the unchunked
program allocates what eager PyTorch allocates.

Where PyTorch's type promotion or result dtype differs from chunkc's (a 0-d
tensor of a wider type, an integer sum), the rule converts so that the result
has the IR's dtype.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from ..ir.dtypes import DType
from .codegen import NodeContext, Rule
from .pyexpr import tuple_literal
from .torch_runtime import parse_target, torch_op

RULES: dict[str, Rule] = {}


def rule(*names: str):
    def deco(fn: Rule) -> Rule:
        for name in names:
            if name in RULES:
                raise ValueError(f"torch lowering for {name} defined twice")
            RULES[name] = fn
        return fn
    return deco


def torch_dtype(dt: DType) -> str:
    return f"torch.{dt.name}"


# -- helpers ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _torch_promotes_to(dtypes_and_ranks: tuple) -> DType:
    """The dtype PyTorch computes a promoting op in (0-d tensors weigh less than others)."""
    dt, rank = None, 0
    for name, r in dtypes_and_ranks:
        t = torch.empty((0,) * r, dtype=getattr(torch, name))
        if dt is None:
            dt, rank = t.dtype, r
            continue
        dt = torch.result_type(torch.empty((0,) * rank, dtype=dt), t)
        rank = max(rank, r)
    return DType[str(dt).removeprefix("torch.")]


def operands(ctx: NodeContext, indices, out: DType, inline_scalars: bool = False, strict: bool = False) -> list[str]:
    """Argument text for a promoting op, converted so that the op computes in ``out``.

    ``strict``: the PyTorch call wants every operand in ``out`` (matmul, linear).
    With ``inline_scalars``, a 0-d weight of the same dtype as the other operand
    and the result is written as a Python number (``x * 0.125``).
    """
    types = [ctx.in_type(i) for i in indices]
    key = tuple((t.dtype.name, t.rank) for t in types)
    cast_needed = strict or _torch_promotes_to(key) != out
    texts = []
    for i, t in zip(indices, types):
        others = [u for j, u in zip(indices, types) if j != i]
        if inline_scalars and t.dtype == out and all(u.dtype == out and u.rank > 0 for u in others):
            lit = ctx.scalar(i)
            if lit is not None:
                texts.append(lit)
                continue
        text = ctx.arg(i)
        if cast_needed and t.dtype != out:
            text = f"{text}.to({torch_dtype(out)})"
        texts.append(text)
    return texts


def _call(fn: str) -> Rule:
    return lambda ctx: f"{fn}({', '.join(ctx.args)})"


def _dims(ctx: NodeContext, axes) -> tuple[int, ...]:
    rank = ctx.in_type(0).rank
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted({a % rank for a in axes})) if rank else ()


def _kw(**kwargs: str | None) -> str:
    return "".join(f", {k}={v}" for k, v in kwargs.items() if v is not None)


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
    rule(_name)(_call(_fn))


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
    rule(_name)(_call(f"torch.{_name}"))


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
    return f"torch.clamp({ctx.arg(0)}{_kw(min=ctx.attr('min') if ctx.attrs['min'] is not None else None, max=ctx.attr('max') if ctx.attrs['max'] is not None else None)})"


# -- contractions ---------------------------------------------------------------------


def _contraction(fn: str, indices=None) -> Rule:
    def lower(ctx):
        idx = tuple(range(ctx.num_inputs())) if indices is None else indices
        args = operands(ctx, idx, ctx.out_type().dtype, strict=True)
        return f"{fn}({', '.join(args)})"
    return lower


rule("matmul")(_contraction("torch.matmul"))
rule("bmm")(_contraction("torch.bmm"))
rule("linear")(_contraction("F.linear"))


@rule("addmm")
def _addmm(ctx):
    args = operands(ctx, (0, 1, 2), ctx.out_type().dtype, strict=True)
    beta = ctx.attr("beta") if ctx.attrs["beta"] != 1 else None
    alpha = ctx.attr("alpha") if ctx.attrs["alpha"] != 1 else None
    return f"torch.addmm({', '.join(args)}{_kw(beta=beta, alpha=alpha)})"


@rule("einsum")
def _einsum(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True)
    return f"torch.einsum({ctx.attr('equation')}, {', '.join(args)})"


# -- reductions ---------------------------------------------------------------------------


def _reduction(fn: str, fix_dtype: bool = False) -> Rule:
    def lower(ctx):
        x, out = ctx.arg(0), ctx.out_type().dtype
        dims = _dims(ctx, ctx.attrs["axes"])
        if not dims:  # nothing to reduce: a fresh copy (torch would reduce every axis)
            return f"{x}.to({torch_dtype(out)}, copy=True)"
        extra = ""
        if "correction" in ctx.attrs:
            extra = f", correction={ctx.attr('correction')}"
        text = f"{fn}({x}, dim={tuple_literal([str(d) for d in dims])}{extra}, keepdim={ctx.attr('keepdim')})"
        if fix_dtype and not ctx.in_type(0).dtype.is_floating:
            text += f".to({torch_dtype(out)})"  # torch sums integers and bools as int64
        return text
    return lower


rule("sum")(_reduction("torch.sum", fix_dtype=True))
rule("mean")(_reduction("torch.mean"))
rule("amax")(_reduction("torch.amax"))
rule("amin")(_reduction("torch.amin"))
rule("any")(_reduction("torch.any"))
rule("all")(_reduction("torch.all"))
rule("var")(_reduction("torch.var"))


@rule("prod")
def _prod(ctx):
    x, out = ctx.arg(0), ctx.out_type().dtype
    dims = _dims(ctx, ctx.attrs["axes"])
    fix = "" if ctx.in_type(0).dtype.is_floating else f".to({torch_dtype(out)})"
    if not dims:
        return f"{x}.to({torch_dtype(out)}, copy=True)"
    if len(dims) == 1:
        return f"torch.prod({x}, dim={dims[0]}, keepdim={ctx.attr('keepdim')}){fix}"
    return f"rt.prod({x}, {tuple_literal([str(d) for d in dims])}, {ctx.attr('keepdim')}){fix}"


@rule("argmax", "argmin")
def _arg(ctx):
    return f"torch.{ctx.op}({ctx.arg(0)}, dim={ctx.attr('axis')}, keepdim={ctx.attr('keepdim')})"


@rule("softmax", "log_softmax")
def _softmax(ctx):
    return f"F.{ctx.op}({ctx.arg(0)}, dim={ctx.attr('axis')})"


@rule("cumsum")
def _cumsum(ctx):
    dt = ctx.in_type(0).dtype
    fix = "" if dt.is_floating else f", dtype={torch_dtype(ctx.out_type().dtype)}"
    return f"torch.cumsum({ctx.arg(0)}, dim={ctx.attr('axis')}{fix})"


# -- shapes ------------------------------------------------------------------------------


@rule("reshape")
def _reshape(ctx):
    return f"{ctx.arg(0)}.reshape({ctx.out_shape(0)})"


@rule("expand")
def _expand(ctx):
    return f"{ctx.arg(0)}.expand({ctx.out_shape(0)})"


@rule("permute")
def _permute(ctx):
    return f"{ctx.arg(0)}.permute({ctx.attr('dims')})"


@rule("squeeze")
def _squeeze(ctx):
    t, axes = ctx.in_type(0), ctx.attrs["axes"]
    candidates = range(t.rank) if axes is None else _dims(ctx, axes)
    dims = [k for k in candidates if isinstance(t.shape[k], int) and t.shape[k] == 1]
    if not dims:
        return f"{ctx.arg(0)}.view_as({ctx.arg(0)})"  # nothing to drop: a view, as in the IR
    return f"{ctx.arg(0)}.squeeze({tuple_literal([str(d) for d in dims])})"


@rule("unsqueeze")
def _unsqueeze(ctx):
    return f"{ctx.arg(0)}.unsqueeze({ctx.attr('axis')})"


def _bound(ctx: NodeContext, value) -> str:
    return "" if value is None else ctx.lit(value)


@rule("slice")
def _slice(ctx):
    t = ctx.in_type(0)
    axis = ctx.attrs["axis"] % t.rank
    step = ctx.attrs["step"]
    index = f"{_bound(ctx, ctx.attrs['start'])}:{_bound(ctx, ctx.attrs['end'])}" + (f":{step}" if step != 1 else "")
    return f"{ctx.arg(0)}[{':, ' * axis}{index}]"


@rule("contiguous")
def _contiguous(ctx):
    return f"{ctx.arg(0)}.contiguous()"


@rule("copy")
def _copy(ctx):
    return f"{ctx.arg(0)}.clone(memory_format=torch.contiguous_format)"


# -- normalization ------------------------------------------------------------------------


def _optional(args: list[str], n: int) -> list[str]:
    return args + ["None"] * (n - len(args))


@rule("layer_norm", "rms_norm")
def _layer_norm(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True)
    k = ctx.attrs["num_axes"]
    shape = tuple_literal(ctx.shape(ctx.node.inputs[0])[-k:])
    if ctx.op == "layer_norm":
        x, w, b = _optional(args, 3)
        return f"F.layer_norm({x}, {shape}, {w}, {b}, eps={ctx.attr('eps')})"
    x, w = _optional(args, 2)
    return f"F.rms_norm({x}, {shape}, {w}, eps={ctx.attr('eps')})"


@rule("group_norm")
def _group_norm(ctx):
    x, w, b = _optional(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 3)
    return f"F.group_norm({x}, {ctx.attr('num_groups')}, {w}, {b}, eps={ctx.attr('eps')})"


@rule("batch_norm")
def _batch_norm(ctx):
    x, mean, var, w, b = _optional(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 5)
    return f"F.batch_norm({x}, {mean}, {var}, {w}, {b}, training=False, eps={ctx.attr('eps')})"


# -- joining, splitting, indexing ---------------------------------------------------------


@rule("concat")
def _concat(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype)
    return f"torch.cat([{', '.join(args)}], dim={ctx.attr('axis')})"


@rule("stack")
def _stack(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype)
    return f"torch.stack([{', '.join(args)}], dim={ctx.attr('axis')})"


@rule("split")
def _split(ctx):
    sizes = ", ".join(ctx.size(s) for s in ctx.attrs["sizes"])
    call = f"torch.split({ctx.arg(0)}, [{sizes}], dim={ctx.attr('axis')})"
    return call if len(ctx.node.outputs) > 1 else f"{call}[0]"


@rule("take")
def _take(ctx):
    axis = ctx.attrs["axis"] % ctx.in_type(0).rank
    return f"{ctx.arg(0)}[{':, ' * axis}{ctx.arg(1)}]"


@rule("gather")
def _gather(ctx):
    index = ctx.arg(1) if ctx.in_type(1).dtype == DType.int64 else f"{ctx.arg(1)}.to(torch.int64)"
    return f"torch.gather({ctx.arg(0)}, {ctx.attr('axis')}, {index})"


@rule("embedding")
def _embedding(ctx):
    return f"F.embedding({ctx.arg(1)}, {ctx.arg(0)})"


@rule("gather_nd")
def _gather_nd(ctx):
    return f"rt.gather_nd({ctx.arg(0)}, {ctx.arg(1)}, {ctx.attr('batch_dims')})"


@rule("scatter_elements")
def _scatter_elements(ctx):
    return f"rt.scatter_elements({', '.join(ctx.args)}, {ctx.attr('axis')}, {ctx.attr('reduction')})"


@rule("scatter_nd")
def _scatter_nd(ctx):
    return f"rt.scatter_nd({', '.join(ctx.args)}, {ctx.attr('reduction')})"


@rule("shift_left", "shift_right")
def _shift(ctx):
    fn = "torch.bitwise_left_shift" if ctx.op == "shift_left" else "torch.bitwise_right_shift"
    a, b = operands(ctx, (0, 1), ctx.out_type().dtype)
    return f"{fn}({a}, {b})"


@rule("size_tensor")
def _size_tensor(ctx):
    values = tuple_literal([ctx.size(v) for v in ctx.attrs["values"]]) if ctx.attrs["values"] else "()"
    dtype = torch_dtype(ctx.out_type().dtype)
    return f"torch.tensor({values}, dtype={dtype}, device={ctx.device()}).reshape({ctx.out_shape(0)})"


# -- windows: convolutions -----------------------------------------------------------------


def _window_attrs(ctx, nsp: int):
    a = ctx.attrs
    stride = tuple(a.get("stride") or (1,) * nsp)
    dilation = tuple(a.get("dilation") or (1,) * nsp)
    padding = tuple(tuple(p) for p in (a.get("padding") or ((0, 0),) * nsp))
    return stride, dilation, padding


def _symmetric(padding) -> bool:
    return all(b == e for b, e in padding)


def pad_spec(ctx, pairs) -> str:
    """``F.pad``'s flat list (last axis first) for (begin, end) pairs of the trailing axes."""
    flat = []
    for b, e in reversed(pairs):
        flat += [ctx.size(b), ctx.size(e)]
    return tuple_literal(flat)


@rule("conv")
def _conv(ctx):
    nsp = ctx.in_type(0).rank - 2
    stride, dilation, padding = _window_attrs(ctx, nsp)
    args = _optional(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 3)
    x = args[0]
    if _symmetric(padding):
        pad = ctx.lit(tuple(b for b, _ in padding))
    else:  # PyTorch pads both sides alike: pad first, then convolve without padding
        x = f"F.pad({x}, {pad_spec(ctx, padding)})"
        pad = ctx.lit((0,) * nsp)
    return (f"F.conv{nsp}d({x}, {args[1]}, {args[2]}, stride={ctx.lit(stride)}, padding={pad}, "
            f"dilation={ctx.lit(dilation)}, groups={ctx.attr('groups')})")


@rule("conv_transpose")
def _conv_transpose(ctx):
    nsp = ctx.in_type(0).rank - 2
    stride, dilation, padding = _window_attrs(ctx, nsp)
    out_pad = tuple(ctx.attrs.get("output_padding") or (0,) * nsp)
    x, w, b = _optional(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 3)
    if _symmetric(padding):
        return (f"F.conv_transpose{nsp}d({x}, {w}, {b}, stride={ctx.lit(stride)}, "
                f"padding={ctx.lit(tuple(p for p, _ in padding))}, output_padding={ctx.lit(out_pad)}, "
                f"groups={ctx.attr('groups')}, dilation={ctx.lit(dilation)})")
    return (f"rt.conv_transpose({x}, {w}, {b}, {ctx.lit(stride)}, {ctx.lit(padding)}, {ctx.lit(out_pad)}, "
            f"{ctx.attr('groups')}, {ctx.lit(dilation)})")


# -- windows: pooling, resizing, padding ------------------------------------------------------


@rule("max_pool", "avg_pool")
def _pool(ctx):
    x, a = ctx.in_type(0), ctx.attrs
    nsp = len(a["kernel"])
    stride = tuple(a["stride"] or a["kernel"])
    padding = tuple(tuple(p) for p in (a["padding"] or ((0, 0),) * nsp))
    lead = x.rank - nsp
    if lead in (1, 2) and _symmetric(padding):
        pad = ctx.lit(tuple(b for b, _ in padding))
        common = f"{ctx.arg(0)}, {ctx.attr('kernel')}, stride={ctx.lit(stride)}, padding={pad}"
        if ctx.op == "max_pool":
            dilation = tuple(a["dilation"] or (1,) * nsp)
            return f"F.max_pool{nsp}d({common}, dilation={ctx.lit(dilation)}, ceil_mode={ctx.attr('ceil_mode')})"
        return (f"F.avg_pool{nsp}d({common}, ceil_mode={ctx.attr('ceil_mode')}, "
                f"count_include_pad={ctx.attr('count_include_pad')})")
    out_size = ctx.lit(ctx.out_type().shape[lead:])
    if ctx.op == "max_pool":
        dilation = tuple(a["dilation"] or (1,) * nsp)
        return (f"rt.max_pool({ctx.arg(0)}, {ctx.attr('kernel')}, {ctx.lit(stride)}, {ctx.lit(padding)}, "
                f"{ctx.lit(dilation)}, {ctx.attr('ceil_mode')}, {out_size})")
    return (f"rt.avg_pool({ctx.arg(0)}, {ctx.attr('kernel')}, {ctx.lit(stride)}, {ctx.lit(padding)}, "
            f"{ctx.attr('ceil_mode')}, {ctx.attr('count_include_pad')}, {out_size})")


@rule("adaptive_avg_pool")
def _adaptive_avg_pool(ctx):
    nsp = len(ctx.attrs["output_size"])
    if ctx.in_type(0).rank - nsp in (1, 2):
        return f"F.adaptive_avg_pool{nsp}d({ctx.arg(0)}, {ctx.attr('output_size')})"
    return f"rt.adaptive_avg_pool({ctx.arg(0)}, {ctx.attr('output_size')})"


_INTERP_MODES = {"nearest": "nearest", "nearest_exact": "nearest-exact"}


@rule("interpolate")
def _interpolate(ctx):
    size, mode = ctx.attrs["size"], ctx.attrs["mode"]
    nsp = len(size)
    if mode == "linear":
        torch_mode = ("linear", "bilinear", "trilinear")[nsp - 1]
        extra = f", align_corners={ctx.attr('align_corners')}"
    else:
        torch_mode, extra = _INTERP_MODES[mode], ""
    call = f"size={ctx.attr('size')}, mode={torch_mode!r}{extra}"
    if ctx.in_type(0).rank == nsp + 2:
        return f"F.interpolate({ctx.arg(0)}, {call})"
    return f"rt.interpolate({ctx.arg(0)}, {nsp}, {call})"


@rule("pad")
def _pad(ctx):
    pads = tuple(tuple(p) for p in ctx.attrs["pads"])
    mode = ctx.attrs["mode"]
    if mode == "constant":
        first = next((k for k, p in enumerate(pads) if tuple(p) != (0, 0)), len(pads))
        if first == len(pads):
            return f"{ctx.arg(0)}.clone()"  # nothing to pad: a fresh copy, as in the IR
        return f"F.pad({ctx.arg(0)}, {pad_spec(ctx, pads[first:])}, value={ctx.attr('value')})"
    return f"rt.pad({ctx.arg(0)}, {ctx.lit(pads)}, {ctx.attr('mode')})"


# -- creation, masking, reordering ---------------------------------------------------------------


@rule("arange")
def _arange(ctx):
    a = ctx.attrs
    return (f"torch.arange({ctx.attr('start')}, {ctx.attr('end')}, {ctx.attr('step')}, "
            f"dtype={torch_dtype(ctx.out_type().dtype)}, device={ctx.device()})")


@rule("full")
def _full(ctx):
    return (f"torch.full({ctx.out_shape(0)}, {ctx.attr('value')}, dtype={torch_dtype(ctx.out_type().dtype)}, "
            f"device={ctx.device()})")


@rule("full_like")
def _full_like(ctx):
    return f"torch.full_like({ctx.arg(0)}, {ctx.attr('value')}, dtype={torch_dtype(ctx.out_type().dtype)})"


@rule("triu", "tril")
def _tri(ctx):
    return f"torch.{ctx.op}({ctx.arg(0)}, diagonal={ctx.attr('diagonal')})"


@rule("flip")
def _flip(ctx):
    return f"torch.flip({ctx.arg(0)}, {ctx.lit(_dims(ctx, ctx.attrs['axes']))})"


@rule("roll")
def _roll(ctx):
    axes = ctx.attrs["axes"]
    if axes is None:
        shifts = ctx.attrs["shifts"]
        return f"torch.roll({ctx.arg(0)}, {ctx.lit(shifts if isinstance(shifts, int) else shifts[0])})"
    return f"torch.roll({ctx.arg(0)}, {ctx.attr('shifts')}, {ctx.attr('axes')})"


@rule("tile")
def _tile(ctx):
    return f"torch.tile({ctx.arg(0)}, {ctx.attr('repeats')})"


@rule("topk")
def _topk(ctx):
    return (f"torch.topk({ctx.arg(0)}, {ctx.attr('k')}, dim={ctx.attr('axis')}, largest={ctx.attr('largest')}, "
            f"sorted={ctx.attr('sorted')})")


@rule("sort")
def _sort(ctx):
    return f"torch.sort({ctx.arg(0)}, dim={ctx.attr('axis')}, descending={ctx.attr('descending')}, stable=True)"


# -- attention -----------------------------------------------------------------------------------


@rule("scaled_dot_product_attention")
def _sdpa(ctx):
    out = ctx.out_type().dtype
    q, k, v = operands(ctx, (0, 1, 2), out, strict=True)
    extra = ""
    if ctx.num_inputs() == 4:
        mask = ctx.arg(3)
        mt = ctx.in_type(3).dtype
        if mt != DType.bool and mt != out:
            mask = f"{mask}.to({torch_dtype(out)})"
        extra += f", attn_mask={mask}"
    if ctx.attrs["is_causal"]:
        extra += ", is_causal=True"
    if ctx.attrs["scale"] is not None:
        extra += f", scale={ctx.attr('scale')}"
    return f"F.scaled_dot_product_attention({q}, {k}, {v}{extra})"


# -- opaque ------------------------------------------------------------------------------


@rule("opaque")
def _opaque(ctx):
    target = ctx.attrs["target"]
    ns, name, overload = parse_target(target)  # validated here, and again when the module loads
    returns = len(torch_op(target)._schema.returns)
    if returns != len(ctx.node.outputs):
        raise ctx.fail(f"target {target} returns {returns} value(s) but the node declares "
                       f"{len(ctx.node.outputs)} result type(s)")
    op = ctx.helper(f"op_{name}", f"rt.torch_op({target!r})")
    return f"{op}({', '.join(ctx.args)})"


def torch_rules() -> dict[str, Callable]:
    return dict(RULES)


__all__ = ["RULES", "rule", "torch_rules", "torch_dtype", "operands"]
