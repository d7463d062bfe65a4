"""Normalizations: layer_norm, rms_norm, group_norm, batch_norm (inference).

Statistics are taken over some axes (which therefore mix) and applied to every
element; the other axes carry.  Optional affine inputs come last and are
positional: ``layer_norm(x, weight)`` or ``layer_norm(x, weight, bias)``.

References copy ``x`` once into the output and normalize it in place; the
per-row statistics are small (accumulated in float32 for float16 inputs).
"""

from __future__ import annotations

import numpy as np

from ..dims import MEAN, Accumulation, AxisSource, DimRecord, MIX, NEW
from ..dtypes import DType
from ..kernel_workspace import TorchWorkspace, acc_dtype, as_elements, strict_casts
from ..layout import torch_is_contiguous
from ..lowering import LoweringContext, all_operands, fill_none, tuple_literal
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, product, sizes_equal
from ..types import TensorType
from ._common import array_result_dtype, carry_from, fail, optional_float, require_float, result_dtype, shape_str


def _acc(xp, dt):
    return xp.dtype("float32") if dt == xp.dtype("float16") else dt


def _check_affine(op: str, ins, first: int, want: tuple[Size, ...], names=("weight", "bias")) -> None:
    for i, name in zip(range(first, len(ins)), names):
        t = ins[i]
        require_float(op, t, f"{name} (input {i})")
        if t.rank != len(want) or not all(sizes_equal(a, b) for a, b in zip(t.shape, want)):
            raise fail(op, f"{name} (input {i}) must have shape {shape_str(want)}, got {t}")


def _fresh_copy(xp, x, dt):
    out = xp.empty(x.shape, dt)
    out[...] = x
    return out


def _normalize_rows(xp, flat, eps):
    """Normalize each row of the 2-D-or-more view ``flat`` over its last axis, in place."""
    acc = _acc(xp, flat.dtype)
    n = flat.shape[-1]
    mean = xp.mean(flat, axis=-1, keepdims=True, dtype=acc)
    flat -= mean
    del mean
    var = xp.einsum("...i,...i->...", flat, flat, dtype=acc)[..., None]
    var /= n
    var += eps
    xp.sqrt(var, out=var)
    flat /= var


def _stats_workspace(rows: Size, outs, count: int = 2) -> Size:
    # ``count`` statistics per row (mean and variance), in the accumulation dtype
    per = 2 if outs[0].dtype.itemsize == 2 else 1
    return count * per * rows


def _rows(ins, attrs) -> Size:
    """Rows a layer or RMS norm normalizes (the product of the leading axes)."""
    return product(ins[0].shape[:ins[0].rank - attrs["num_axes"]])


def _stats_bytes(rows: Size, dtype) -> Size:
    """Mean and reciprocal deviation per row, in ``dtype``."""
    return 2 * rows * dtype.itemsize


# -- layer_norm ---------------------------------------------------------------------------


def _num_axes(op: str, x: TensorType, k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= x.rank:
        raise fail(op, f"num_axes must be an int in [1, {x.rank}] for input {x}, got {k!r}")
    return k


def _layer_norm_infer(ins, attrs):
    x = ins[0]
    require_float("layer_norm", x, "input 0")
    k = _num_axes("layer_norm", x, attrs["num_axes"])
    optional_float("layer_norm", "eps", attrs["eps"], allow_none=False)
    _check_affine("layer_norm", ins, 1, x.shape[x.rank - k:])
    return (TensorType(result_dtype(ins), x.shape),)


def _leading_carry(x: TensorType, n: int, mixed: int) -> tuple:
    """Axes ``0..n-1`` carry from input 0, the remaining ``mixed`` axes mix."""
    return tuple(carry_from(AxisSource(0, k)) for k in range(n)) + (MIX,) * mixed


def _layer_norm_dims(ins, attrs, outs) -> DimRecord:
    x, k = ins[0], attrs["num_axes"]
    return (_leading_carry(x, x.rank - k, k),)


def _layer_norm_ref(xp, x, weight=None, bias=None, num_axes=1, eps=1e-5):
    dt = array_result_dtype(*[a for a in (x, weight, bias) if a is not None])
    out = _fresh_copy(xp, x, dt)
    lead = x.shape[:x.ndim - num_axes]
    _normalize_rows(xp, out.reshape(lead + (-1,)), eps)
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias
    return out


def _layer_norm_input_copy(ins, attrs, outs, strides) -> Size:
    """``native_layer_norm`` reads a contiguous input (``expect_contiguous``): a copy of one
    that is not (a feature slice, a permuted view), every device; an input the lowering
    casts is a fresh, contiguous copy already."""
    x = ins[0]
    if x.dtype != outs[0].dtype or not strides or not strides[0] or not all(isinstance(d, int) for d in x.shape):
        return 0
    return 0 if torch_is_contiguous(tuple(x.shape), tuple(strides[0])) else x.numel() * x.dtype.itemsize


def _normalized_shape(ctx: LoweringContext) -> str:
    """The shape of the last ``num_axes`` axes of x (PyTorch's ``normalized_shape``)."""
    return tuple_literal(ctx.shape(ctx.node.inputs[0])[-ctx.attrs["num_axes"]:])


def _layer_norm_torch(ctx: LoweringContext) -> str:
    x, w, b = fill_none(all_operands(ctx, strict=True), 3)
    return f"F.layer_norm({x}, {_normalized_shape(ctx)}, {w}, {b}, eps={ctx.attr('eps')})"


register(OpDef(
    name="layer_norm", infer=_layer_norm_infer, dims=_layer_norm_dims, reference=_layer_norm_ref,
    num_inputs=(1, 3), attrs={"num_axes": 1, "eps": 1e-5}, torch=_layer_norm_torch,
    workspace=lambda ins, a, outs: _stats_workspace(product(ins[0].shape[:ins[0].rank - a["num_axes"]]), outs),
    # native_layer_norm returns the statistics too: in x's dtype on the CPU, in float on CUDA
    torch_workspace=TorchWorkspace(lowering=strict_casts,
                                   cpu=lambda ins, a, outs: _stats_bytes(_rows(ins, a), outs[0].dtype),
                                   cuda=lambda ins, a, outs: _stats_bytes(_rows(ins, a), acc_dtype(outs[0].dtype)),
                                   aten_layout=_layer_norm_input_copy),
    flops=lambda ins, a, outs: 8 * outs[0].numel(),
    doc="layer_norm(x, weight?, bias?, num_axes=1, eps=1e-5): normalize over the last num_axes axes; "
        "weight and bias have their shape. Carries: every other axis of x."))


# -- rms_norm -----------------------------------------------------------------------------


def _rms_norm_infer(ins, attrs):
    x = ins[0]
    require_float("rms_norm", x, "input 0")
    k = _num_axes("rms_norm", x, attrs["num_axes"])
    optional_float("rms_norm", "eps", attrs["eps"])
    _check_affine("rms_norm", ins, 1, x.shape[x.rank - k:], names=("weight",))
    return (TensorType(result_dtype(ins), x.shape),)


def _rms_norm_ref(xp, x, weight=None, num_axes=1, eps=None):
    dt = array_result_dtype(*[a for a in (x, weight) if a is not None])
    if eps is None:
        eps = float(xp.finfo(dt).eps)  # PyTorch's default
    acc = _acc(xp, dt)
    lead = x.shape[:x.ndim - num_axes]
    xf = x.reshape(lead + (-1,))
    ms = xp.einsum("...i,...i->...", xf, xf, dtype=acc)[..., None]
    ms /= xf.shape[-1]
    ms += eps
    xp.sqrt(ms, out=ms)
    out = xp.divide(xf, ms, dtype=dt).reshape(x.shape)
    if weight is not None:
        out *= weight
    return out


def _rms_norm_torch(ctx: LoweringContext) -> str:
    x, w = fill_none(all_operands(ctx, strict=True), 2)
    return f"F.rms_norm({x}, {_normalized_shape(ctx)}, {w}, eps={ctx.attr('eps')})"


def _rms_norm_cpu_workspace(ins, attrs, outs) -> Size:
    """ATen's CPU rms_norm is composite (in the accumulation dtype): x^2 and its mean, rsqrt,
    x * rsqrt, times the weight, back to x's dtype; its peak beyond the output, stage by stage."""
    out = outs[0]
    acc = acc_dtype(out.dtype)
    full, rows = out.numel() * acc.itemsize, _rows(ins, attrs) * acc.itemsize
    up = full if acc != out.dtype else 0  # x converted to the accumulation dtype
    out_bytes = out.numel() * out.dtype.itemsize
    reduced = acc != out.dtype
    squares = up + full + 2 * rows
    if len(ins) > 1:  # x * rsqrt, then times the weight (converted too)
        scaled = up + full + rows + (full + ins[1].numel() * acc.itemsize if reduced else out_bytes)
    else:
        scaled = up + rows + (full if reduced else out_bytes)
    stages = [squares, scaled] + ([full + out_bytes] if reduced else [])
    peak = stages[0]
    for s in stages[1:]:
        peak = _max(peak, s)
    return _max(peak - out_bytes, 0)


def _max(a: Size, b: Size) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    import sympy
    return sympy.Max(a, b)


register(OpDef(
    name="rms_norm", infer=_rms_norm_infer, dims=_layer_norm_dims, reference=_rms_norm_ref,
    num_inputs=(1, 2), attrs={"num_axes": 1, "eps": None}, torch=_rms_norm_torch,
    workspace=lambda ins, a, outs: _stats_workspace(product(ins[0].shape[:ins[0].rank - a["num_axes"]]), outs, 1),
    # CUDA has a fused kernel: the output and the reciprocal deviation per row, in float
    torch_workspace=TorchWorkspace(lowering=strict_casts, cpu=_rms_norm_cpu_workspace,
                                   cuda=lambda ins, a, outs: _rows(ins, a) * acc_dtype(outs[0].dtype).itemsize),
    flops=lambda ins, a, outs: 4 * outs[0].numel(),
    doc="rms_norm(x, weight?, num_axes=1, eps=None): x / sqrt(mean(x^2) + eps) * weight over the last "
        "num_axes axes; eps=None is the dtype's machine epsilon (as PyTorch). Carries: every other axis of x."))


# -- group_norm ---------------------------------------------------------------------------


def _group_norm_infer(ins, attrs):
    x = ins[0]
    require_float("group_norm", x, "input 0")
    if x.rank < 2:
        raise fail("group_norm", f"input must have rank >= 2 ([N, C, ...]), got {x}")
    g = attrs["num_groups"]
    if isinstance(g, bool) or not isinstance(g, int) or g < 1:
        raise fail("group_norm", f"num_groups must be a positive int, got {g!r}")
    c = x.shape[1]
    if isinstance(c, int) and c % g:
        raise fail("group_norm", f"{c} channels of input {x} do not split into {g} groups")
    optional_float("group_norm", "eps", attrs["eps"], allow_none=False)
    _check_affine("group_norm", ins, 1, (c,))
    return (TensorType(result_dtype(ins), x.shape),)


def _group_norm_dims(ins, attrs, outs) -> DimRecord:
    # a slice of channels is normalized with its whole group: the channel axis mixes
    return (_leading_carry(ins[0], 1, ins[0].rank - 1),)


def _group_norm_ref(xp, x, weight=None, bias=None, num_groups=1, eps=1e-5):
    dt = array_result_dtype(*[a for a in (x, weight, bias) if a is not None])
    out = _fresh_copy(xp, x, dt)
    _normalize_rows(xp, out.reshape(x.shape[0], num_groups, -1), eps)
    per_channel = (slice(None),) + (None,) * (x.ndim - 2)
    if weight is not None:
        out *= weight[per_channel]
    if bias is not None:
        out += bias[per_channel]
    return out


def _group_norm_torch(ctx: LoweringContext) -> str:
    x, w, b = fill_none(all_operands(ctx, strict=True), 3)
    return f"F.group_norm({x}, {ctx.attr('num_groups')}, {w}, {b}, eps={ctx.attr('eps')})"


register(OpDef(
    name="group_norm", infer=_group_norm_infer, dims=_group_norm_dims, reference=_group_norm_ref,
    num_inputs=(1, 3), attrs={"num_groups": REQUIRED, "eps": 1e-5}, torch=_group_norm_torch,
    split_statistics=lambda graph, node: _split_group_norm(graph, node),
    workspace=lambda ins, a, outs: _stats_workspace(ins[0].shape[0] * a["num_groups"], outs),
    # native_group_norm returns mean and rstd per (sample, group): x's dtype on the CPU; in float
    # on CUDA, with per-(sample, channel) scale and shift besides
    torch_workspace=TorchWorkspace(
        lowering=strict_casts,
        cpu=lambda ins, a, outs: _stats_bytes(ins[0].shape[0] * a["num_groups"], outs[0].dtype),
        cuda=lambda ins, a, outs: _stats_bytes(ins[0].shape[0] * (a["num_groups"] + ins[0].shape[1]),
                                               acc_dtype(outs[0].dtype))),
    flops=lambda ins, a, outs: 8 * outs[0].numel(),
    doc="group_norm(x[N, C, ...], weight[C]?, bias[C]?, num_groups, eps=1e-5): normalize each group of "
        "C/num_groups channels over its channels and spatial axes. Carries: N."))


# -- batch_norm ---------------------------------------------------------------------------


def _batch_norm_infer(ins, attrs):
    x = ins[0]
    require_float("batch_norm", x, "input 0")
    if x.rank < 2:
        raise fail("batch_norm", f"input must have rank >= 2 ([N, C, ...]), got {x}")
    optional_float("batch_norm", "eps", attrs["eps"], allow_none=False)
    _check_affine("batch_norm", ins, 1, (x.shape[1],), names=("running_mean", "running_var", "weight", "bias"))
    return (TensorType(result_dtype(ins), x.shape),)


def _batch_norm_dims(ins, attrs, outs) -> DimRecord:
    x = ins[0]
    flows = [carry_from(AxisSource(0, k)) for k in range(x.rank)]
    flows[1] = carry_from(*(AxisSource(i, 0 if i else 1) for i in range(len(ins))))
    return (tuple(flows),)


def _batch_norm_ref(xp, x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    dt = array_result_dtype(*[a for a in (x, running_mean, running_var, weight, bias) if a is not None])
    acc = _acc(xp, dt)
    scale = xp.add(running_var, eps, dtype=acc)
    xp.sqrt(scale, out=scale)
    xp.reciprocal(scale, out=scale)
    if weight is not None:
        scale *= weight
    shift = xp.multiply(running_mean, scale, dtype=acc)
    xp.negative(shift, out=shift)
    if bias is not None:
        shift += bias
    per_channel = (slice(None),) + (None,) * (x.ndim - 2)
    out = xp.multiply(x, scale[per_channel], dtype=dt)
    out += shift[per_channel]
    return out


def _batch_norm_torch(ctx: LoweringContext) -> str:
    x, mean, var, w, b = fill_none(all_operands(ctx, strict=True), 5)
    return f"F.batch_norm({x}, {mean}, {var}, {w}, {b}, training=False, eps={ctx.attr('eps')})"


register(OpDef(
    name="batch_norm", infer=_batch_norm_infer, dims=_batch_norm_dims, reference=_batch_norm_ref,
    num_inputs=(3, 5), attrs={"eps": 1e-5}, flops=lambda ins, a, outs: 2 * outs[0].numel(), torch=_batch_norm_torch,
    # the CPU kernel returns (empty) saved statistics per channel, in float
    torch_workspace=TorchWorkspace(
        lowering=strict_casts, cpu=lambda ins, a, outs: _stats_bytes(ins[0].shape[1], acc_dtype(outs[0].dtype))),
    doc="batch_norm(x[N, C, ...], running_mean[C], running_var[C], weight[C]?, bias[C]?, eps=1e-5): "
        "inference-mode batch norm over channel axis 1. Carries: every axis (C also from the per-channel inputs)."))


# -- group_norm split in two: statistics (an accumulating reduction) and their application --
#
# group_norm mixes its spatial axes: no chunk loop runs through it.  Split in two, its
# statistics accumulate over slices of space (a chunk loop keeps them whole, chunkc.ir.dims
# Accumulation) and the normalization is elementwise along space (a later loop reads the
# small statistics whole).  The statistics are the first two raw moments, E[x] and E[x^2],
# per (sample, group), in float64: moments merge by a share-weighted sum, so the
# accumulator needs no count or running mean (a Welford/Chan merge would need both); each
# slice's moments come from a two-pass mean and variance (var + mean^2), and float64 keeps
# the final var = E[x^2] - E[x]^2 exact to float32 resolution unless |mean| / std > 1e4.


def _moments_infer(ins, attrs):
    x = ins[0]
    _group_norm_infer(ins, {**attrs, "eps": 1e-5})
    return (TensorType(DType.float64, (x.shape[0], attrs["num_groups"], 2)),)


def _moments_dims(ins, attrs, outs) -> DimRecord:
    return ((carry_from(AxisSource(0, 0)), MIX, NEW),)


def _moments_accumulate(ins, attrs, input: int, axis: int) -> Accumulation | None:
    return MEAN if input == 0 and axis >= 2 else None  # over space; a slice of channels cuts groups


def _moments_ref(xp, x, num_groups=1):
    n, c = x.shape[:2]
    # splitting the channel axis is a view at any strides (a reshape to [N, G, -1] copies a slice)
    groups = x.reshape((n, num_groups, c // num_groups) + tuple(x.shape[2:]))
    axes = tuple(range(2, groups.ndim))
    acc = _acc(xp, x.dtype)
    mean = xp.mean(groups, axis=axes, keepdims=True, dtype=acc)
    centered = xp.subtract(groups, mean, dtype=acc)  # the one temporary: x's elements in acc
    xp.multiply(centered, centered, out=centered)
    var = xp.sum(centered, axis=axes, dtype=acc) / max(centered.size // max(n * num_groups, 1), 1)
    del centered
    out = xp.empty((n, num_groups, 2), dtype="float64")
    out[..., 0] = mean.reshape(n, num_groups)
    out[..., 1] = var
    out[..., 1] += out[..., 0] ** 2
    return out


def _moments_block(x: TensorType, groups: int) -> Size:
    """Elements of one (sample, group) block of ``x``: what the lowering hands ATen's kernel at once."""
    return product(x.shape[2:]) * (x.shape[1] // groups)


def _moments_float_kernel(x: TensorType) -> bool:
    return x.dtype in (DType.float32, DType.float64) and x.rank >= 2


def _moments_torch_workspace(ins, attrs, outs) -> Size:
    """rt.group_norm_moments: the normalized block ATen's group-norm kernel writes (dropped);
    other dtypes: var_mean's per-group results and their float64 conversions (small)."""
    x = ins[0]
    if not _moments_float_kernel(x):
        return 3 * outs[0].numel()
    return _moments_block(x, attrs["num_groups"]) * x.dtype.itemsize


def _moments_block_copy(ins, attrs, outs, strides) -> Size:
    """A block that is not dense (a slice of rows of a region input) is copied before the kernel."""
    x = ins[0]
    if not _moments_float_kernel(x) or not strides or not strides[0] or not all(isinstance(d, int) for d in x.shape):
        return 0
    groups = attrs["num_groups"]
    shape = (x.shape[1] // groups,) + tuple(x.shape[2:])
    if torch_is_contiguous(shape, tuple(strides[0][1:])):
        return 0
    return _moments_block(x, groups) * x.dtype.itemsize


def _moments_torch(ctx: LoweringContext) -> str:
    return f"rt.group_norm_moments({ctx.arg(0)}, {ctx.attr('num_groups')})"


register(OpDef(
    name="group_norm_moments", infer=_moments_infer, dims=_moments_dims, reference=_moments_ref,
    attrs={"num_groups": REQUIRED}, torch=_moments_torch, accumulates=_moments_accumulate,
    # the reference's centered copy of x in its accumulation dtype, whatever x's layout
    workspace=lambda ins, a, outs: as_elements(ins[0].numel() * acc_dtype(ins[0].dtype).itemsize, outs),
    torch_workspace=TorchWorkspace(lowering=_moments_torch_workspace, aten_layout=_moments_block_copy),
    flops=lambda ins, a, outs: 3 * ins[0].numel(), saves=(),
    doc="group_norm_moments(x[N, C, ...], num_groups) -> f64[N, num_groups, 2]: E[x] and E[x^2] of each "
        "group (its channels and every spatial axis). Carries: N. Accumulates over the spatial axes "
        "(share-weighted sum)."))


def _apply_infer(ins, attrs):
    x, m = ins[0], ins[1]
    _group_norm_infer([x] + list(ins[2:]), attrs)
    want = (x.shape[0], attrs["num_groups"], 2)
    if m.dtype != DType.float64 or m.rank != 3 or not all(sizes_equal(a, b) for a, b in zip(m.shape, want)):
        raise fail("group_norm_apply", f"moments (input 1) must be f64{shape_str(want)}, got {m}")
    return (TensorType(result_dtype([x] + list(ins[2:])), x.shape),)


def _apply_dims(ins, attrs, outs) -> DimRecord:
    # N carries from x and the moments; a slice of channels would need its groups' moments
    # (positional): the channel axis mixes; space is elementwise
    x = ins[0]
    return ((carry_from(AxisSource(0, 0), AxisSource(1, 0)), MIX)
            + tuple(carry_from(AxisSource(0, k)) for k in range(2, x.rank)),)


def _apply_ref(xp, x, moments, weight=None, bias=None, num_groups=1, eps=1e-5):
    dt = array_result_dtype(*[a for a in (x, weight, bias) if a is not None])
    mean = moments[..., 0]
    rstd = 1.0 / xp.sqrt(xp.maximum(moments[..., 1] - mean * mean, 0.0) + eps)  # [N, G] float64
    per_group = x.shape[1] // num_groups
    scale = xp.repeat(rstd, per_group, axis=1)  # [N, C]
    shift = -xp.repeat(mean, per_group, axis=1) * scale
    if weight is not None:
        scale = scale * weight
        shift = shift * weight
    if bias is not None:
        shift = shift + bias
    scale, shift = scale.astype(dt), shift.astype(dt)
    if xp is np:
        # NumPy buffers a broadcast operand of a strided chunk (up to its 8192-element ufunc
        # buffers, by heuristics no estimate can follow); plane by plane, with scalars, a
        # chunk allocates its output and nothing else
        out = np.empty_like(x, dtype=dt)  # (in x's layout, as the ufunc would)
        # (nested ranges, not np.ndindex: its iterator left a block in CPython's tuple free
        # list per call, once per iteration of a chunk loop, which tracemalloc counts)
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                plane = out[n, c]
                np.multiply(x[n, c], scale[n, c], out=plane)
                plane += shift[n, c]
        return out
    per_channel = (slice(None), slice(None)) + (None,) * (x.ndim - 2)
    out = xp.multiply(x, scale[per_channel], dtype=dt)
    out += shift[per_channel]
    return out


def _apply_torch(ctx: LoweringContext) -> str:
    operands = all_operands(ctx, strict=True)
    operands[1] = ctx.arg(1)  # the float64 moments stay float64
    x, m, w, b = fill_none(operands, 4)
    return f"rt.group_norm_apply({x}, {m}, {w}, {b}, {ctx.attr('num_groups')}, {ctx.attr('eps')})"


register(OpDef(
    name="group_norm_apply", infer=_apply_infer, dims=_apply_dims, reference=_apply_ref,
    num_inputs=(2, 4), attrs={"num_groups": REQUIRED, "eps": 1e-5}, torch=_apply_torch, keeps_layout=True,
    # per-(sample, channel) scale and shift, in float64 and in the result dtype
    workspace=lambda ins, a, outs: 4 * ins[0].shape[0] * ins[0].shape[1],
    torch_workspace=TorchWorkspace(lowering=lambda ins, a, outs: 8 * ins[0].shape[0] * ins[0].shape[1]),
    flops=lambda ins, a, outs: 2 * outs[0].numel(), saves=("inputs",),
    doc="group_norm_apply(x[N, C, ...], moments f64[N, G, 2], weight[C]?, bias[C]?, num_groups, eps=1e-5): "
        "group_norm with the statistics of group_norm_moments. Carries: N and every spatial axis."))


def _split_group_norm(graph, node):
    """group_norm as group_norm_moments (accumulates over space) + group_norm_apply."""
    x, affine = node.inputs[0], list(node.inputs[1:])
    stats = graph.add_node("group_norm_moments", [x], {"num_groups": node.attrs["num_groups"]},
                           name=f"{node.name}_moments", before=node, source=node.source)
    apply = graph.add_node("group_norm_apply", [x, stats.outputs[0]] + affine, dict(node.attrs),
                           name=f"{node.name}_apply", before=node, source=node.source)
    return stats, apply, (0,) + tuple(range(2, 2 + len(affine)))
