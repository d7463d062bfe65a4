"""Reductions, softmax-like ops, cumsum, and the normalizations."""

from __future__ import annotations

from ..codegen import Rule
from ..pyexpr import tuple_literal
from ._base import input_axes, fill_none, operands, rule, torch_dtype


# -- reductions ---------------------------------------------------------------------------


def _reduction(fn: str, fix_dtype: bool = False) -> Rule:
    def lower(ctx):
        x, out = ctx.arg(0), ctx.out_type().dtype
        dims = input_axes(ctx, ctx.attrs["axes"])
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
    dims = input_axes(ctx, ctx.attrs["axes"])
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


@rule("cumsum", "cumprod")
def _cumulative(ctx):
    dt = ctx.in_type(0).dtype
    fix = "" if dt.is_floating else f", dtype={torch_dtype(ctx.out_type().dtype)}"  # torch would give int64
    return f"torch.{ctx.op}({ctx.arg(0)}, dim={ctx.attr('axis')}{fix})"

# -- normalization ------------------------------------------------------------------------


@rule("layer_norm", "rms_norm")
def _layer_norm(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True)
    k = ctx.attrs["num_axes"]
    shape = tuple_literal(ctx.shape(ctx.node.inputs[0])[-k:])
    if ctx.op == "layer_norm":
        x, w, b = fill_none(args, 3)
        return f"F.layer_norm({x}, {shape}, {w}, {b}, eps={ctx.attr('eps')})"
    x, w = fill_none(args, 2)
    return f"F.rms_norm({x}, {shape}, {w}, eps={ctx.attr('eps')})"


@rule("group_norm")
def _group_norm(ctx):
    x, w, b = fill_none(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 3)
    return f"F.group_norm({x}, {ctx.attr('num_groups')}, {w}, {b}, eps={ctx.attr('eps')})"


@rule("batch_norm")
def _batch_norm(ctx):
    x, mean, var, w, b = fill_none(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 5)
    return f"F.batch_norm({x}, {mean}, {var}, {w}, {b}, training=False, eps={ctx.attr('eps')})"
