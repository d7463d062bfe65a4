"""Exact ONNX resampling along one axis with static sizes.

Every ONNX Resize mode is separable: along each axis, output position ``y``
reads a few input taps around a source coordinate ``x`` with weights that
depend on the mode.  This module computes, at import time, the weight matrix
``W[out, in]`` of one axis from the ONNX specification (coordinate transform,
nearest rounding, linear and cubic kernels, antialiasing, ``exclude_outside``,
edge clamping, crop-and-resize extrapolation), then applies it as a gather
(when every row picks one input) or a matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chunkc.errors import UnsupportedOpError

from ..node import label

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@dataclass(frozen=True)
class ResampleSpec:
    mode: str  # nearest | linear | cubic
    coordinate_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    extrapolation_value: float = 0.0
    antialias: bool = False

    @classmethod
    def from_node(cls, node, opset: int) -> "ResampleSpec":
        mode = str(node.attr("mode", "nearest"))
        default_ct = "half_pixel" if opset >= 11 else "asymmetric"
        spec = cls(mode=mode, coordinate_mode=str(node.attr("coordinate_transformation_mode", default_ct)),
                   nearest_mode=str(node.attr("nearest_mode", "round_prefer_floor")),
                   cubic_a=float(node.attr("cubic_coeff_a", -0.75)),
                   exclude_outside=bool(node.attr("exclude_outside", 0)),
                   extrapolation_value=float(node.attr("extrapolation_value", 0.0)),
                   antialias=bool(node.attr("antialias", 0)))
        if spec.mode not in ("nearest", "linear", "cubic"):
            raise UnsupportedOpError(f"{node.describe()}: mode={label(spec.mode)} is not nearest, linear or cubic")
        if spec.coordinate_mode not in COORDINATE_MODES:
            raise UnsupportedOpError(f"{node.describe()}: coordinate_transformation_mode={label(spec.coordinate_mode)} "
                                     f"is not one of {', '.join(COORDINATE_MODES)}")
        if spec.nearest_mode not in NEAREST_MODES:
            raise UnsupportedOpError(f"{node.describe()}: nearest_mode={label(spec.nearest_mode)} "
                                     f"is not one of {', '.join(NEAREST_MODES)}")
        return spec

    def describe(self) -> str:
        extra = f", {self.nearest_mode}" if self.mode == "nearest" else ""
        return f"{self.mode}, {self.coordinate_mode}{extra}" + (", antialias" if self.antialias else "")


def _source_coords(spec: ResampleSpec, n_in: int, n_out: int, scale: float, roi) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinate of each output position, and which positions extrapolate."""
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in  # ONNX's (possibly fractional) output length
    ct = spec.coordinate_mode
    outside = np.zeros(n_out, dtype=bool)
    if ct == "align_corners":
        x = np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    elif ct == "asymmetric":
        x = y / scale
    elif ct == "tf_half_pixel_for_nn":
        x = (y + 0.5) / scale
    elif ct == "tf_crop_and_resize":
        lo, hi = roi
        x = np.full(n_out, (hi - lo) * (n_in - 1) / 2) if width == 1 else y * (hi - lo) * (n_in - 1) / (width - 1)
        x = x + lo * (n_in - 1)
        outside = (x < 0) | (x > n_in - 1)
    elif ct == "pytorch_half_pixel":
        x = np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif ct == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        offset = n_in / 2 * (1 - n_out / width)
        x = offset + (y + 0.5) / scale - 0.5
    return x, outside


def _kernel(spec: ResampleSpec, ratio: float, scale: float) -> np.ndarray:
    """Weights of the taps floor(x) - n/2 + 1 ... floor(x) + n/2 (ratio in (0, 1])."""
    if spec.mode == "nearest":
        m = spec.nearest_mode
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False, "ceil": True}[m]
        return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])
    antialias = spec.antialias and scale < 1.0
    if spec.mode == "linear":
        if not antialias:
            return np.array([1.0 - ratio, ratio])
        start = int(math.floor(-1 / scale) + 1)
        args = (np.arange(start, 2 - start) - ratio) * scale
        w = np.clip(1 - np.abs(args), 0, 1)
        return w / w.sum()
    a = spec.cubic_a
    if not antialias:
        r = ratio
        return np.array([
            ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
            ((a + 2) * r - (a + 3)) * r * r + 1,
            ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
            ((a * (2 - r) - 5 * a) * (2 - r) + 8 * a) * (2 - r) - 4 * a,
        ])
    start = int(math.floor(-2 / scale) + 1)
    args = np.abs(scale * (np.arange(start, 2 - start) - ratio))
    w = np.where(args <= 1, (a + 2) * args**3 - (a + 3) * args**2 + 1,
                 np.where(args < 2, a * args**3 - 5 * a * args**2 + 8 * a * args - 4 * a, 0.0))
    return w / w.sum()


def weight_matrix(spec: ResampleSpec, n_in: int, n_out: int, scale: float | None, roi=None):
    """``(W[out, in], extrapolated rows)`` for one axis."""
    scale = n_out / n_in if scale is None else scale
    x, outside = _source_coords(spec, n_in, n_out, scale, roi)
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for j in range(n_out):
        if outside[j]:
            continue
        base = math.floor(x[j])
        ratio = x[j] - base
        if ratio == 0:  # ONNX prefers the tap on the left: ratio in (0, 1]
            base, ratio = base - 1, 1.0
        coeffs = _kernel(spec, ratio, scale)
        n = len(coeffs)
        taps = base + np.arange(n) - (n // 2 - 1)
        if spec.exclude_outside:
            inside = (taps >= 0) & (taps < n_in)
            coeffs = np.where(inside, coeffs, 0.0)
            coeffs = coeffs / coeffs.sum()
        for t, c in zip(np.clip(taps, 0, n_in - 1), coeffs):
            w[j, t] += c
    return w, outside


def resample_axis(ctx, x, axis: int, n_out: int, scale: float | None, spec: ResampleSpec, roi):
    n_in = x.shape[axis]
    if n_out == 0 or n_in == 0:
        shape = tuple(n_out if k == axis else s for k, s in enumerate(x.shape))
        return ctx.graph.op("full", shape=shape, value=0.0, dtype=x.dtype, name=ctx.node.hint)
    w, outside = weight_matrix(spec, n_in, n_out, scale, roi)
    one_hot = np.all(np.isclose(w.max(axis=1), 1.0) & (np.count_nonzero(w, axis=1) == 1) | outside)
    if one_hot and not outside.any():
        index = ctx.const(w.argmax(axis=1).astype(np.int64), name=ctx.node.hint + "_index")
        return ctx.op("take", x, index, axis=axis)
    perm = tuple(k for k in range(x.rank) if k != axis) + (axis,)
    inverse = tuple(int(i) for i in np.argsort(perm))
    moved = ctx.op("permute", x, dims=perm) if axis != x.rank - 1 else x
    y = ctx.op("matmul", moved, ctx.const(w.T, dtype=x.dtype, name=ctx.node.hint + "_weights"))
    if outside.any():
        extra = np.where(outside, spec.extrapolation_value, 0.0)
        y = ctx.op("add", y, ctx.const(extra, dtype=x.dtype, name=ctx.node.hint + "_extrapolation"))
    return ctx.op("permute", y, dims=inverse) if axis != x.rank - 1 else y


__all__ = ["ResampleSpec", "weight_matrix", "resample_axis"]
