"""Sliding windows: convolutions, pooling, resizing, padding."""

from __future__ import annotations

from ..pyexpr import tuple_literal
from ._base import fill_none, operands, rule


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
    args = fill_none(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 3)
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
    x, w, b = fill_none(operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True), 3)
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
