"""DFT and STFT (chunkc/ir/ops/extra_signal.py; lengths, axes and steps must be known at import),
and ImageDecoder (chunkc/ir/ops/extra_image.py; the image's sizes are bound when it runs)."""

from __future__ import annotations

from chunkc.ir.sizes import normalize

from ..opaque import fresh_size
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


@converter("ImageDecoder")
def image_decoder(ctx, node):
    out = node.outputs[0]
    height = fresh_size(ctx, f"{out}#0", f"{out}_height")
    width = fresh_size(ctx, f"{out}#1", f"{out}_width")
    ctx.set(0, ctx.op("decode_image", ctx.value(0), pixel_format=node.attr("pixel_format", "RGB"),
                      height=height.name, width=width.name))
