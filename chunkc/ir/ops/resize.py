"""Resizing: interpolate (nearest, nearest_exact, linear) and pad.

``interpolate`` resizes the last ``len(size)`` axes; the leading axes (batch,
channels) carry.  A resized axis that nearest (or nearest_exact) mode enlarges by a
power of two ``f`` carries too, with ratio ``1/f``: output row ``o`` is input row
``o // f`` exactly (the scale ``1/f`` is exact in float32), so output rows
``[a, b)`` come from input rows ``[a // f, ceil(b / f))``, and a chunk loop runs the
op with ``size`` stating the rows it computes (``size`` is the record's
``shape_attr``).  Every other resized axis mixes.  Source positions follow PyTorch exactly, in float32:

* nearest (PyTorch's legacy rule): ``floor(o * (in/out))``;
* nearest_exact: ``floor((o + 0.5) * (in/out))``;
* linear (bi/trilinear by rank): ``(o + 0.5) * (in/out) - 0.5`` clamped at 0, or
  ``o * (in-1)/(out-1)`` with ``align_corners``.

``pad`` pads (or, with negative constant pads, crops) every axis; unpadded axes carry.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from ..dims import AxisSource, DimRecord, MIX
from ..kernel_workspace import TorchWorkspace, cpu_threads
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, normalize, product, ratio
from ._common import carry_from, fail, one_of, optional_float, pairs
from ._window import pad_spec

_MODES = ("nearest", "nearest_exact", "linear")


# -- interpolate --------------------------------------------------------------------------------


def _interp_infer(ins, attrs):
    x = ins[0]
    size, mode = attrs["size"], attrs["mode"]
    one_of("interpolate", "mode", mode, _MODES)
    if not isinstance(size, tuple) or not 1 <= len(size) <= 3 or any(isinstance(s, int) and s < 1 for s in size):
        raise fail("interpolate", f"size must be a tuple of 1 to 3 positive output sizes, got {size!r}")
    if x.rank <= len(size):
        raise fail("interpolate", f"input {x} needs at least one axis (batch or channels) before its "
                                  f"{len(size)} resized axes")
    if not isinstance(attrs["align_corners"], bool):
        raise fail("interpolate", f"align_corners must be a bool, got {attrs['align_corners']!r}")
    if attrs["align_corners"] and mode != "linear":
        raise fail("interpolate", f"align_corners=True applies only to mode 'linear', not {mode!r}")
    if mode == "linear" and not x.dtype.is_floating:
        raise fail("interpolate", f"mode 'linear' needs a floating-point input, got {x}")
    return (x.with_shape(x.shape[:x.rank - len(size)] + size),)


def _interp_dims(ins, attrs, outs) -> DimRecord:
    x, nsp = ins[0], len(attrs["size"])
    lead = x.rank - nsp
    return (tuple(carry_from(AxisSource(0, k)) for k in range(lead))
            + tuple(_resized_flow(x.shape[k], outs[0].shape[k], k, attrs["mode"]) for k in range(lead, x.rank)),)


def _resized_flow(n_in: Size, n_out: Size, axis: int, mode: str):
    """A nearest upsampling by a power of two carries the axis (ratio 1/f); anything else mixes."""
    if mode == "linear":
        return MIX
    f = ratio(n_out, n_in)
    if f is None or f.denominator != 1 or f.numerator < 2 or f.numerator & (f.numerator - 1):
        return MIX
    return carry_from(AxisSource(0, axis, Fraction(1, f.numerator)))


def _source_position(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
    """PyTorch's ``area_pixel_compute_source_index`` on CPU, rounding where it rounds: a float32 scale;
    with align_corners ``scale * o`` in float32, else ``scale * (o + 0.5) - 0.5`` in float64 rounded once
    to float32, clamped at 0."""
    o = np.arange(n_out)
    if align_corners:
        scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
        return o.astype(np.float32) * scale
    scale = np.float32(n_in) / np.float32(n_out)
    src = (np.float64(scale) * (o + 0.5) - 0.5).astype(np.float32)
    return np.maximum(src, np.float32(0))


def nearest_index(n_in: int, n_out: int, exact: bool) -> np.ndarray:
    """Source index per output position: legacy ``floor(o * scale)``, or nearest_exact's
    ``floor(src + 0.5)`` (the sum in float64, rounded to float32 before the floor, as ``floorf`` does)."""
    if exact:
        src = (_source_position(n_in, n_out, False).astype(np.float64) + 0.5).astype(np.float32)
    else:
        src = np.arange(n_out, dtype=np.float32) * (np.float32(n_in) / np.float32(n_out))
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1)


def linear_weights(n_in: int, n_out: int, align_corners: bool):
    """(i0, i1, lambda): output o = (1 - lambda[o]) * x[i0[o]] + lambda[o] * x[i1[o]]."""
    if n_in == n_out:  # PyTorch copies
        o = np.arange(n_out)
        return o, o, np.zeros(n_out, np.float32)
    src = _source_position(n_in, n_out, align_corners)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, lam


def take_into(xp, a, index, out):
    """``out[...] = take(a, index, axis=-1)`` without a temporary (NumPy buffers ``out`` unless mode='clip')."""
    if xp.__name__ == "numpy":
        xp.take(a, index, axis=-1, out=out, mode="clip")
    else:
        xp.take(a, index, axis=-1, out=out)


def _cells(shape: tuple[int, ...]):
    """Every index of ``shape`` in C order, as tuples (what ``itertools.product`` of ranges
    yields, without the product object's pools, a block per call that tracemalloc counts)."""
    for k in range(math.prod(shape)):
        cell = []
        for s in reversed(shape):
            k, r = divmod(k, s)
            cell.append(r)
        cell.reverse()
        yield tuple(cell)


def _interp_ref(xp, x, size, mode="nearest", align_corners=False):
    nsp = len(size)
    lead = x.ndim - nsp
    size = tuple([int(s) for s in size])
    if mode == "linear":
        return _linear(xp, x, size, align_corners)
    index = [nearest_index(x.shape[lead + a], size[a], mode == "nearest_exact") for a in range(nsp)]
    last = xp.asarray(index[-1])
    if nsp == 1:
        return xp.take(x, last, axis=-1)
    # one output row at a time, gathered straight into the (C-contiguous) output
    out = xp.empty(x.shape[:lead] + size, dtype=x.dtype)
    for cell in _cells(size[:-1]):
        row = x[(Ellipsis,) + tuple([int(index[a][o]) for a, o in enumerate(cell)]) + (slice(None),)]
        take_into(xp, row, last, out[(Ellipsis,) + cell + (slice(None),)])
    return out


def _linear(xp, x, size, align_corners):
    nsp, lead = len(size), x.ndim - len(size)
    w = [linear_weights(x.shape[lead + a], size[a], align_corners) for a in range(nsp)]
    lead_shape = x.shape[:lead]
    out = xp.empty(lead_shape + size, dtype=x.dtype)
    if nsp == 1:  # one output position at a time: a temporary of the leading axes only
        i0, i1, lam = w[0]
        tmp = xp.empty(lead_shape, dtype=x.dtype)
        for o in range(size[0]):
            xp.multiply(x[..., int(i0[o])], float(1 - lam[o]), out=out[..., o])
            xp.multiply(x[..., int(i1[o])], float(lam[o]), out=tmp)
            out[..., o] += tmp
        return out
    # one output row (all axes but the last fixed) at a time: blend the 2^(d-1) input rows, then
    # interpolate that row along the last axis
    acc = xp.empty(lead_shape + (x.shape[-1],), dtype=x.dtype)
    tmp = xp.empty_like(acc)
    b0 = xp.empty(lead_shape + (size[-1],), dtype=x.dtype)
    b1 = xp.empty_like(b0)
    i0w, i1w, lw = (xp.asarray(v) for v in w[-1])
    one_minus_lw = (1 - lw).astype(x.dtype)
    lw = lw.astype(x.dtype)
    for cell in _cells(size[:-1]):
        for n, corner in enumerate(_cells((2,) * (nsp - 1))):
            weight, index = 1.0, []
            for a, (o, c) in enumerate(zip(cell, corner)):
                i0, i1, lam = w[a]
                weight *= float(lam[o]) if c else float(1 - lam[o])
                index.append(int(i1[o] if c else i0[o]))
            row = x[(Ellipsis,) + tuple(index) + (slice(None),)]
            xp.multiply(row, weight, out=acc if n == 0 else tmp)
            if n:
                acc += tmp
        take_into(xp, acc, i0w, b0)
        b0 *= one_minus_lw
        take_into(xp, acc, i1w, b1)
        b1 *= lw
        xp.add(b0, b1, out=out[(Ellipsis,) + cell + (slice(None),)])
    return out


def _interp_workspace(ins, attrs, outs) -> Size:
    if attrs["mode"] != "linear":
        return 0
    x, nsp = ins[0], len(attrs["size"])
    lead = product(x.shape[:x.rank - nsp])
    if nsp == 1:
        return lead
    return normalize(2 * lead * (x.shape[-1] + attrs["size"][-1]))


def _interp_cpu_workspace(ins, attrs, outs) -> Size:
    """ATen's CPU upsampling: in 2-d, for a small output (``H + W <= 128``), and for bilinear
    on three channels when PyTorch runs one thread (ATen's benchmark-chosen rule for RGB
    images), the vectorized channels-last kernel, which copies an input of several channels
    to channels last and computes into a channels-last buffer copied back; otherwise the
    generic kernel's index and weight tables (per output position: an int64 index and a
    weight per tap)."""
    x, size, mode = ins[0], tuple(attrs["size"]), attrs["mode"]
    nsp = len(size)
    lead = x.rank - nsp
    channels = x.shape[1] if lead == 2 else 1  # rt.interpolate folds other leading axes into [N, 1]
    rgb = mode == "linear" and _int(channels) == 3 and cpu_threads() == 1
    channels_last = nsp == 2 and _int(channels) > 1 and (0 < _int(sum(size)) <= 128 or rgb)
    if channels_last:
        return normalize(x.numel() * x.dtype.itemsize + outs[0].numel() * outs[0].dtype.itemsize)
    taps = 2 if mode == "linear" else 1
    return normalize(sum(size) * taps * (8 + x.dtype.itemsize))


def _int(size: Size) -> int:
    return int(size) if isinstance(size, int) else 0


_TORCH_MODES = {"nearest": "nearest", "nearest_exact": "nearest-exact"}


def _interp_torch(ctx: LoweringContext) -> str:
    size, mode = ctx.attrs["size"], ctx.attrs["mode"]
    nsp = len(size)
    if mode == "linear":
        torch_mode = ("linear", "bilinear", "trilinear")[nsp - 1]
        extra = f", align_corners={ctx.attr('align_corners')}"
    else:
        torch_mode, extra = _TORCH_MODES[mode], ""
    call = f"size={ctx.attr('size')}, mode={torch_mode!r}{extra}"
    if ctx.in_type(0).rank == nsp + 2:
        return f"F.interpolate({ctx.arg(0)}, {call})"
    return f"rt.interpolate({ctx.arg(0)}, {nsp}, {call})"


register(OpDef(
    name="interpolate", infer=_interp_infer, dims=_interp_dims, reference=_interp_ref, torch=_interp_torch,
    attrs={"size": REQUIRED, "mode": "nearest", "align_corners": False}, size_attrs=("size",), shape_attr="size",
    workspace=_interp_workspace, torch_workspace=TorchWorkspace(cpu=_interp_cpu_workspace),
    flops=lambda ins, a, outs: outs[0].numel() * (1 if a["mode"] != "linear" else 2 ** (len(a["size"]) + 1)),
    doc="interpolate(x[..., *S], size, mode='nearest'|'nearest_exact'|'linear', align_corners=False): resize "
        "the last len(size) axes to `size` (PyTorch's rules; 'linear' is bi/trilinear by len(size)). "
        "Carries: every leading axis; a resized axis that nearest mode enlarges by a power of two f (ratio 1/f)."))


# -- pad -------------------------------------------------------------------------------------------

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_infer(ins, attrs):
    x = ins[0]
    mode = attrs["mode"]
    one_of("pad", "mode", mode, _PAD_MODES)
    optional_float("pad", "value", attrs["value"], allow_none=False)
    pads = pairs("pad", "pads", attrs["pads"], x.rank, allow_negative=(mode == "constant"))
    shape = []
    for k, (s, (b, e)) in enumerate(zip(x.shape, pads)):
        n = normalize(s + b + e)
        if isinstance(n, int) and n < 0:
            raise fail("pad", f"pads {(b, e)} crop axis {k} of input {x} below size 0")
        if mode != "constant" and isinstance(s, int) and (b, e) != (0, 0):
            limit = {"reflect": s - 1, "circular": s, "replicate": None}[mode]
            if s < 1 or (limit is not None and any(isinstance(p, int) and p > limit for p in (b, e))):
                raise fail("pad", f"{mode} pads {(b, e)} on axis {k} of input {x} must be at most {limit}")
        shape.append(n)
    return (x.with_shape(tuple(shape)),)


def _pad_dims(ins, attrs, outs) -> DimRecord:
    return (tuple(carry_from(AxisSource(0, k)) if tuple(p) == (0, 0) else MIX
                  for k, p in enumerate(attrs["pads"])),)


def _pad_ref(xp, x, pads, mode="constant", value=0.0):
    pads = tuple([(int(b), int(e)) for b, e in pads])
    shape = tuple([s + b + e for s, (b, e) in zip(x.shape, pads)])
    if mode == "constant":
        out = xp.full(shape, value, dtype=x.dtype)
        dst, src = [], []
        for s, (b, e) in zip(x.shape, pads):
            lo, hi = max(-b, 0), s - max(-e, 0)  # the part of x that survives cropping
            if hi <= lo:
                return out
            dst.append(slice(max(b, 0), max(b, 0) + hi - lo))
            src.append(slice(lo, hi))
        out[tuple(dst)] = x[tuple(src)]
        return out
    out = xp.empty(shape, dtype=x.dtype)
    out[tuple([slice(b, b + s) for s, (b, _) in zip(x.shape, pads)])] = x
    for k, (n, (b, e)) in enumerate(zip(x.shape, pads)):
        # fill axis k's pads from its centre, over the full extent of every other axis (earlier axes
        # are complete; later axes' pads are rewritten when their turn comes)
        def row(i):
            return out[(slice(None),) * k + (i,)]
        for j in range(b):
            row(j)[...] = row(b + {"reflect": b - j, "replicate": 0, "circular": (n - b + j) % n}[mode])
        for j in range(e):
            row(b + n + j)[...] = row(b + {"reflect": n - 2 - j, "replicate": n - 1, "circular": j % n}[mode])
    return out


def _pad_torch(ctx: LoweringContext) -> str:
    pads = tuple(tuple(p) for p in ctx.attrs["pads"])
    if ctx.attrs["mode"] != "constant":
        return f"rt.pad({ctx.arg(0)}, {ctx.lit(pads)}, {ctx.attr('mode')})"
    first = next((k for k, p in enumerate(pads) if p != (0, 0)), len(pads))
    if first == len(pads):
        return f"{ctx.arg(0)}.clone()"  # nothing to pad: a fresh copy, as in the IR
    return f"F.pad({ctx.arg(0)}, {pad_spec(ctx, pads[first:])}, value={ctx.attr('value')})"


register(OpDef(
    name="pad", infer=_pad_infer, dims=_pad_dims, reference=_pad_ref, torch=_pad_torch,
    attrs={"pads": REQUIRED, "mode": "constant", "value": 0.0}, size_attrs=("pads",), flops=lambda *a: 0,
    doc="pad(x, pads=((begin, end), ...) one pair per axis, mode='constant'|'reflect'|'replicate'|'circular', "
        "value=0.0): negative constant pads crop. Carries: every axis padded by (0, 0)."))

__all__ = ["nearest_index", "linear_weights"]
