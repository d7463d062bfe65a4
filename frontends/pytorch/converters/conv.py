"""Convolution, pooling, interpolation and padding."""

from __future__ import annotations

import torch

from chunkc.ir.sizes import normalize

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


def _spatial(values, n: int, default=None) -> tuple:
    """torch's int-or-list spatial argument (``[2]``, ``2``, ``[]``) for ``n`` spatial axes."""
    if values is None or (isinstance(values, (list, tuple)) and len(values) == 0):
        if default is None:
            return None
        values = default
    if isinstance(values, int):
        values = [values]
    values = list(values)
    if len(values) == 1 and n > 1:
        values = values * n
    return tuple(values)


def _pairs(padding) -> tuple:
    return tuple((p, p) for p in padding)


@converts(aten.convolution, aten._convolution, aten.conv1d, aten.conv2d, aten.conv3d,
          aten.conv_transpose1d, aten.conv_transpose2d)
def convolution(cx: Ctx, a: Args):
    x, w = a.input, a.weight
    n = x.rank - 2
    stride = _spatial(a.get("stride"), n, [1])
    dilation = _spatial(a.get("dilation"), n, [1])
    groups = int(a.get("groups", 1))
    padding = a.get("padding", [0])
    if isinstance(padding, str):
        padding = _string_padding(cx, padding, w, dilation, stride)
    else:
        padding = _pairs(_spatial(padding, n, [0]))
    ins = [x, w] + ([a.bias] if a.get("bias") is not None else [])
    transposed = bool(a.get("transposed", False)) or cx.node.target.overloadpacket in (
        aten.conv_transpose1d, aten.conv_transpose2d)
    if transposed:
        out_pad = _spatial(a.get("output_padding"), n, [0])
        return cx.op("conv_transpose", *ins, stride=stride, padding=padding, output_padding=out_pad,
                     dilation=dilation, groups=groups)
    return cx.op("conv", *ins, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _string_padding(cx: Ctx, mode: str, w, dilation, stride):
    if mode == "valid":
        return tuple((0, 0) for _ in dilation)
    if mode == "same" and all(s == 1 for s in stride):
        pads = []
        for k, d in zip(w.shape[2:], dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    raise cx.fail(f"conv padding={mode!r} with stride {stride}")


_MAX_POOL = (aten.max_pool1d, aten.max_pool2d, aten.max_pool3d, aten.max_pool1d_with_indices,
             aten.max_pool2d_with_indices, aten.max_pool3d_with_indices)


@converts(*_MAX_POOL)
def max_pool(cx: Ctx, a: Args):
    x = a.self
    n = x.rank - 2
    kernel = _spatial(a.kernel_size, n)
    stride = _spatial(a.get("stride"), n, kernel)
    padding = _pairs(_spatial(a.get("padding"), n, [0]))
    dilation = _spatial(a.get("dilation"), n, [1])
    if len(cx.out_types) > 1 and cx.output_used(1):
        raise cx.fail("the indices of max pooling (output 1) are used")
    ceil_mode = bool(a.get("ceil_mode", False))
    if ceil_mode and any(not isinstance(s, int) for s in x.shape[2:]):
        x, padding = _ceil_as_padding(cx, x, kernel, stride, padding, dilation)
        ceil_mode = False
    y = cx.op("max_pool", x, kernel=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    return (y, None) if len(cx.out_types) > 1 else y


def _ceil_as_padding(cx: Ctx, x, kernel, stride, padding, dilation):
    """ceil_mode on a symbolic size: pad the end with -inf up to the extent torch's own
    (symbolic) output size needs, then pool in floor mode; max pooling ignores -inf."""
    out_sizes = cx.out.shape[2:]
    pairs = [(0, 0), (0, 0)]
    for n_in, n_out, k, s, (lo, hi), d in zip(x.shape[2:], out_sizes, kernel, stride, padding, dilation):
        extra = normalize((n_out - 1) * s + d * (k - 1) + 1 - (n_in + lo + hi))
        pairs.append((lo, normalize(hi + extra)))
    padded = cx.op("pad", x, pads=tuple(pairs), mode="constant", value=float("-inf"))
    return padded, tuple((0, 0) for _ in kernel)


@converts(aten.avg_pool1d, aten.avg_pool2d, aten.avg_pool3d)
def avg_pool(cx: Ctx, a: Args):
    x = a.self
    n = x.rank - 2
    if a.get("divisor_override") is not None:
        raise cx.fail("avg_pool with divisor_override")
    kernel = _spatial(a.kernel_size, n)
    return cx.op("avg_pool", x, kernel=kernel, stride=_spatial(a.get("stride"), n, kernel),
                 padding=_pairs(_spatial(a.get("padding"), n, [0])), ceil_mode=bool(a.get("ceil_mode", False)),
                 count_include_pad=bool(a.get("count_include_pad", True)))


@converts(aten.adaptive_avg_pool1d, aten.adaptive_avg_pool2d, aten.adaptive_avg_pool3d, aten._adaptive_avg_pool2d,
          aten._adaptive_avg_pool3d)
def adaptive_avg_pool(cx: Ctx, a: Args):
    return cx.op("adaptive_avg_pool", a.self, output_size=tuple(cx.out.shape[2:]))


_NEAREST = (aten.upsample_nearest1d, aten.upsample_nearest2d, aten.upsample_nearest3d)
_NEAREST_EXACT = (aten._upsample_nearest_exact1d, aten._upsample_nearest_exact2d, aten._upsample_nearest_exact3d)
_LINEAR = (aten.upsample_linear1d, aten.upsample_bilinear2d, aten.upsample_trilinear3d)


@converts(*_NEAREST, *_NEAREST_EXACT, *_LINEAR)
def upsample(cx: Ctx, a: Args):
    packet = cx.node.target.overloadpacket
    size = tuple(cx.out.shape[2:])  # torch's own output sizes (symbolic when the input is)
    x = a.input if "input" in a else a.self
    _check_scales(cx, a, x, size)
    if packet in _LINEAR:
        return cx.op("interpolate", x, size=size, mode="linear", align_corners=bool(a.align_corners))
    mode = "nearest" if packet in _NEAREST else "nearest_exact"
    return cx.op("interpolate", x, size=size, mode=mode)


def _check_scales(cx: Ctx, a: Args, x, size) -> None:
    """chunkc maps output pixels with in/out size ratios: a scale factor that is not
    exactly out/in (scale_factor=1.5 on an odd size) would sample differently."""
    scales = a.get("scale_factors")
    if scales is None:
        scales = [a.get(k) for k in ("scales", "scales_d", "scales_h", "scales_w") if k in a]
        scales = [s for s in scales if s is not None]
    for s, n_in, n_out in zip(scales or [], x.shape[2:], size):
        if isinstance(n_in, int) and isinstance(n_out, int):
            if abs(n_in * s - n_out) > 1e-9:
                raise cx.fail(f"interpolation with scale factor {s} on size {n_in} (output {n_out}); "
                              "give size= instead of scale_factor=")
        elif float(s) != int(s):
            raise cx.fail(f"interpolation with the non-integer scale factor {s} on a symbolic size")


_PAD_MODES = {aten.reflection_pad1d: "reflect", aten.reflection_pad2d: "reflect", aten.reflection_pad3d: "reflect",
              aten.replication_pad1d: "replicate", aten.replication_pad2d: "replicate",
              aten.replication_pad3d: "replicate", aten._pad_circular: "circular"}


@converts(aten.constant_pad_nd, aten.pad, *_PAD_MODES)
def pad(cx: Ctx, a: Args):
    x = a.self if "self" in a else a.input
    packet = cx.node.target.overloadpacket
    flat = list(a.pad if "pad" in a else a.padding)
    mode = _PAD_MODES.get(packet) or a.get("mode", "constant")
    value = a.get("value", 0.0)
    value = 0.0 if value is None else value
    # torch lists (begin, end) pairs from the last axis backwards
    pairs = [(0, 0)] * x.rank
    for i in range(len(flat) // 2):
        pairs[x.rank - 1 - i] = (flat[2 * i], flat[2 * i + 1])
    # negative pads crop: slice first, then pad with what is left
    for axis, (lo, hi) in enumerate(pairs):
        if (isinstance(lo, int) and lo < 0) or (isinstance(hi, int) and hi < 0):
            start = -lo if isinstance(lo, int) and lo < 0 else None
            end = hi if isinstance(hi, int) and hi < 0 else None
            x = cx.op("slice", x, axis=axis, start=start, end=end, step=1)
            pairs[axis] = (max(lo, 0) if isinstance(lo, int) else lo, max(hi, 0) if isinstance(hi, int) else hi)
    if all(p == (0, 0) for p in pairs):
        return x
    return cx.op("pad", x, pads=tuple(pairs), mode=mode, value=float(value))
