"""Neural-network ops: Conv, ConvTranspose, pooling, normalizations, LRN.

Padding follows ONNX: explicit ``pads`` ``[b1.., e1..]`` become (begin, end)
pairs; ``auto_pad`` SAME_UPPER/SAME_LOWER is resolved from the input's
spatial sizes (symbolic sizes are fine at stride 1).
"""

from __future__ import annotations

import math

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


@converter("MaxPool")
def max_pool(ctx, node):
    if node.has_output(1):
        raise ctx.fail("the Indices output is not supported")
    if int(node.attr("storage_order", 0)):
        raise ctx.fail("storage_order=1 only matters for Indices, which is not supported")
    x = ctx.value(0)
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    ctx.set(0, ctx.op("max_pool", x, kernel=kernel, stride=strides, padding=pairs, dilation=dilations,
                      ceil_mode=bool(node.attr("ceil_mode", 0))))


@converter("AveragePool")
def avg_pool(ctx, node):
    x = ctx.value(0)
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    if any(d != 1 for d in dilations):
        raise ctx.fail(f"dilations {dilations} are not supported for average pooling")
    ctx.set(0, ctx.op("avg_pool", x, kernel=kernel, stride=strides, padding=pairs,
                      ceil_mode=bool(node.attr("ceil_mode", 0)),
                      count_include_pad=bool(node.attr("count_include_pad", 0))))


@converter("LpPool")
def lp_pool(ctx, node):
    # (sum over the window of |x|^p)^(1/p): zero padding adds nothing to the sum
    x = ctx.value(0)
    p = float(node.attr("p", 2))
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    strides, dilations, pairs = window_params(ctx, node, x.shape[2:], kernel)
    if any(d != 1 for d in dilations) or int(node.attr("ceil_mode", 0)):
        raise ctx.fail("dilations and ceil_mode are not supported for LpPool")
    powered = ctx.op("pow", ctx.op("abs", x), ctx.scalar(p, x.dtype))
    mean = ctx.op("avg_pool", powered, kernel=kernel, stride=strides, padding=pairs, ceil_mode=False,
                  count_include_pad=True)
    total = ctx.op("mul", mean, ctx.scalar(float(math.prod(kernel)), x.dtype))
    ctx.set(0, ctx.op("pow", total, ctx.scalar(1.0 / p, x.dtype)))


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node):
    x = ctx.value(0)
    op = "mean" if node.op_type == "GlobalAveragePool" else "amax"
    ctx.set(0, ctx.op(op, x, axes=tuple(range(2, x.rank)), keepdim=True))


# -- normalizations ---------------------------------------------------------------------------


@converter("BatchNormalization")
def batch_norm(ctx, node):
    if int(node.attr("training_mode", 0)) or any(node.has_output(i) for i in (1, 2)):
        raise ctx.fail("training mode (batch statistics, running-stat outputs) is not supported; "
                       "export the model in eval mode")
    x, scale, bias, mean, var = (ctx.value(i) for i in range(5))
    ctx.set(0, ctx.op("batch_norm", x, mean, var, scale, bias, eps=float(node.attr("epsilon", 1e-5))))


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
