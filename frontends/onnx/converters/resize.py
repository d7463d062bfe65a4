"""Resize and Upsample.

A Resize whose sampling matches PyTorch's ``interpolate`` becomes one
``interpolate`` node:

* ``nearest`` + ``asymmetric`` coordinates + ``floor`` rounding -> ``nearest``;
* ``nearest`` + ``half_pixel`` + ``round_prefer_ceil`` (or ``tf_half_pixel_for_nn``
  + ``floor``) -> ``nearest_exact``;
* ``linear`` + ``half_pixel`` (``pytorch_half_pixel`` when every output size
  exceeds 1) -> ``linear``; ``linear`` + ``align_corners`` -> ``linear`` with
  ``align_corners=True``.

Every other combination (cubic, antialiasing, other coordinate or rounding
modes, crop-and-resize) is resampled exactly as ONNX specifies, axis by axis,
with a gather (nearest) or a matrix product by an interpolation-weight matrix
computed at import time (see resample.py); this needs static spatial sizes.
Output sizes come from ``sizes`` or ``floor(input * scales)``; when scales
give a fractional output size, ONNX samples with the given scale rather than
output/input, and the exact path is used.
"""

from __future__ import annotations

import math

import numpy as np

from chunkc.ir.sizes import Size, normalize

from .registry import converter
from .resample import ResampleSpec, resample_axis


def _plan(ctx, node, x, scales, sizes, axes):
    """Output sizes and per-axis scales for every axis of x."""
    rank = x.rank
    axes = tuple(range(rank)) if axes is None else tuple(a % rank for a in axes)
    out: list[Size] = list(x.shape)
    scale = [1.0] * rank
    if sizes is not None:
        if len(sizes) != len(axes):
            raise ctx.fail(f"sizes {sizes} do not match axes {axes}")
        policy = node.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            ins = [x.shape[a] for a in axes]
            if not all(isinstance(s, int) for s in ins):
                raise ctx.fail(f"keep_aspect_ratio_policy={policy!r} needs static sizes")
            ratios = [int(s) / i for s, i in zip(sizes, ins)]
            r = min(ratios) if policy == "not_larger" else max(ratios) if policy == "not_smaller" else None
            if r is None:
                raise ctx.fail(f"keep_aspect_ratio_policy={policy!r} is not stretch, not_larger or not_smaller")
            for a, i in zip(axes, ins):
                out[a] = int(math.floor(i * r + 0.5))
                scale[a] = r
        else:
            for a, s in zip(axes, sizes):
                out[a] = s
                scale[a] = None  # output / input
    elif scales is not None:
        if len(scales) != len(axes):
            raise ctx.fail(f"scales {scales} do not match axes {axes}")
        for a, s in zip(axes, scales):
            if s <= 0:
                raise ctx.fail(f"scale {s} on axis {a} is not positive")
            dim = x.shape[a]
            scale[a] = float(s)
            if isinstance(dim, int):
                out[a] = int(math.floor(dim * s))
            elif float(s).is_integer():
                out[a] = normalize(dim * int(s))
            else:
                raise ctx.fail(f"scale {s} on axis {a} of symbolic size {dim} gives a run-time-dependent size")
    else:
        raise ctx.fail("needs scales or sizes")
    return out, scale


def _interpolate_mode(ctx, node, spec: ResampleSpec, x, out, scale):
    """The interpolate mode that samples exactly like this Resize, or None."""
    if x.rank < 3 or any(not (isinstance(a, int) and isinstance(b, int) and a == b) and k < 2
                         for k, (a, b) in enumerate(zip(x.shape, out))):
        return None
    spatial = range(2, x.rank)
    for k in spatial:  # ONNX samples with the given scale; interpolate with output/input
        if scale[k] is not None and isinstance(x.shape[k], int) and x.shape[k] * scale[k] != out[k]:
            return None
    if spec.antialias and any(isinstance(o, int) and isinstance(i, int) and o < i
                              for o, i in zip(out[2:], x.shape[2:])):
        return None
    ct = spec.coordinate_mode
    if spec.mode == "nearest":
        if ct == "asymmetric" and spec.nearest_mode == "floor":
            return "nearest", False
        if (ct == "half_pixel" and spec.nearest_mode == "round_prefer_ceil") or \
                (ct == "tf_half_pixel_for_nn" and spec.nearest_mode == "floor"):
            return "nearest_exact", False
        return None
    if spec.mode == "linear":
        if ct == "half_pixel" or (ct == "pytorch_half_pixel" and all(
                not isinstance(o, int) or o > 1 for o in out[2:])):
            return "linear", False
        if ct == "align_corners":
            return "linear", True
    return None


def _resize(ctx, node, scales, sizes, axes, spec: ResampleSpec, roi):
    x = ctx.value(0)
    out, scale = _plan(ctx, node, x, scales, sizes, axes)
    chosen = _interpolate_mode(ctx, node, spec, x, out, scale) if roi is None else None
    if chosen is not None:
        mode, align = chosen
        if all(isinstance(a, int) and isinstance(b, int) and a == b for a, b in zip(out, x.shape)):
            ctx.set(0, ctx.op("copy", x))
            return
        ctx.set(0, ctx.op("interpolate", x, size=tuple(out[2:]), mode=mode, align_corners=align))
        return
    y = x
    for axis in range(x.rank):
        if isinstance(out[axis], int) and isinstance(x.shape[axis], int) and out[axis] == x.shape[axis] \
                and scale[axis] in (None, 1.0) and roi is None:
            continue
        if not (isinstance(out[axis], int) and isinstance(x.shape[axis], int)):
            raise ctx.fail(f"this sampling mode ({spec.describe()}) needs static sizes; axis {axis} is "
                           f"{x.shape[axis]} -> {out[axis]}")
        r = None if roi is None else (float(roi[axis]), float(roi[axis + x.rank]))
        y = resample_axis(ctx, y, axis, out[axis], scale[axis], spec, r)
    ctx.set(0, y if y is not x else ctx.op("copy", x))


@converter("Resize")
def resize(ctx, node):
    spec = ResampleSpec.from_node(node, ctx.opset)
    scales = sizes = roi = None
    if ctx.opset < 11:
        scales = ctx.static_floats(1, "scales")
    else:
        if ctx.has(3):
            sizes = ctx.static_ints(3, "sizes")
        elif ctx.has(2) and np.asarray(ctx.static(2, "scales")).size:
            scales = ctx.static_floats(2, "scales")
        if spec.coordinate_mode == "tf_crop_and_resize":
            roi = ctx.static_floats(1, "roi")
    axes = node.attr("axes")
    if roi is not None and axes is not None:
        rank = ctx.rank(0)
        full = [0.0] * rank + [1.0] * rank
        for k, a in enumerate(axes):
            full[a % rank], full[a % rank + rank] = roi[k], roi[k + len(axes)]
        roi = tuple(full)
    _resize(ctx, node, scales, sizes, axes, spec, roi)


@converter("Upsample")
def upsample(ctx, node):
    spec = ResampleSpec(mode=str(node.attr("mode", "nearest")), coordinate_mode="asymmetric", nearest_mode="floor")
    scales = node.attr("scales")
    scales = tuple(float(s) for s in scales) if scales is not None else ctx.static_floats(1, "scales")
    _resize(ctx, node, scales, None, None, spec, None)
