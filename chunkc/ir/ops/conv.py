"""Convolutions: conv and conv_transpose, 1-D/2-D/3-D by rank, with groups.

``conv(x[N, C, *S], w[O, C/groups, *K], b[O]?)``: the batch axis carries from
x; the output-channel axis carries from w (and b) when ``groups == 1`` (with
groups, a slice of output channels needs its group's input channels, and the
sliced op would need another ``groups``); a spatial axis carries only when its
windows tile the input (see :mod:`._window`), e.g. a 1x1 or a patchify conv.

The references loop over kernel offsets: for each, one batched matmul over
channels on a strided view of the input, added into the output, so that the
only temporaries are one input slab and one output slab per batch item.
"""

from __future__ import annotations

import itertools

from ..dims import AxisSource, DimRecord, MIX
from ..dtypes import DType
from ..kernel_workspace import TorchWorkspace, cast_copies, cpu_threads, mkldnn_takes, onednn_channel_block
from ..layout import torch_is_channels_last, torch_is_contiguous, torch_suggests_channels_last
from ..lowering import LoweringContext, all_operands, fill_none
from ..registry import OpDef, register
from ..sizes import Size, format_size, normalize, product, sizes_equal
from ..types import TensorType
from ._common import array_result_dtype, carry_from, fail, int_tuple, require_float, result_dtype
from ._window import Window, gather_ranges, output_size, pad_spec, scatter_ranges, spatial_flow, window, window_flow

_WIN_ATTRS = {"stride": None, "padding": None, "dilation": None, "groups": 1}


def _divides(g: int, n: Size) -> bool:
    return not isinstance(n, int) or n % g == 0


def _common_checks(op: str, ins) -> tuple[TensorType, TensorType, int]:
    x, w = ins[0], ins[1]
    require_float(op, x, "input 0")
    require_float(op, w, "weight (input 1)")
    if x.rank not in (3, 4, 5):
        raise fail(op, f"input 0 must be [N, C, *spatial] with 1 to 3 spatial axes, got {x}")
    if w.rank != x.rank:
        raise fail(op, f"weight (input 1) {w} must have the rank of input 0 {x} ({x.rank})")
    if not all(isinstance(k, int) for k in w.shape[2:]):
        raise fail(op, f"weight (input 1) {w} must have static kernel sizes")
    return x, w, x.rank - 2


def _groups(op: str, groups) -> int:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise fail(op, f"groups must be a positive int, got {groups!r}")
    return groups


def _check_bias(op: str, ins, channels: Size) -> None:
    if len(ins) == 3:
        b = ins[2]
        if b.rank != 1 or not sizes_equal(b.shape[0], channels):
            raise fail(op, f"bias (input 2) must have shape [{format_size(channels)}], got {b}")


# -- conv -----------------------------------------------------------------------------------


def _conv_parts(ins, attrs) -> tuple[Window, tuple[Size, ...]]:
    x, w, nsp = _common_checks("conv", ins)
    g = _groups("conv", attrs["groups"])
    win = window("conv", nsp, tuple(w.shape[2:]),
                 attrs["stride"], attrs["padding"], attrs["dilation"])
    c, o = x.shape[1], w.shape[0]
    if not _divides(g, c) or not _divides(g, o):
        raise fail("conv", f"groups={g} must divide the input channels {format_size(c)} of {x} "
                           f"and the output channels {format_size(o)} of weight {w}")
    if not sizes_equal(normalize(w.shape[1] * g), c):
        raise fail("conv", f"weight {w} has {format_size(w.shape[1])} input channels per group; input {x} with "
                           f"groups={g} needs {format_size(c)}/{g}")
    _check_bias("conv", ins, o)
    out = tuple(output_size("conv", x.shape[2 + a], win, a, what=f"input {x}: ") for a in range(nsp))
    return win, (x.shape[0], o) + out


def _conv_infer(ins, attrs):
    _, shape = _conv_parts(ins, attrs)
    return (TensorType(result_dtype(ins), shape),)


def _conv_dims(ins, attrs, outs) -> DimRecord:
    win, shape = _conv_parts(ins, attrs)
    x = ins[0]
    flows = [carry_from(AxisSource(0, 0))]
    flows.append(carry_from(*(AxisSource(i, 0) for i in range(1, len(ins)))) if attrs["groups"] == 1 else MIX)
    for a in range(win.rank):
        flows.append(spatial_flow(2 + a, x.shape[2 + a], shape[2 + a], win, a)
                     or window_flow(2 + a, win, a, "padding") or MIX)
    return (tuple(flows),)


def _conv_flops(ins, attrs, outs) -> Size:
    w = ins[1]
    return 2 * outs[0].numel() * product(w.shape[1:])


# Python objects the NumPy reference keeps while it runs (views of the slabs and weights, index
# tuples of the window offsets): measured 4.1-4.4 KiB at every size (tracemalloc counts them)
_REFERENCE_OBJECTS = 4608


def _conv_workspace(ins, attrs, outs) -> Size:
    # one input slab [C, *out_spatial] and one output slab [O, *out_spatial] for one batch item
    o = outs[0]
    return normalize((ins[0].shape[1] + o.shape[1]) * product(o.shape[2:]) + _REFERENCE_OBJECTS // o.dtype.itemsize)


def _init_output(xp, shape, dt, b):
    if b is None:
        return xp.zeros(shape, dt)
    out = xp.empty(shape, dt)
    out[...] = b[(slice(None),) + (None,) * (len(shape) - 2)]
    return out


def _conv_ref(xp, x, w, b=None, stride=None, padding=None, dilation=None, groups=1):
    nsp = x.ndim - 2
    win = window("conv", nsp, tuple(w.shape[2:]), stride, padding, dilation)
    n, c = x.shape[:2]
    o = w.shape[0]
    out_sp = tuple([output_size("conv", x.shape[2 + a], win, a) for a in range(nsp)])
    result_dt = array_result_dtype(*[a for a in (x, w, b) if a is not None])
    # float16 sums accumulate in float32 (as PyTorch and ONNX do), cast once at the end
    dt = xp.dtype("float32") if result_dt == xp.dtype("float16") else result_dt
    out = _init_output(xp, (n, o) + out_sp, dt, b)
    cells = 1
    for s in out_sp:
        cells *= s
    slab_in = xp.empty(c * cells, dt)
    slab_out = xp.empty(o * cells, dt)
    wg = w.reshape((groups, o // groups, c // groups) + tuple(w.shape[2:]))
    for offset in itertools.product(*[range(k) for k in w.shape[2:]]):
        ranges = gather_ranges(x.shape[2:], out_sp, offset, win)
        if ranges is None:
            continue
        dst, src = ranges
        sub = tuple([r.stop - r.start for r in dst])
        p = 1
        for s in sub:
            p *= s
        w_off = wg[(slice(None),) * 3 + offset]  # [G, O/G, C/G]
        xs = slab_in[:c * p].reshape((c,) + sub)
        ys = slab_out[:o * p].reshape(groups, o // groups, p)
        for i in range(n):
            xs[...] = x[(i, slice(None)) + src]
            xp.matmul(w_off, xs.reshape(groups, c // groups, p), out=ys)
            out[(i, slice(None)) + dst] += ys.reshape((o,) + sub)
    return out if dt == result_dt else out.astype(result_dt)


# -- what PyTorch's convolutions allocate besides the output (CPU; cuDNN's workspace is not
# modelled) ----------------------------------------------------------------------------------


def _concrete_ints(*sizes) -> bool:
    return all(isinstance(s, int) for s in sizes)


def _uses_mkldnn(x_shape, w_shape, win: Window, groups: int, dtype) -> bool:
    """ATen's choice of oneDNN over its own "slow" kernels (ConvParams::use_mkldnn), on the
    4-d view of the call (a 1-d convolution runs as a 2-d one of height 1)."""
    if not mkldnn_takes(dtype):
        return False
    if dtype != DType.float32:
        return True
    if len(x_shape) == 3:
        x_shape, w_shape = (x_shape[0], x_shape[1], 1, x_shape[2]), (w_shape[0], w_shape[1], 1, w_shape[2])
    n = x_shape[0]
    strided = any(s != 1 for s in win.stride)
    dilated = any(d != 1 for d in win.dilation)
    first = strided or dilated or n >= 16 or w_shape[-1] != 1 or w_shape[-2] != 1 or cpu_threads() > 1
    second = groups > 1 or (w_shape[-1] > 3 and w_shape[-2] > 3) or n > 1 or product(x_shape[:4]) > 20480
    return bool(first and second)


def _conv_cpu_bytes(x: TensorType, w: TensorType, win: Window, groups: int, out: TensorType,
                    transposed: bool, bias: bool = False) -> Size:
    """The CPU kernel's peak beyond the output for a call on ``x`` (already padded) with
    PyTorch's symmetric padding ``win``."""
    if not _concrete_ints(*x.shape, *w.shape, *out.shape):
        return 0
    item = out.dtype.itemsize
    taps = product(win.kernel)
    if _uses_mkldnn(x.shape, w.shape, win, groups, out.dtype):
        return _onednn_bytes(x, w, out, win, groups, transposed, bias)
    nsp = win.rank
    if transposed:  # columns of one sample: [out channels x taps, input positions]
        return out.shape[1] * taps * product(x.shape[2:]) * item
    plain = all(k == 1 for k in win.kernel) and all(s == 1 for s in win.stride) and \
        all(p == (0, 0) for p in win.padding)
    if plain and nsp < 3:
        return 0  # a 1x1 convolution multiplies the input as it is
    columns = x.shape[1] * taps * product(out.shape[2:]) * item  # im2col of one sample
    dilated = any(d != 1 for d in win.dilation)
    return columns if dilated else x.shape[0] * columns


# bytes beyond the input in the scratch pad of a strided transposed convolution: 28 to 64 KiB
# were seen, varying with the shapes in a way not modelled
ONEDNN_STRIDED_SCRATCH = 80 * 1024


def _onednn_bytes(x: TensorType, w: TensorType, out: TensorType, win: Window, groups: int, transposed: bool,
                  bias: bool) -> int:
    """oneDNN, as PyTorch calls it: the input reordered to a channel-blocked layout (from a
    block of channels up; always when transposed), the weight too (output channels padded
    to a block), the result computed into a blocked buffer, then copied into the output (a
    strided transposed one through a second copy).  Measured with AVX-512 (16-channel
    blocks); grouped convolutions of a few channels per group may choose other layouts."""
    block = onednn_channel_block()
    item = out.dtype.itemsize

    def up(c: int) -> int:
        return -(-c // block) * block

    c_in, c_out = x.shape[1], out.shape[1]
    blocked_in = transposed or c_in >= block or groups == c_in  # depthwise: blocked too
    src = x.shape[0] * up(c_in) * product(x.shape[2:]) * item if blocked_in else 0
    per_group = w.shape[1] if not transposed else c_in  # input channels the weight holds per output one
    weight = up(c_out) * (up(c_in) if blocked_in and groups == 1 else per_group) * product(win.kernel) * item
    strided = transposed and any(s != 1 for s in win.stride)
    # a strided transposed result is not channel-padded (measured: its peak is three outputs)
    dst = out.shape[0] * (c_out if strided else up(c_out)) * product(out.shape[2:]) * item
    out_b = out.numel() * item
    scratch_pad = strided and groups == 1 and all(d == 1 for d in win.dilation)
    scratch = 0
    if transposed:  # a second blocked result to add the bias to; a scratch pad when strided (the
        # input and a part that varies with the shapes, bounded by ONEDNN_STRIDED_SCRATCH)
        scratch = (dst + 32 * item if bias else 0) + (src + ONEDNN_STRIDED_SCRATCH if scratch_pad else 0)
    return max(scratch + src + weight + dst, dst + out_b + (out_b if strided else 0)) - out_b


def _padded(x: TensorType, win: Window) -> TensorType:
    return x.with_shape(x.shape[:2] + tuple(normalize(x.shape[2 + a] + b + e) for a, (b, e) in enumerate(win.padding)))


def _conv_lowering_bytes(ins, attrs, outs) -> Size:
    """The lowering's own: operands converted to the output's dtype, and the padded input
    when the padding differs at the two ends of an axis."""
    win, _ = _conv_parts(ins, attrs)
    total = cast_copies(ins, outs[0].dtype)
    if not win.symmetric:
        total = total + _padded(ins[0], win).numel() * outs[0].dtype.itemsize
    return normalize(total)


def _conv_cpu_workspace(ins, attrs, outs) -> Size:
    win, _ = _conv_parts(ins, attrs)
    x = ins[0].with_dtype(outs[0].dtype)
    if not win.symmetric:  # F.pad, then a convolution without padding
        x = _padded(x, win)
        win = Window(win.kernel, win.stride, win.dilation, ((0, 0),) * win.rank)
    return _conv_cpu_bytes(x, ins[1], win, attrs["groups"], outs[0], transposed=False)


def _conv_cuda_workspace(ins, attrs, outs) -> Size:
    """cuDNN's copies into the channels-last layout, as measured on an H200 (cuDNN 9.19,
    PyTorch 2.11): a 2-d convolution of one group with a kernel larger than 1 x 1 copies, in
    float, its input and weight when it has 64 output channels or more; in half floats, its
    input, weight and result when the input channels are a multiple of 8.  Other convolutions
    run in their own layout.  (cuDNN's heuristics choose among algorithms whose workspace
    differs; a large float one can take more, e.g. 2.25 MiB more at 320 channels.)"""
    win, _ = _conv_parts(ins, attrs)
    x, w, out = ins[0].with_dtype(outs[0].dtype), ins[1], outs[0]
    if win.rank != 2 or attrs["groups"] != 1 or all(k == 1 for k in win.kernel):
        return 0
    if not _concrete_ints(*x.shape, *w.shape, *out.shape):
        return 0
    if not win.symmetric:
        x = _padded(x, win)
    item = out.dtype.itemsize
    if out.dtype in (DType.float16, DType.bfloat16):
        return (x.numel() + w.numel() + out.numel()) * item if x.shape[1] % 8 == 0 else 0
    return (x.numel() + w.numel()) * item if w.shape[0] >= 64 else 0


def _conv_input_copy(ins, attrs, outs, strides) -> Size:
    """``_convolution`` makes its input dense before any backend runs: a copy of an input
    that is neither contiguous nor channels-last (rank 4 or 5; a 1-d convolution's input has
    rank 3, so only contiguous) -- a sequence model's ``[B, L, D] -> [B, D, L]`` permute, or a
    chunk of channels.  An input the lowering pads or casts is a fresh, contiguous one."""
    win, _ = _conv_parts(ins, attrs)
    return 0 if not win.symmetric else _dense_input_copy(ins, outs, strides)


def _conv_slow_channels_last_copy(ins, attrs, outs, strides) -> Size:
    """ATen's own ("slow") 2-d CPU kernel runs in channels-last when its input's strides
    suggest that layout (a permuted ``[N, H, W, C]`` view, or a slice of one): it then copies
    the weight into channels-last first (a weight of one tap per channel is already both;
    measured: the weight's bytes beyond the columns, tests/test_conv_layout.py).  oneDNN's
    path (large or multi-threaded calls) takes the weight as it is."""
    win, _ = _conv_parts(ins, attrs)
    x, w = ins[0].with_dtype(outs[0].dtype), ins[1]
    if win.rank != 2 or not strides or len(strides) < 2 or not strides[0] or not strides[1]:
        return 0
    if not _concrete_ints(*x.shape, *w.shape) or any(d != 1 for d in win.dilation):
        return 0
    if not win.symmetric:  # F.pad keeps the layout its input suggests
        x = _padded(x, win)
    if _uses_mkldnn(x.shape, w.shape, win, attrs["groups"], outs[0].dtype):
        return 0
    if not torch_suggests_channels_last(tuple(x.shape), tuple(strides[0])):
        return 0
    if torch_is_channels_last(tuple(w.shape), tuple(strides[1])):
        return 0
    return w.numel() * outs[0].dtype.itemsize


def _dense_input_copy(ins, outs, strides) -> Size:
    """The bytes of input 0 when ``_convolution`` copies it (neither contiguous nor
    channels-last); none when the lowering casts it (a fresh, contiguous input)."""
    x = ins[0]
    if x.dtype != outs[0].dtype or not strides or not strides[0] or not _concrete_ints(*x.shape):
        return 0
    shape, st = tuple(x.shape), tuple(strides[0])
    if torch_is_contiguous(shape, st) or torch_is_channels_last(shape, st):
        return 0
    return x.numel() * x.dtype.itemsize


def _in_types(ctx: LoweringContext):
    return [v.type for v in ctx.node.inputs]


def _conv_torch(ctx: LoweringContext) -> str:
    win, _ = _conv_parts(_in_types(ctx), ctx.attrs)
    nsp = win.rank
    x, w, b = fill_none(all_operands(ctx, strict=True), 3)
    if win.symmetric:
        pad = ctx.lit(tuple(p for p, _ in win.padding))
    else:  # PyTorch pads both sides alike: pad first, then convolve without padding
        x = f"F.pad({x}, {pad_spec(ctx, win.padding)})"
        pad = ctx.lit((0,) * nsp)
    return (f"F.conv{nsp}d({x}, {w}, {b}, stride={ctx.lit(win.stride)}, padding={pad}, "
            f"dilation={ctx.lit(win.dilation)}, groups={ctx.attr('groups')})")


register(OpDef(
    name="conv", infer=_conv_infer, dims=_conv_dims, reference=_conv_ref, num_inputs=(2, 3), attrs=_WIN_ATTRS,
    flops=_conv_flops, workspace=_conv_workspace, torch=_conv_torch,
    torch_workspace=TorchWorkspace(lowering=_conv_lowering_bytes, cpu=_conv_cpu_workspace,
                                   cuda=_conv_cuda_workspace, aten_layout=_conv_input_copy,
                                   cpu_layout=_conv_slow_channels_last_copy),
    doc="conv(x[N, C, *S], w[O, C/groups, *K], b[O]?, stride=None, padding=None, dilation=None, groups=1): "
        "cross-correlation with 1 to 3 spatial axes; stride/dilation are tuples per spatial axis (None: 1), "
        "padding a tuple of (begin, end) pairs (None: 0). Carries: N from x; O from w (and b) when groups == 1; "
        "a spatial axis whose windows tile the input without padding (ratio stride); any other spatial axis "
        "is a window (its slices overlap by a halo; zero padding)."))


# -- conv_transpose ---------------------------------------------------------------------------


def _conv_t_parts(ins, attrs) -> tuple[Window, tuple[int, ...], tuple[Size, ...]]:
    x, w, nsp = _common_checks("conv_transpose", ins)
    g = _groups("conv_transpose", attrs["groups"])
    win = window("conv_transpose", nsp, tuple(w.shape[2:]),
                 attrs["stride"], attrs["padding"], attrs["dilation"])
    op = attrs["output_padding"]
    op = int_tuple("conv_transpose", "output_padding", (0,) * nsp if op is None else op, nsp)
    for a in range(nsp):
        if op[a] >= max(win.stride[a], win.dilation[a]):
            raise fail("conv_transpose", f"output_padding {op} must be smaller than stride or dilation on each axis")
    c, o = x.shape[1], normalize(w.shape[1] * g)
    if not sizes_equal(w.shape[0], c):
        raise fail("conv_transpose", f"weight {w} must have {format_size(c)} input channels (axis 0) for input {x}")
    if not _divides(g, c):
        raise fail("conv_transpose", f"groups={g} must divide the input channels {format_size(c)} of {x}")
    _check_bias("conv_transpose", ins, o)
    out = []
    for a in range(nsp):
        pb, pe = win.padding[a]
        size = normalize((x.shape[2 + a] - 1) * win.stride[a] - pb - pe + win.effective(a) + op[a])
        if isinstance(size, int) and size < 1:
            raise fail("conv_transpose", f"spatial axis {a} of input {x} gives an output of size {size}")
        out.append(size)
    return win, op, (x.shape[0], o) + tuple(out)


def _conv_t_infer(ins, attrs):
    _, _, shape = _conv_t_parts(ins, attrs)
    return (TensorType(result_dtype(ins), shape),)


def _conv_t_dims(ins, attrs, outs) -> DimRecord:
    win, op, shape = _conv_t_parts(ins, attrs)
    x = ins[0]
    flows = [carry_from(AxisSource(0, 0))]
    if attrs["groups"] == 1:
        flows.append(carry_from(AxisSource(1, 1), *((AxisSource(2, 0),) if len(ins) == 3 else ())))
    else:
        flows.append(MIX)
    for a in range(win.rank):
        flows.append(spatial_flow(2 + a, x.shape[2 + a], shape[2 + a], win, a, transposed=True,
                                  output_padding=op[a]) or MIX)
    return (tuple(flows),)


def _conv_t_workspace(ins, attrs, outs) -> Size:
    # one output-channel slab over the input's spatial positions, per batch item
    return normalize(outs[0].shape[1] * product(ins[0].shape[2:]))


def _conv_t_ref(xp, x, w, b=None, stride=None, padding=None, output_padding=None, dilation=None, groups=1):
    nsp = x.ndim - 2
    win = window("conv_transpose", nsp, tuple(w.shape[2:]), stride, padding, dilation)
    op = output_padding or (0,) * nsp
    n, c = x.shape[:2]
    og = w.shape[1]
    o = og * groups
    out_sp = tuple([(x.shape[2 + a] - 1) * win.stride[a] - int(win.padding[a][0]) - int(win.padding[a][1])
                    + win.effective(a) + op[a] for a in range(nsp)])
    result_dt = array_result_dtype(*[a for a in (x, w, b) if a is not None])
    # float16 sums accumulate in float32 (as PyTorch and ONNX do), cast once at the end
    dt = xp.dtype("float32") if result_dt == xp.dtype("float16") else result_dt
    out = _init_output(xp, (n, o) + out_sp, dt, b)
    cells = 1
    for s in x.shape[2:]:
        cells *= s
    ys = xp.empty(o * cells, dt).reshape(groups, og, cells)
    wg = w.reshape((groups, c // groups, og) + tuple(w.shape[2:]))
    for offset in itertools.product(*[range(k) for k in w.shape[2:]]):
        ranges = scatter_ranges(x.shape[2:], out_sp, offset, win)
        if ranges is None:
            continue
        src, dst = ranges
        w_off = wg[(slice(None),) * 3 + offset].swapaxes(-1, -2)  # [G, O/G, C/G]
        for i in range(n):
            xp.matmul(w_off, x[i].reshape(groups, c // groups, cells), out=ys)
            out[(i, slice(None)) + dst] += ys.reshape((o,) + tuple(x.shape[2:]))[(slice(None),) + src]
    return out


def _conv_t_full(ins, attrs, outs) -> TensorType:
    """The output before rt.conv_transpose crops it (padding that differs at the two ends of
    an axis is cropped after a transposed convolution without padding)."""
    win, _, shape = _conv_t_parts(ins, attrs)
    full = tuple(normalize(shape[2 + a] + b + e) for a, (b, e) in enumerate(win.padding))
    return outs[0].with_shape(shape[:2] + full)


def _conv_t_lowering_bytes(ins, attrs, outs) -> Size:
    win, _, _ = _conv_t_parts(ins, attrs)
    total = cast_copies(ins, outs[0].dtype)
    if not win.symmetric:  # the uncropped output, copied into the cropped one
        total = total + _conv_t_full(ins, attrs, outs).numel() * outs[0].dtype.itemsize
    return normalize(total)


def _conv_t_cpu_workspace(ins, attrs, outs) -> Size:
    win, _, _ = _conv_t_parts(ins, attrs)
    out = outs[0]
    if not win.symmetric:
        out = _conv_t_full(ins, attrs, outs)
        win = Window(win.kernel, win.stride, win.dilation, ((0, 0),) * win.rank)
    return _conv_cpu_bytes(ins[0].with_dtype(out.dtype), ins[1], win, attrs["groups"], out, transposed=True,
                           bias=len(ins) == 3)


def _conv_t_torch(ctx: LoweringContext) -> str:
    win, out_pad, _ = _conv_t_parts(_in_types(ctx), ctx.attrs)
    x, w, b = fill_none(all_operands(ctx, strict=True), 3)
    if win.symmetric:
        return (f"F.conv_transpose{win.rank}d({x}, {w}, {b}, stride={ctx.lit(win.stride)}, "
                f"padding={ctx.lit(tuple(p for p, _ in win.padding))}, output_padding={ctx.lit(out_pad)}, "
                f"groups={ctx.attr('groups')}, dilation={ctx.lit(win.dilation)})")
    return (f"rt.conv_transpose({x}, {w}, {b}, {ctx.lit(win.stride)}, {ctx.lit(win.padding)}, {ctx.lit(out_pad)}, "
            f"{ctx.attr('groups')}, {ctx.lit(win.dilation)})")


register(OpDef(
    name="conv_transpose", infer=_conv_t_infer, dims=_conv_t_dims, reference=_conv_t_ref, num_inputs=(2, 3),
    attrs={**_WIN_ATTRS, "output_padding": None}, workspace=_conv_t_workspace, torch=_conv_t_torch,
    # _convolution makes the input dense first, as for conv (rt.conv_transpose crops the output
    # of an asymmetric padding: its input is passed as it is)
    torch_workspace=TorchWorkspace(lowering=_conv_t_lowering_bytes, cpu=_conv_t_cpu_workspace,
                                   aten_layout=lambda ins, attrs, outs, strides: _dense_input_copy(ins, outs, strides)),
    flops=lambda ins, a, outs: 2 * ins[0].numel() * product(ins[1].shape[1:]),
    doc="conv_transpose(x[N, C, *S], w[C, O/groups, *K], b[O]?, stride, padding, output_padding, dilation, "
        "groups=1): the adjoint of conv; output size (S-1)*stride - pad_begin - pad_end + dilation*(K-1) "
        "+ output_padding + 1. Carries: N from x; O from w (and b) when groups == 1; a spatial axis whose "
        "kernel exactly fills one stride without padding (ratio 1/stride)."))
