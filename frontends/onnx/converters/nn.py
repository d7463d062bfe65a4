"""Neural-network ops: Conv, ConvTranspose, pooling, normalizations, LRN.

Padding follows ONNX: explicit ``pads`` ``[b1.., e1..]`` become (begin, end)
pairs; ``auto_pad`` SAME_UPPER/SAME_LOWER is resolved from the input's
spatial sizes (symbolic sizes are fine at stride 1).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from chunkc.ir.sizes import Size, product

from .registry import converter
from .shape import norm_axis


def _ints(value, n: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if value is not None else (default,) * n


def window_params(ctx, node, spatial: tuple[Size, ...], kernel: tuple[int, ...]):
    """(strides, dilations, padding pairs) of a conv or pool node."""
    n = len(kernel)
    strides = _ints(node.attr("strides"), n, 1)
    dilations = _ints(node.attr("dilations"), n, 1)
    auto_pad = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "NOTSET":
        pads = _ints(node.attr("pads"), 2 * n, 0)
        pairs = tuple((pads[k], pads[k + n]) for k in range(n))
    elif auto_pad == "VALID":
        pairs = ((0, 0),) * n
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            span = (k - 1) * d + 1
            if s == 1:
                total = span - 1
            elif isinstance(size, int):
                total = max(0, (-(-size // s) - 1) * s + span - size)
            else:
                raise ctx.fail(f"auto_pad={auto_pad} at stride {s} needs static spatial sizes, got {size}")
            small, big = total // 2, total - total // 2
            pairs.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        pairs = tuple(pairs)
    else:
        raise ctx.fail(f"auto_pad={auto_pad!r} is not NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    return strides, dilations, pairs


@converter("Conv")
def conv(ctx, node):
    x, w = ctx.value(0), ctx.value(1)
    b = ctx.optional_value(2)
    kernel = tuple(node.attr("kernel_shape") or w.shape[2:])
    if not all(isinstance(k, int) for k in kernel):
        raise ctx.fail(f"the kernel shape {kernel} must be static")
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    ctx.set(0, ctx.op("conv", x, w, *([b] if b is not None else []), stride=strides, padding=pairs,
                      dilation=dilations, groups=int(node.attr("group", 1))))


@converter("ConvInteger")
def conv_integer(ctx, node):
    """``conv(x - x_zero_point, w - w_zero_point)`` in i32, computed in f64 (exact: 8-bit products
    summed over far fewer than 2**37 terms); w's zero point may be per output channel."""
    from chunkc.ir.dtypes import DType

    x, w = ctx.op("cast", ctx.value(0), dtype=DType.float64), ctx.op("cast", ctx.value(1), dtype=DType.float64)
    if ctx.has(2):
        x = ctx.op("sub", x, ctx.op("cast", ctx.value(2), dtype=DType.float64))
    if ctx.has(3):
        zp = ctx.op("cast", ctx.value(3), dtype=DType.float64)
        if zp.rank == 1 and zp.shape[0] != 1:
            zp = ctx.op("reshape", zp, shape=(zp.shape[0],) + (1,) * (w.rank - 1))
        w = ctx.op("sub", w, zp)
    kernel = tuple(node.attr("kernel_shape") or w.shape[2:])
    if not all(isinstance(k, int) for k in kernel):
        raise ctx.fail(f"the kernel shape {kernel} must be static")
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    y = ctx.op("conv", x, w, stride=strides, padding=pairs, dilation=dilations, groups=int(node.attr("group", 1)))
    ctx.set(0, ctx.op("cast", y, dtype=DType.int32))


@converter("ConvTranspose")
def conv_transpose(ctx, node):
    x, w = ctx.value(0), ctx.value(1)
    b = ctx.optional_value(2)
    kernel = tuple(node.attr("kernel_shape") or w.shape[2:])
    n = len(kernel)
    strides = _ints(node.attr("strides"), n, 1)
    dilations = _ints(node.attr("dilations"), n, 1)
    out_pad = list(_ints(node.attr("output_padding"), n, 0))
    auto_pad = node.attr("auto_pad", "NOTSET") or "NOTSET"
    output_shape = node.attr("output_shape")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        spatial = x.shape[2:]
        if not all(isinstance(s, int) for s in spatial):
            raise ctx.fail("output_shape and SAME padding need static spatial sizes")
        targets = list(output_shape)[-n:] if output_shape is not None else [s * st for s, st in zip(spatial, strides)]
        pairs = []
        for k in range(n):
            full = strides[k] * (spatial[k] - 1) + out_pad[k] + (kernel[k] - 1) * dilations[k] + 1
            total = full - int(targets[k])
            if total < 0:  # a longer output than the kernel covers: extend with output padding
                out_pad[k] += -total
                total = 0
            small, big = total // 2, total - total // 2
            pairs.append((small, big) if auto_pad != "SAME_LOWER" else (big, small))
    elif auto_pad == "VALID":
        pairs = [(0, 0)] * n
    else:
        pads = _ints(node.attr("pads"), 2 * n, 0)
        pairs = [(pads[k], pads[k + n]) for k in range(n)]
    ctx.set(0, ctx.op("conv_transpose", x, w, *([b] if b is not None else []), stride=strides,
                      padding=tuple(pairs), output_padding=tuple(out_pad), dilation=dilations,
                      groups=int(node.attr("group", 1))))


def _fits_torch_padding(kernel, dilations, pairs) -> bool:
    """PyTorch-style pooling pads each side by at most half the (dilated) window."""
    return all(max(p) <= ((k - 1) * d + 1) // 2 for k, d, p in zip(kernel, dilations, pairs))


def pooled_sizes(spatial, kernel, strides, dilations, pairs, ceil_mode: bool) -> list[int]:
    """ONNX's output sizes; with ceil_mode, a window must start inside the input or its left padding."""
    out = []
    for n, k, s, d, (b, e) in zip(spatial, kernel, strides, dilations, pairs):
        span = (k - 1) * d + 1
        q = (n + b + e - span) / s + 1
        size = math.ceil(q) if ceil_mode else math.floor(q)
        if ceil_mode and (size - 1) * s >= n + b:
            size -= 1
        out.append(max(size, 0))
    return out


def _pad_for_windows(ctx, x, pairs, out, kernel, strides, dilations, value):
    """Pad (or crop) x so that valid windows of the given geometry give exactly ``out`` positions."""
    spatial = x.shape[2:]
    full = [(0, 0), (0, 0)]
    for n, o, k, s, d, (b, _) in zip(spatial, out, kernel, strides, dilations, pairs):
        need = (o - 1) * s + (k - 1) * d + 1 if o > 0 else b
        full.append((b, need - n - b))
    for a, (b, e) in enumerate(full):
        if e < 0:
            x = ctx.op("slice", x, axis=a, start=0, end=x.shape[a] + e, step=1)
    pads = tuple((b, max(e, 0)) for b, e in full)
    if any(b or e for b, e in pads):
        x = ctx.op("pad", x, pads=pads, mode="constant", value=value)
    return x


def window_pool(ctx, x, kind: str, kernel, strides, dilations, pairs, ceil_mode: bool,
                count_include_pad: bool = False, p: float = 2.0):
    """Pooling exactly as ONNX defines it, for the geometries PyTorch-style pooling refuses
    (large pads, dilated average pools): explicit padding, then a max pool, or a depthwise
    convolution with a ones kernel (the window sums) divided by each window's element count."""
    spatial = x.shape[2:]
    if not all(isinstance(n, int) for n in spatial) or not isinstance(x.shape[1], int):
        raise ctx.fail(f"this pooling geometry needs static channel and spatial sizes, got {x.type}")
    out = pooled_sizes(spatial, kernel, strides, dilations, pairs, ceil_mode)
    zeros = ((0, 0),) * len(kernel)
    if kind == "max":
        low = -math.inf if x.dtype.is_floating else int(np.iinfo(x.dtype.numpy).min)
        padded = _pad_for_windows(ctx, x, pairs, out, kernel, strides, dilations, low)
        return ctx.op("max_pool", padded, kernel=tuple(kernel), stride=tuple(strides), padding=zeros,
                      dilation=tuple(dilations), ceil_mode=False)
    source = x if kind == "avg" else ctx.op("pow", ctx.op("abs", x), ctx.scalar(p, x.dtype))
    padded = _pad_for_windows(ctx, source, pairs, out, kernel, strides, dilations, 0.0)
    channels = x.shape[1]
    ones = ctx.const(np.ones((channels, 1) + tuple(kernel)), dtype=x.dtype, name=ctx.node.hint + "_window")
    sums = ctx.op("conv", padded, ones, stride=tuple(strides), padding=zeros, dilation=tuple(dilations),
                  groups=channels)
    if kind == "lp":
        return ctx.op("pow", sums, ctx.scalar(1.0 / p, x.dtype))
    counts = np.ones((), dtype=np.float64)
    for n, o, k, s, d, (b, e) in zip(spatial, out, kernel, strides, dilations, pairs):
        starts = np.arange(o) * s - b
        taps = starts[:, None] + np.arange(k) * d
        lo, hi = (-b, n + e) if count_include_pad else (0, n)
        counts = np.multiply.outer(counts, ((taps >= lo) & (taps < hi)).sum(axis=1))
    counts = ctx.const(np.maximum(counts, 1), dtype=x.dtype, name=ctx.node.hint + "_counts")
    return ctx.op("div", sums, counts)


def max_pool_with_indices(ctx, x, kernel, strides, dilations, pairs, ceil_mode: bool, column_major: bool):
    """MaxPool's (values, indices): every window tap as a strided slice, stacked; the first maximum
    wins, and its position comes from a table of flat input indices computed at import."""
    if not all(isinstance(s, int) for s in x.shape):
        raise ctx.fail(f"the Indices output needs a static input shape, got {x.type}")
    spatial = x.shape[2:]
    out = pooled_sizes(spatial, kernel, strides, dilations, pairs, ceil_mode)
    low = -math.inf if x.dtype.is_floating else int(np.iinfo(x.dtype.numpy).min)
    padded = _pad_for_windows(ctx, x, pairs, out, kernel, strides, dilations, low)
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    taps = []
    table = np.zeros((len(offsets),) + tuple(out), dtype=np.int64)
    strides_flat = np.cumprod((1,) + tuple(spatial[::-1]))[:-1][::-1]  # row-major strides of the input
    if column_major:
        strides_flat = np.cumprod((1,) + tuple(spatial))[:-1]
    for t, offset in enumerate(offsets):
        tap = padded
        flat = np.zeros(tuple(out), dtype=np.int64)
        for a, (o, s, d, n) in enumerate(zip(offset, strides, dilations, out)):
            tap = ctx.op("slice", tap, axis=2 + a, start=o * d, end=o * d + (n - 1) * s + 1, step=s)
            pos = np.arange(n) * s + o * d - pairs[a][0]  # position in the unpadded input
            shape = [1] * len(out)
            shape[a] = n
            flat = flat + pos.reshape(shape) * int(strides_flat[a])
        taps.append(ctx.op("unsqueeze", tap, axis=0))
        table[t] = flat
    stacked = ctx.op("concat", *taps, axis=0) if len(taps) > 1 else taps[0]
    values = ctx.op("amax", stacked, axes=(0,))
    best = ctx.op("argmax", stacked, axis=0, keepdim=True)
    n, c = x.shape[0], x.shape[1]
    table_v = ctx.const(table.reshape((len(offsets), 1, 1) + tuple(out)), name=ctx.node.hint + "_taps")
    table_v = ctx.op("expand", table_v, shape=(len(offsets), n, c) + tuple(out))
    local = ctx.op("reshape", ctx.op("gather", table_v, best, axis=0), shape=(n, c) + tuple(out))
    base = (np.arange(n * c, dtype=np.int64) * int(np.prod(spatial))).reshape((n, c) + (1,) * len(out))
    return values, ctx.op("add", local, ctx.const(base, name=ctx.node.hint + "_base"))


@converter("MaxPool")
def max_pool(ctx, node):
    x = ctx.value(0)
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    ceil_mode = bool(node.attr("ceil_mode", 0))
    if node.has_output(1):
        values, indices = max_pool_with_indices(ctx, x, kernel, strides, dilations, pairs, ceil_mode,
                                                bool(node.attr("storage_order", 0)))
        ctx.set(0, values)
        ctx.set(1, indices)
        return
    if not _fits_torch_padding(kernel, dilations, pairs):
        ctx.set(0, window_pool(ctx, x, "max", kernel, strides, dilations, pairs, ceil_mode))
        return
    ctx.set(0, ctx.op("max_pool", x, kernel=kernel, stride=strides, padding=pairs, dilation=dilations,
                      ceil_mode=ceil_mode))


@converter("MaxUnpool")
def max_unpool(ctx, node):
    """Scatter X into zeros at the flat positions I (MaxPool's indices) of the default output
    shape, then pad each axis at its end up to ``output_shape`` when that input is given."""
    x, indices = ctx.value(0), ctx.value(1)
    kernel = _ints(node.attr("kernel_shape"), 0, 0)
    n = len(kernel)
    strides, pads = _ints(node.attr("strides"), n, 1), _ints(node.attr("pads"), 2 * n, 0)
    default = tuple(x.shape[:2]) + tuple((size - 1) * s - (pads[k] + pads[k + n]) + kern
                                         for k, (size, s, kern) in enumerate(zip(x.shape[2:], strides, kernel)))
    flat = ctx.op("full", shape=(product(default),), value=0, dtype=x.dtype)
    y = ctx.op("scatter_elements", flat, ctx.op("reshape", indices, shape=(-1,)), ctx.op("reshape", x, shape=(-1,)),
               axis=0, reduction="none")
    y = ctx.op("reshape", y, shape=default)
    if ctx.has(2):
        wanted = ctx.static_sizes(2, "output_shape")
        if len(wanted) != len(default):
            raise ctx.fail(f"output_shape {wanted} does not have rank {len(default)}")
        y = ctx.op("pad", y, pads=tuple((0, w - d) for w, d in zip(wanted, default)), mode="constant", value=0.0)
    ctx.set(0, y)


@converter("AveragePool")
def avg_pool(ctx, node):
    x = ctx.value(0)
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    ceil_mode, include = bool(node.attr("ceil_mode", 0)), bool(node.attr("count_include_pad", 0))
    if any(d != 1 for d in dilations) or not _fits_torch_padding(kernel, dilations, pairs):
        ctx.set(0, window_pool(ctx, x, "avg", kernel, strides, dilations, pairs, ceil_mode, include))
        return
    ctx.set(0, ctx.op("avg_pool", x, kernel=kernel, stride=strides, padding=pairs, ceil_mode=ceil_mode,
                      count_include_pad=include))


@converter("LpPool")
def lp_pool(ctx, node):
    x = ctx.value(0)
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    ctx.set(0, window_pool(ctx, x, "lp", kernel, strides, dilations, pairs, bool(node.attr("ceil_mode", 0)),
                           p=float(node.attr("p", 2))))


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node):
    x = ctx.value(0)
    op = "mean" if node.op_type == "GlobalAveragePool" else "amax"
    ctx.set(0, ctx.op(op, x, axes=tuple(range(2, x.rank)), keepdim=True))


# -- normalizations ---------------------------------------------------------------------------


@converter("BatchNormalization")
def batch_norm(ctx, node):
    x, scale, bias, mean, var = (ctx.value(i) for i in range(5))
    eps = float(node.attr("epsilon", 1e-5))
    training = int(node.attr("training_mode", 0))
    if not training:
        if any(node.has_output(i) for i in (1, 2)):
            raise ctx.fail("running-statistics outputs exist only in training mode (training_mode=1)")
        ctx.set(0, ctx.op("batch_norm", x, mean, var, scale, bias, eps=eps))
        return
    # training mode: normalize with the batch's statistics and update the running ones
    axes = (0,) + tuple(range(2, x.rank))
    batch_mean = ctx.op("mean", x, axes=axes)
    batch_var = ctx.op("var", x, axes=axes, correction=0)
    ctx.set(0, ctx.op("batch_norm", x, batch_mean, batch_var, scale, bias, eps=eps))
    momentum = float(node.attr("momentum", 0.9))
    m, rest = ctx.scalar(momentum, x.dtype), ctx.scalar(1.0 - momentum, x.dtype)
    ctx.set(1, ctx.op("add", ctx.op("mul", mean, m), ctx.op("mul", batch_mean, rest)))
    ctx.set(2, ctx.op("add", ctx.op("mul", var, m), ctx.op("mul", batch_var, rest)))


@converter("InstanceNormalization")
def instance_norm(ctx, node):
    x, scale, bias = ctx.value(0), ctx.value(1), ctx.value(2)
    channels = x.shape[1]
    if not isinstance(channels, int):
        raise ctx.fail(f"the channel count must be static, got {channels}")
    ctx.set(0, ctx.op("group_norm", x, scale, bias, num_groups=channels, eps=float(node.attr("epsilon", 1e-5))))


@converter("GroupNormalization")
def group_norm(ctx, node):
    x, scale, bias = ctx.value(0), ctx.value(1), ctx.value(2)
    groups = int(node.attr("num_groups"))
    eps = float(node.attr("epsilon", 1e-5))
    channels = x.shape[1]
    if ctx.opset >= 21 or (isinstance(scale.shape[0], int) and scale.shape[0] == channels and groups != channels):
        ctx.set(0, ctx.op("group_norm", x, scale, bias, num_groups=groups, eps=eps))
        return
    # opset 18-20: scale and bias hold one value per group; repeat them per channel
    if not isinstance(channels, int):
        raise ctx.fail(f"the channel count must be static, got {channels}")
    per = channels // groups
    y = ctx.op("group_norm", x, num_groups=groups, eps=eps)
    shape = (channels,) + (1,) * (x.rank - 2)

    def per_channel(v):
        v = ctx.op("expand", ctx.op("reshape", v, shape=(groups, 1)), shape=(groups, per))
        return ctx.op("reshape", v, shape=shape)
    ctx.set(0, ctx.op("add", ctx.op("mul", y, per_channel(scale)), per_channel(bias)))


def _normalized_weight(ctx, v, shape):
    """A scale or bias broadcast to the normalized shape (ONNX allows broadcasting)."""
    if v is None or (v.rank == len(shape) and all(a == b for a, b in zip(v.shape, shape))):
        return v
    return ctx.op("expand", v, shape=tuple(shape))


@converter("LayerNormalization")
def layer_norm(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", -1)), x.rank)
    eps = float(node.attr("epsilon", 1e-5))
    norm_shape = x.shape[axis:]
    w = _normalized_weight(ctx, ctx.optional_value(1), norm_shape)
    b = _normalized_weight(ctx, ctx.optional_value(2), norm_shape)
    args = [x] + ([w] if w is not None else []) + ([b] if b is not None else [])
    if w is None and b is not None:
        raise ctx.fail("a bias without a scale is not supported")
    ctx.set(0, ctx.op("layer_norm", *args, num_axes=x.rank - axis, eps=eps))
    if node.has_output(1) or node.has_output(2):
        axes = tuple(range(axis, x.rank))
        mean = ctx.op("mean", x, axes=axes, keepdim=True)
        var = ctx.op("var", x, axes=axes, keepdim=True, correction=0)
        ctx.set(1, mean)
        ctx.set(2, ctx.op("rsqrt", ctx.op("add", var, ctx.scalar(eps, x.dtype))))


@converter("RMSNormalization")
def rms_norm(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", -1)), x.rank)
    w = _normalized_weight(ctx, ctx.optional_value(1), x.shape[axis:])
    args = [x] + ([w] if w is not None else [])
    ctx.set(0, ctx.op("rms_norm", *args, num_axes=x.rank - axis, eps=float(node.attr("epsilon", 1e-5))))


@converter("LRN")
def lrn(ctx, node):
    # square_sum over a channel window, computed as an average pool over a channel "row"
    x = ctx.value(0)
    size = int(node.attr("size"))
    alpha, beta, bias = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)), float(node.attr("bias", 1.0))
    n, c = x.shape[0], x.shape[1]
    rest = product(x.shape[2:])
    sq = ctx.op("reshape", ctx.op("mul", x, x), shape=(n, 1, c, rest))
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    mean = ctx.op("avg_pool", sq, kernel=(size, 1), stride=(1, 1), padding=((lo, hi), (0, 0)),
                  ceil_mode=False, count_include_pad=True)
    square_sum = ctx.op("reshape", mean, shape=x.shape)  # mean = square_sum / size
    base = ctx.op("add", ctx.op("mul", square_sum, ctx.scalar(alpha, x.dtype)), ctx.scalar(bias, x.dtype))
    ctx.set(0, ctx.op("div", x, ctx.op("pow", base, ctx.scalar(beta, x.dtype))))


__all__ = ["window_params"]
