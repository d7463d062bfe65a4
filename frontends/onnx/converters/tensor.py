"""Tensor ops: Concat, Split, Slice, Gather (and GatherElements, GatherND),
Scatter*, Pad, Tile, ConstantOfShape, Range, Trilu, OneHot, EyeLike, TopK,
CumSum, ArgMax/ArgMin, Hardmax.

Inputs that ONNX passes as tensors but chunkc needs as attributes (split
sizes, slice bounds, pads, repeats, K) must be known at import time; they
usually are (constants, or arithmetic on shapes).
"""

from __future__ import annotations

import math

import numpy as np

from chunkc.ir.dtypes import DType
from chunkc.ir.sizes import Size, ceildiv, normalize

from .. import folding as F
from ..types import to_dtype
from .registry import converter
from .shape import norm_axis

INT_BIG = 2**62  # ONNX exporters write INT64_MAX / INT64_MIN for "to the end"


# -- Concat -----------------------------------------------------------------------------


def _concat_fold(ctx, arrays):
    present = [a for a in arrays if a is not None]
    axis = norm_axis(ctx, int(ctx.node.attr("axis")), present[0].ndim)
    if F.is_symbolic(*present):
        present = [F.to_object(a) for a in present]
    return [(np.concatenate(present, axis=axis), ctx.dtype(0))]


@converter("Concat", fold=_concat_fold)
def concat(ctx, node):
    values = [ctx.value(i) for i in range(len(node.inputs)) if ctx.has(i)]
    axis = norm_axis(ctx, int(node.attr("axis")), values[0].rank)
    nonempty = [v for v in values if not (isinstance(v.shape[axis], int) and v.shape[axis] == 0)]
    if len(nonempty) == 1:
        ctx.set(0, ctx.op("copy", nonempty[0]))
    else:
        ctx.set(0, ctx.op("concat", *(nonempty or values[:1]), axis=axis))


# -- Split ------------------------------------------------------------------------------


def _split_sizes(ctx, node, dim: Size) -> tuple[Size, ...]:
    n_out = len(node.outputs)
    split = node.attr("split")
    if split is None and ctx.has(1):
        split = ctx.static_sizes(1, "split")
    if split is not None:
        return tuple(normalize(s) for s in split)
    n = int(node.attr("num_outputs", n_out))
    if isinstance(dim, int):
        chunk = -(-dim // n)
        sizes = [min(chunk, max(dim - k * chunk, 0)) for k in range(n)]
        return tuple(sizes)
    return tuple([normalize(ceildiv(dim, n))] * (n - 1) + [normalize(dim - (n - 1) * ceildiv(dim, n))])


def _split_fold(ctx, arrays):
    x = arrays[0]
    axis = norm_axis(ctx, int(ctx.node.attr("axis", 0)), x.ndim)
    sizes = _split_sizes(ctx, ctx.node, x.shape[axis])
    if not all(isinstance(s, int) for s in sizes):
        return None
    bounds = np.cumsum(sizes)[:-1]
    return [(part, ctx.dtype(0)) for part in np.split(x, bounds, axis=axis)]


@converter("Split", fold=_split_fold)
def split(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", 0)), x.rank)
    sizes = _split_sizes(ctx, node, x.shape[axis])
    if len(sizes) != len(node.outputs):
        raise ctx.fail(f"splits into {len(sizes)} parts {sizes} but has {len(node.outputs)} outputs")
    if len(sizes) == 1:
        ctx.set(0, ctx.op("copy", x))
        return
    outs = ctx.op("split", x, sizes=sizes, axis=axis)
    ctx.set_all(outs)


# -- Slice ------------------------------------------------------------------------------


def _slice_params(ctx, node, rank):
    if ctx.opset < 10 and node.attr("starts") is not None:
        starts, ends = node.attr("starts"), node.attr("ends")
        axes, steps = node.attr("axes"), None
    else:
        starts = ctx.static_sizes(1, "starts")
        ends = ctx.static_sizes(2, "ends")
        axes = ctx.static_ints(3, "axes") if ctx.has(3) else None
        steps = ctx.static_ints(4, "steps") if ctx.has(4) else None
    axes = tuple(range(len(starts))) if axes is None else tuple(axes)
    steps = (1,) * len(starts) if steps is None else tuple(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.fail(f"starts, ends, axes and steps differ in length: {len(starts)}, {len(ends)}, {len(axes)}, {len(steps)}")
    out = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ctx.fail("a slice step is 0")
        out.append((norm_axis(ctx, a, rank), s, e, int(st)))
    return out


def _slice_fold(ctx, arrays):
    x = arrays[0]
    index = [slice(None)] * x.ndim
    for axis, s, e, st in _slice_params(ctx, ctx.node, x.ndim):
        if not (isinstance(s, int) and isinstance(e, int)):
            return None
        index[axis] = slice(_clip_big(s), _clip_big(e), st)
    return [(x[tuple(index)], ctx.dtype(0))]


def _clip_big(v: int) -> int | None:
    return None if abs(v) >= INT_BIG else v


@converter("Slice", fold=_slice_fold)
def slice_(ctx, node):
    x = ctx.value(0)
    for axis, s, e, st in _slice_params(ctx, node, x.rank):
        x = slice_axis(ctx, x, axis, s, e, st)
    ctx.set(0, x if x is not ctx.value(0) else ctx.op("copy", x))


def slice_axis(ctx, x, axis: int, start: Size, end: Size, step: int):
    """``x[start:end:step]`` along ``axis`` with ONNX's clamping, steps of either sign."""
    dim = x.shape[axis]
    if step > 0:
        if isinstance(dim, int) and isinstance(start, int) and isinstance(end, int):
            s, e, _ = slice(start, end, step).indices(dim)
            if s == 0 and e >= dim and step == 1:
                return x
            return ctx.op("slice", x, axis=axis, start=s, end=max(e, s), step=step)
        s = None if isinstance(start, int) and (start == 0 or start <= -INT_BIG) else start
        e = None if isinstance(end, int) and end >= INT_BIG else end
        if s is None and e is None and step == 1:
            return x
        return ctx.op("slice", x, axis=axis, start=s, end=e, step=step)
    if not (isinstance(dim, int) and isinstance(start, int) and isinstance(end, int)):
        full_reversal = (step == -1 and isinstance(start, int) and (start == -1 or start >= INT_BIG)
                         and isinstance(end, int) and end <= -INT_BIG)
        if full_reversal:
            return ctx.op("flip", x, axes=(axis,))
        raise ctx.fail(f"a negative step {step} on axis {axis} of symbolic size {dim} is supported only as a full reversal")
    s, e, st = slice(start, end, step).indices(dim)
    picked = range(s, e, st)
    flipped = ctx.op("flip", x, axes=(axis,))
    if len(picked) == 0:
        return ctx.op("slice", flipped, axis=axis, start=0, end=0, step=1)
    first = dim - 1 - picked[0]
    return ctx.op("slice", flipped, axis=axis, start=first, end=min(first + len(picked) * -st, dim), step=-st)


# -- Gather and friends -------------------------------------------------------------------


def _gather_fold(ctx, arrays):
    data, idx = arrays
    if F.is_symbolic(idx):
        return None
    axis = norm_axis(ctx, int(ctx.node.attr("axis", 0)), data.ndim)
    return [(np.take(data, idx.astype(np.int64), axis=axis), ctx.dtype(0))]


def nonnegative_indices(ctx, indices_slot: int, dim: Size):
    """Indices with negative entries counted from the end (ONNX allows both signs)."""
    known = ctx.known(indices_slot)
    if known is not None and not F.is_symbolic(known) and isinstance(dim, int):
        fixed = np.where(known < 0, known + dim, known).astype(known.dtype)
        return ctx.const(fixed, name=ctx.node.hint + "_indices")
    idx = ctx.value(indices_slot)
    if known is not None and not F.is_symbolic(known) and (known >= 0).all():
        return idx
    if isinstance(dim, int):
        d = ctx.scalar(dim, idx.dtype)
    else:
        d = ctx.op("size_tensor", values=(dim,), shape=(), dtype=idx.dtype)
    neg = ctx.op("lt", idx, ctx.scalar(0, idx.dtype))
    return ctx.op("where", neg, ctx.op("add", idx, d), idx)


@converter("Gather", fold=_gather_fold)
def gather(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", 0)), x.rank)
    idx = nonnegative_indices(ctx, 1, x.shape[axis])
    ctx.set(0, ctx.op("take", x, idx, axis=axis))


@converter("GatherElements")
def gather_elements(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", 0)), x.rank)
    idx = nonnegative_indices(ctx, 1, x.shape[axis])
    ctx.set(0, ctx.op("gather", x, idx, axis=axis))


@converter("GatherND")
def gather_nd(ctx, node):
    ctx.set(0, ctx.op("gather_nd", ctx.value(0), ctx.value(1), batch_dims=int(node.attr("batch_dims", 0))))


@converter("ScatterElements", "Scatter")
def scatter_elements(ctx, node):
    reduction = node.attr("reduction", "none")
    ctx.set(0, ctx.op("scatter_elements", ctx.value(0), ctx.value(1), ctx.value(2),
                      axis=int(node.attr("axis", 0)), reduction=reduction))


@converter("ScatterND")
def scatter_nd(ctx, node):
    ctx.set(0, ctx.op("scatter_nd", ctx.value(0), ctx.value(1), ctx.value(2), reduction=node.attr("reduction", "none")))


# -- Pad and Tile ----------------------------------------------------------------------------

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@converter("Pad")
def pad(ctx, node):
    x = ctx.value(0)
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise ctx.fail(f"mode={mode!r} is not one of {sorted(_PAD_MODES)}")
    if ctx.opset < 11:
        pads, value, axes = tuple(node.attr("pads")), float(node.attr("value", 0.0)), None
    else:
        pads = ctx.static_ints(1, "pads")
        value = 0.0
        if ctx.has(2):
            v = ctx.static(2, "constant_value")
            value = np.asarray(v).reshape(-1)[0].item() if np.asarray(v).size else 0.0
        axes = ctx.static_ints(3, "axes") if ctx.has(3) else None
    axes = tuple(range(x.rank)) if axes is None else tuple(norm_axis(ctx, a, x.rank) for a in axes)
    if len(pads) != 2 * len(axes):
        raise ctx.fail(f"pads {pads} must hold 2 entries per padded axis ({len(axes)} axes)")
    pairs = [[0, 0] for _ in range(x.rank)]
    for k, a in enumerate(axes):
        pairs[a] = [pads[k], pads[k + len(axes)]]
    for a, (b, e) in enumerate(pairs):  # negative pads crop
        if b < 0 or e < 0:
            dim = x.shape[a]
            x = ctx.op("slice", x, axis=a, start=-b if b < 0 else None,
                       end=(normalize(dim + e) if e < 0 else None), step=1)
            pairs[a] = [max(b, 0), max(e, 0)]
    if all(b == 0 and e == 0 for b, e in pairs):
        ctx.set(0, ctx.op("copy", x))
        return
    ctx.set(0, ctx.op("pad", x, pads=tuple(tuple(p) for p in pairs), mode=_PAD_MODES[mode], value=value))


@converter("Tile")
def tile(ctx, node):
    repeats = ctx.static_ints(1, "repeats")
    ctx.set(0, ctx.op("tile", ctx.value(0), repeats=repeats))


# -- ConstantOfShape, Range, EyeLike, OneHot, Trilu ---------------------------------------------


def _fill_value(ctx, node):
    t = node.attr("value")
    if t is None:
        return 0.0, DType.float32
    from .constant import tensor_to_array
    arr, dt = tensor_to_array(ctx, t, "value")
    return arr.reshape(-1)[0].item(), dt


@converter("ConstantOfShape")
def constant_of_shape(ctx, node):
    shape = ctx.static_sizes(0, "shape")
    value, dt = _fill_value(ctx, node)
    if all(isinstance(s, int) for s in shape) and math.prod(shape) <= 4096:
        ctx.set_known(0, np.full(shape, value, dtype=dt.numpy), dt)
    else:
        ctx.set(0, ctx.graph.op("full", shape=shape, value=value, dtype=dt, name=node.hint))


def _range_fold(ctx, arrays):
    start, limit, delta = (np.asarray(a).reshape(-1)[0] for a in arrays)
    dt = ctx.dtype(0)
    if F.is_symbolic(*arrays):
        return None
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    if n > 4096:
        return None
    return [((start + np.arange(n) * delta).astype(dt.numpy), dt)]


@converter("Range", fold=_range_fold)
def range_(ctx, node):
    names = ("start", "limit", "delta")
    if ctx.dtype(0).is_floating:
        start, limit, delta = (ctx.static_floats(i, n)[0] for i, n in enumerate(names))
    else:
        start, limit, delta = (ctx.static_sizes(i, n)[0] for i, n in enumerate(names))
    ctx.set(0, ctx.graph.op("arange", start=start, end=limit, step=delta, dtype=ctx.dtype(0), name=node.hint))


@converter("EyeLike")
def eye_like(ctx, node):
    x = ctx.value(0)
    if x.rank != 2:
        raise ctx.fail(f"input must have rank 2, got {x.type}")
    k = int(node.attr("k", 0))
    dt = to_dtype(int(node.attr("dtype")), f"{node.describe()}: dtype") if node.attr("dtype") is not None else x.dtype
    n, m = x.shape
    rows = ctx.graph.op("arange", start=0, end=n, step=1, dtype=DType.int64, name=node.hint)
    cols = ctx.graph.op("arange", start=0, end=m, step=1, dtype=DType.int64, name=node.hint)
    rows = ctx.op("add", ctx.op("unsqueeze", rows, axis=1), ctx.scalar(k, DType.int64))
    eq = ctx.op("eq", rows, ctx.op("unsqueeze", cols, axis=0))
    ctx.set(0, ctx.op("cast", eq, dtype=dt))


@converter("OneHot")
def one_hot(ctx, node):
    indices = ctx.value(0)
    depth = ctx.static(1, "depth")
    depth = int(np.asarray(depth).reshape(-1)[0])
    values = ctx.value(2)
    rank = indices.rank + 1
    axis = norm_axis(ctx, int(node.attr("axis", -1)), rank)
    idx = indices if not indices.dtype.is_floating else ctx.op("cast", indices, dtype=DType.int64)
    d = ctx.scalar(depth, idx.dtype)
    idx = ctx.op("where", ctx.op("lt", idx, ctx.scalar(0, idx.dtype)), ctx.op("add", idx, d), idx)
    hot = ctx.graph.op("arange", start=0, end=depth, step=1, dtype=idx.dtype, name=node.hint)
    hot = ctx.op("reshape", hot, shape=tuple(depth if k == axis else 1 for k in range(rank)))
    eq = ctx.op("eq", ctx.op("unsqueeze", idx, axis=axis), hot)
    off = ctx.op("reshape", ctx.op("slice", values, axis=0, start=0, end=1, step=1), shape=())
    on = ctx.op("reshape", ctx.op("slice", values, axis=0, start=1, end=2, step=1), shape=())
    ctx.set(0, ctx.op("where", eq, on, off))


@converter("Trilu")
def trilu(ctx, node):
    k = 0
    if ctx.has(1):
        k = ctx.static_ints(1, "k")[0]
    ctx.set(0, ctx.op("triu" if int(node.attr("upper", 1)) else "tril", ctx.value(0), diagonal=int(k)))


# -- TopK, CumSum, ArgMax/ArgMin, Hardmax ----------------------------------------------------------


@converter("TopK")
def topk(ctx, node):
    # a stable ascending sort of the key keeps ONNX's order for ties (the lower index first)
    x = ctx.value(0)
    k = int(node.attr("k")) if ctx.opset < 10 else ctx.static_sizes(1, "K")[0]
    axis = norm_axis(ctx, int(node.attr("axis", -1)), x.rank)
    key = x
    if bool(node.attr("largest", 1)):  # a key whose ascending order is x's descending order
        if x.dtype == DType.bool:
            key = ctx.op("neg", ctx.op("cast", x, dtype=DType.int64))
        elif x.dtype.is_floating:
            key = ctx.op("neg", x)
        else:  # ~x = -x - 1 reverses the order of signed and unsigned integers without overflow
            key = ctx.op("bitwise_not", x)
    _, order = ctx.op("sort", key, axis=axis, descending=False)
    indices = ctx.op("slice", order, axis=axis, start=0, end=k, step=1)
    ctx.set(0, ctx.op("gather", x, indices, axis=axis))
    ctx.set(1, indices)


@converter("CumSum", "CumProd")
def cumulative(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, ctx.static_ints(1, "axis")[0], x.rank)
    reverse, exclusive = int(node.attr("reverse", 0)), int(node.attr("exclusive", 0))
    op, identity = ("cumsum", 0.0) if node.op_type == "CumSum" else ("cumprod", 1.0)
    y = ctx.op("flip", x, axes=(axis,)) if reverse else x
    s = ctx.op(op, y, axis=axis)
    if exclusive:  # shift by one: pad the identity in front and drop the last element
        pads = tuple((1, 0) if k == axis else (0, 0) for k in range(x.rank))
        s = ctx.op("pad", s, pads=pads, mode="constant", value=identity)
        s = ctx.op("slice", s, axis=axis, start=0, end=-1, step=1)
    s = ctx.keep_dtype(s, x.dtype)
    ctx.set(0, ctx.op("flip", s, axes=(axis,)) if reverse else s)


def _axis_vector(ctx, v, axis: int, rank: int):
    """A 1-D value reshaped to lie along ``axis`` of a rank-``rank`` tensor."""
    return ctx.op("reshape", v, shape=tuple(v.shape[0] if k == axis else 1 for k in range(rank)))


@converter("ReverseSequence")
def reverse_sequence(ctx, node):
    # out[b, t] = x[b, len[b] - 1 - t] for t < len[b], else x[b, t]: a gather along the time axis
    x = ctx.value(0)
    batch, time = int(node.attr("batch_axis", 1)), int(node.attr("time_axis", 0))
    lens = _axis_vector(ctx, ctx.op("cast", ctx.value(1), dtype=DType.int64), batch, x.rank)
    t = ctx.graph.op("arange", start=0, end=x.shape[time], step=1, dtype=DType.int64, name=node.hint)
    t = _axis_vector(ctx, t, time, x.rank)
    flipped = ctx.op("sub", ctx.op("sub", lens, ctx.scalar(1, DType.int64)), t)
    index = ctx.op("where", ctx.op("lt", t, lens), flipped, t)
    ctx.set(0, ctx.op("gather", x, ctx.op("expand", index, shape=x.shape), axis=time))


@converter("TensorScatter")
def tensor_scatter(ctx, node):
    # write update[b] into cache[b] from write_indices[b] on along `axis` (wrapping when circular)
    cache, update = ctx.value(0), ctx.value(1)
    axis = norm_axis(ctx, int(node.attr("axis", -2)), cache.rank)
    mode = node.attr("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ctx.fail(f"mode={mode!r} is not 'linear' or 'circular'")
    if axis == 0:
        raise ctx.fail("axis 0 is the batch axis; the sequence axis must come after it")
    steps = ctx.graph.op("arange", start=0, end=update.shape[axis], step=1, dtype=DType.int64, name=node.hint)
    pos = _axis_vector(ctx, steps, axis, cache.rank)
    if ctx.has(2):
        pos = ctx.op("add", pos, _axis_vector(ctx, ctx.op("cast", ctx.value(2), dtype=DType.int64), 0, cache.rank))
    if mode == "circular":
        length = cache.shape[axis]
        size = ctx.scalar(length, DType.int64) if isinstance(length, int) else \
            ctx.op("size_tensor", values=(length,), shape=(), dtype=DType.int64)
        pos = ctx.op("remainder", pos, size)
    index = ctx.op("expand", pos, shape=update.shape)
    ctx.set(0, ctx.op("scatter_elements", cache, index, update, axis=axis, reduction="none"))


@converter("ArgMax", "ArgMin")
def arg_extreme(ctx, node):
    x = ctx.value(0)
    op = "argmax" if node.op_type == "ArgMax" else "argmin"
    axis = norm_axis(ctx, int(node.attr("axis", 0)), x.rank)
    keep = bool(node.attr("keepdims", 1))
    if int(node.attr("select_last_index", 0)):
        idx = ctx.op(op, ctx.op("flip", x, axes=(axis,)), axis=axis, keepdim=keep)
        dim = x.shape[axis]
        last = ctx.scalar(dim - 1, DType.int64) if isinstance(dim, int) else \
            ctx.op("size_tensor", values=(normalize(dim - 1),), shape=(), dtype=DType.int64)
        ctx.set(0, ctx.op("sub", last, idx))
    else:
        ctx.set(0, ctx.op(op, x, axis=axis, keepdim=keep))


@converter("Hardmax")
def hardmax(ctx, node):
    x = ctx.value(0)
    axis = norm_axis(ctx, int(node.attr("axis", -1)), x.rank)
    if ctx.opset < 13:
        raise ctx.fail("Hardmax before opset 13 (coerced to 2-D) is not supported")
    best = ctx.op("argmax", x, axis=axis, keepdim=True)
    dim = x.shape[axis]
    pos = ctx.graph.op("arange", start=0, end=dim, step=1, dtype=DType.int64, name=node.hint)
    pos = ctx.op("reshape", pos, shape=tuple(dim if k == axis else 1 for k in range(x.rank)))
    ctx.set(0, ctx.op("cast", ctx.op("eq", pos, best), dtype=x.dtype))

