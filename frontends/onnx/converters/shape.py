"""Shape ops: Shape, Size, Reshape, Flatten, Transpose, Squeeze, Unsqueeze,
Expand, DepthToSpace, SpaceToDepth.

``Shape`` never reads data: its result is the input's (possibly symbolic)
shape as a known value, so the Reshape and Expand targets that exporters build
from it stay symbolic (``seq`` stays ``seq``).
"""

from __future__ import annotations

import numpy as np

from chunkc.ir.dtypes import DType
from chunkc.ir.sizes import Size, normalize, product, sizes_equal

from .. import folding as F
from ..context import DynamicValueError
from .registry import converter


def _sizes_array(sizes) -> np.ndarray:
    out = np.empty(len(sizes), dtype=object)
    out[:] = [normalize(s) for s in sizes]
    return out


def norm_axis(ctx, axis: int, rank: int, what: str = "axis") -> int:
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise ctx.fail(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


# -- Shape and Size ---------------------------------------------------------------------


@converter("Shape")
def shape(ctx, node):
    dims = ctx.shape(0)
    rank = len(dims)
    start, end = node.attr("start", 0), node.attr("end", None)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = rank if end is None else max(0, min(rank, end + rank if end < 0 else end))
    ctx.set_known(0, _sizes_array(dims[start:end]), DType.int64)


@converter("Size")
def size(ctx, node):
    ctx.set_known(0, _sizes_array([product(ctx.shape(0))]).reshape(()), DType.int64)


# -- Reshape and Flatten -------------------------------------------------------------------


def reshape_target(ctx, in_shape, target, allowzero: bool) -> tuple[Size, ...]:
    out = []
    for k, s in enumerate(target):
        if isinstance(s, int) and s == 0 and not allowzero:
            if k >= len(in_shape):
                raise ctx.fail(f"shape entry {k} is 0 (copy the input's size) but the input has rank {len(in_shape)}")
            out.append(in_shape[k])
        elif isinstance(s, int) and s < -1:
            raise ctx.fail(f"shape entry {k} is {s}; only -1 may be negative")
        else:
            out.append(s)
    return tuple(out)


def _reshape_fold(ctx, arrays):
    data, target = arrays
    target = ctx.static_sizes(1, "shape")
    resolved = reshape_target(ctx, tuple(int(s) for s in data.shape), target, bool(ctx.node.attr("allowzero", 0)))
    if not all(isinstance(s, int) for s in resolved):
        return None
    return [(data.reshape(resolved), ctx.dtype(0))]


def shape_or_inferred(ctx, i: int, what: str):
    """A shape input's known value, or else the output shape ONNX's own shape inference gives."""
    try:
        return ctx.static_sizes(i, what), False
    except DynamicValueError as exc:
        # only for shapes computed from constants and shapes: a graph input's value must be bound
        inferred = None if exc.graph_inputs else ctx.inferred_shape(0)
        if inferred is None:
            raise
        return inferred, True


@converter("Reshape", fold=_reshape_fold)
def reshape(ctx, node):
    target, inferred = shape_or_inferred(ctx, 1, "shape")
    if not inferred:
        target = reshape_target(ctx, ctx.shape(0), target, bool(node.attr("allowzero", 0)))
    ctx.set(0, ctx.op("reshape", ctx.value(0), shape=target))


def _flatten_shape(ctx, in_shape):
    rank = len(in_shape)
    axis = int(ctx.node.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise ctx.fail(f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return (product(in_shape[:axis]), product(in_shape[axis:]))


def _flatten_fold(ctx, arrays):
    return [(arrays[0].reshape(_flatten_shape(ctx, arrays[0].shape)), ctx.dtype(0))]


@converter("Flatten", fold=_flatten_fold)
def flatten(ctx, node):
    ctx.set(0, ctx.op("reshape", ctx.value(0), shape=_flatten_shape(ctx, ctx.shape(0))))


# -- Transpose ---------------------------------------------------------------------------


def _perm(ctx, rank):
    perm = ctx.node.attr("perm")
    return tuple(range(rank))[::-1] if perm is None else tuple(int(p) for p in perm)


def _transpose_fold(ctx, arrays):
    return [(np.transpose(arrays[0], _perm(ctx, arrays[0].ndim)), ctx.dtype(0))]


@converter("Transpose", fold=_transpose_fold)
def transpose(ctx, node):
    ctx.set(0, ctx.op("permute", ctx.value(0), dims=_perm(ctx, ctx.rank(0))))


# -- Squeeze and Unsqueeze ------------------------------------------------------------------


def _axes(ctx, node, input_index: int):
    """Axes from the attribute (older opsets) or from an input (opset 13 on)."""
    attr = node.attr("axes")
    if attr is not None:
        return tuple(int(a) for a in attr)
    if ctx.has(input_index):
        return ctx.static_ints(input_index, "axes")
    return None


def _squeeze_axes(ctx, node, in_shape):
    axes = _axes(ctx, node, 1)
    rank = len(in_shape)
    if axes is None:
        return tuple(k for k, s in enumerate(in_shape) if isinstance(s, int) and s == 1)
    axes = tuple(sorted({norm_axis(ctx, a, rank) for a in axes}))
    for a in axes:
        if not (isinstance(in_shape[a], int) and in_shape[a] == 1) and isinstance(in_shape[a], int):
            raise ctx.fail(f"cannot squeeze axis {a} of size {in_shape[a]}")
    return axes


def _squeeze_fold(ctx, arrays):
    axes = _squeeze_axes(ctx, ctx.node, arrays[0].shape)
    return [(np.squeeze(arrays[0], axis=axes), ctx.dtype(0))]


@converter("Squeeze", fold=_squeeze_fold)
def squeeze(ctx, node):
    x = ctx.value(0)
    axes = _squeeze_axes(ctx, node, x.shape)
    ctx.set(0, ctx.op("reshape", x, shape=tuple(s for k, s in enumerate(x.shape) if k not in axes)))


def _unsqueeze_axes(ctx, node, rank):
    axes = _axes(ctx, node, 1)
    if axes is None:
        raise ctx.fail("needs axes (an attribute before opset 13, input 1 from opset 13)")
    out_rank = rank + len(axes)
    norm = sorted(norm_axis(ctx, a, out_rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise ctx.fail(f"axes {axes} repeat an axis")
    return norm


def _unsqueeze_shape(ctx, node, in_shape):
    out = list(in_shape)
    for a in _unsqueeze_axes(ctx, node, len(in_shape)):
        out.insert(a, 1)
    return tuple(out)


def _unsqueeze_fold(ctx, arrays):
    return [(arrays[0].reshape(_unsqueeze_shape(ctx, ctx.node, arrays[0].shape)), ctx.dtype(0))]


@converter("Unsqueeze", fold=_unsqueeze_fold)
def unsqueeze(ctx, node):
    x = ctx.value(0)
    axes = _unsqueeze_axes(ctx, node, x.rank)
    if len(axes) == 1:
        ctx.set(0, ctx.op("unsqueeze", x, axis=axes[0]))
    else:
        ctx.set(0, ctx.op("reshape", x, shape=_unsqueeze_shape(ctx, node, x.shape)))


# -- Expand ----------------------------------------------------------------------------------


def broadcast_to_target(ctx, in_shape, target) -> tuple[Size, ...]:
    """ONNX Expand's bidirectional broadcast of the input shape and the target."""
    rank = max(len(in_shape), len(target))
    a = (1,) * (rank - len(in_shape)) + tuple(in_shape)
    b = (1,) * (rank - len(target)) + tuple(target)
    out = []
    for k, (s, t) in enumerate(zip(a, b)):
        if isinstance(t, int) and t == 1:
            out.append(s)
        elif isinstance(s, int) and s == 1:
            out.append(t)
        elif sizes_equal(s, t) or not (isinstance(s, int) and isinstance(t, int)):
            out.append(s)  # equal, or symbolic: the data's own size is the one that holds at run time
        else:
            raise ctx.fail(f"cannot expand shape {tuple(in_shape)} to {tuple(target)}: axis {k} has sizes {s} and {t}")
    return tuple(out)


def _expand_fold(ctx, arrays):
    data = arrays[0]
    target = ctx.static_sizes(1, "shape")
    out = broadcast_to_target(ctx, data.shape, target)
    if not all(isinstance(s, int) for s in out):
        return None
    return [(np.broadcast_to(data, out).copy(), ctx.dtype(0))]


@converter("Expand", fold=_expand_fold)
def expand(ctx, node):
    x = ctx.value(0)
    target, inferred = shape_or_inferred(ctx, 1, "shape")
    out = target if inferred else broadcast_to_target(ctx, x.shape, target)
    if len(out) == x.rank and all(sizes_equal(a, b) for a, b in zip(out, x.shape)):
        ctx.set(0, ctx.op("copy", x))
    else:
        ctx.set(0, ctx.op("expand", x, shape=out))


# -- DepthToSpace and SpaceToDepth ----------------------------------------------------------------


@converter("DepthToSpace")
def depth_to_space(ctx, node):
    x = ctx.value(0)
    if x.rank != 4:
        raise ctx.fail(f"input must have rank 4, got {x.type}")
    b = int(node.attr("blocksize"))
    n, c, h, w = x.shape
    c2 = normalize(c // b // b) if isinstance(c, int) else F.trunc_div(F.trunc_div(c, b), b)
    mode = node.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(f"mode={mode!r} is not DCR or CRD")
    if mode == "DCR":
        y = ctx.op("reshape", x, shape=(n, b, b, c2, h, w))
        y = ctx.op("permute", y, dims=(0, 3, 4, 1, 5, 2))
    else:
        y = ctx.op("reshape", x, shape=(n, c2, b, b, h, w))
        y = ctx.op("permute", y, dims=(0, 1, 4, 2, 5, 3))
    ctx.set(0, ctx.op("reshape", y, shape=(n, c2, normalize(h * b), normalize(w * b))))


@converter("SpaceToDepth")
def space_to_depth(ctx, node):
    x = ctx.value(0)
    if x.rank != 4:
        raise ctx.fail(f"input must have rank 4, got {x.type}")
    b = int(node.attr("blocksize"))
    n, c, h, w = x.shape
    h2 = h // b if isinstance(h, int) else F.trunc_div(h, b)
    w2 = w // b if isinstance(w, int) else F.trunc_div(w, b)
    mode = node.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(f"mode={mode!r} is not DCR or CRD")
    y = ctx.op("reshape", x, shape=(n, c, h2, b, w2, b))
    y = ctx.op("permute", y, dims=(0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4))
    ctx.set(0, ctx.op("reshape", y, shape=(n, normalize(c * b * b), h2, w2)))
