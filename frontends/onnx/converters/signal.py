"""DFT and STFT (chunkc/ir/ops/extra_signal.py); lengths, axes and steps must be known at import."""

from __future__ import annotations

from chunkc.ir.sizes import normalize

from .registry import converter
from .shape import norm_axis


@converter("DFT")
def dft(ctx, node):
    x = ctx.value(0)
    if ctx.opset >= 20:
        axis = ctx.static_ints(2, "axis")[0] if ctx.has(2) else -2
    else:
        axis = int(node.attr("axis", 1))
    axis = norm_axis(ctx, axis, x.rank)
    inverse, onesided = bool(node.attr("inverse", 0)), bool(node.attr("onesided", 0))
    if ctx.has(1):
        length = ctx.static_sizes(1, "dft_length")[0]
    else:
        length = normalize(2 * (x.shape[axis] - 1)) if inverse and onesided else x.shape[axis]
    ctx.set(0, ctx.op("dft", x, axis=axis, length=length, inverse=inverse, onesided=onesided))


@converter("STFT")
def stft(ctx, node):
    x = ctx.value(0)
    step = ctx.static_ints(1, "frame_step")[0]
    window = ctx.optional_value(2)
    if ctx.has(3):
        frame = ctx.static_ints(3, "frame_length")[0]
    elif window is not None and isinstance(window.shape[0], int):
        frame = window.shape[0]
    else:
        raise ctx.fail("give frame_length or a window of static length")
    extra = [window] if window is not None else []
    ctx.set(0, ctx.op("stft", x, *extra, frame_step=step, frame_length=frame, onesided=bool(node.attr("onesided", 1))))
