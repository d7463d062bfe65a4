"""Helpers shared by op records: axis normalization, broadcasting, checks."""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np

from ...errors import IRError
from ..dims import AxisFlow, AxisSource, MIX, NEW
from ..dtypes import DType
from ..sizes import Size, format_size, sizes_equal
from ..types import TensorType


def fail(op: str, msg: str) -> IRError:
    return IRError(f"op {op}: {msg}")


def shape_str(shape: Sequence[Size]) -> str:
    return "[" + ", ".join(format_size(s) for s in shape) + "]"


def norm_axis(op: str, axis: int, rank: int, what: str = "axis") -> int:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise fail(op, f"{what} must be an int, got {axis!r}")
    if not -rank <= axis < max(rank, 1) or (rank == 0 and axis not in (0, -1)):
        raise fail(op, f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(op: str, axes, rank: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    out = tuple(sorted({norm_axis(op, a, rank) for a in axes}))
    if len(out) != len(tuple(axes)):
        raise fail(op, f"repeated axis in {tuple(axes)}")
    return out


def broadcast_shapes(op: str, types: Sequence[TensorType]) -> tuple[Size, ...]:
    rank = max(t.rank for t in types)
    out: list[Size] = []
    for k in range(rank):
        size: Size = 1
        for i, t in enumerate(types):
            j = t.rank - rank + k
            if j < 0:
                continue
            s = t.shape[j]
            if isinstance(s, int) and s == 1:
                continue
            if isinstance(size, int) and size == 1:
                size = s
            elif not sizes_equal(size, s):
                shapes = ", ".join(f"input {n} {shape_str(u.shape)}" for n, u in enumerate(types))
                raise fail(op, f"cannot broadcast {shapes}: axis {k} has sizes {format_size(size)} and {format_size(s)}")
        out.append(size)
    return tuple(out)


def broadcast_dims(ins: Sequence[TensorType], out: TensorType, indices: Sequence[int] | None = None) -> tuple[AxisFlow, ...]:
    """Each output axis carries every input axis that is not broadcast from size 1."""
    indices = range(len(ins)) if indices is None else indices
    flows = []
    for k, size in enumerate(out.shape):
        sources = []
        for i in indices:
            t = ins[i]
            j = t.rank - out.rank + k
            if j < 0:
                continue
            s = t.shape[j]
            if isinstance(s, int) and s == 1 and not (isinstance(size, int) and size == 1):
                continue  # broadcast: this input is used whole along the axis
            sources.append(AxisSource(i, j))
        flows.append(AxisFlow("carry", tuple(sources)) if sources else NEW)
    return tuple(flows)


def identity_dims(rank: int, input_index: int = 0, skip: Sequence[int] = ()) -> tuple[AxisFlow, ...]:
    """Axis k carries input axis k, except the axes in ``skip``, which mix."""
    return tuple(MIX if k in skip else AxisFlow("carry", (AxisSource(input_index, k),)) for k in range(rank))


def src(i: int, axis: int, ratio=1) -> AxisSource:
    return AxisSource(i, axis, Fraction(ratio))


def carry_from(*sources: AxisSource) -> AxisFlow:
    return AxisFlow("carry", tuple(sources))


def require_rank(op: str, t: TensorType, rank: int | Sequence[int], what: str = "input") -> None:
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise fail(op, f"{what} must have rank {want}, got {t}")


def require_same(op: str, a: Size, b: Size, what: str) -> None:
    if not sizes_equal(a, b):
        raise fail(op, f"{what}: {format_size(a)} != {format_size(b)}")


def require_float(op: str, t: TensorType, what: str = "input") -> None:
    if not t.dtype.is_floating:
        raise fail(op, f"{what} must be floating point, got {t}")


def result_dtype(types: Sequence[TensorType]) -> DType:
    from ..dtypes import promote
    d = types[0].dtype
    for t in types[1:]:
        d = promote(d, t.dtype)
    return d


# -- attribute checks shared by the families ------------------------------------


def is_one(s: Size) -> bool:
    return isinstance(s, int) and s == 1


def require_int_dtype(op: str, t: TensorType, what: str) -> None:
    if t.dtype not in (DType.int64, DType.int32, DType.int16, DType.int8, DType.uint8):
        raise fail(op, f"{what} must hold integers (i64 or i32), got {t}")


def int_tuple(op: str, name: str, value, length: int, minimum: int = 0) -> tuple[int, ...]:
    """``value`` as a tuple of ``length`` ints, each at least ``minimum``."""
    if not isinstance(value, tuple) or len(value) != length or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value):
        raise fail(op, f"{name} must be a tuple of {length} ints >= {minimum} (one per spatial axis), got {value!r}")
    return value


def pairs(op: str, name: str, value, length: int, allow_negative: bool = False) -> tuple[tuple[Size, Size], ...]:
    """``value`` as ``length`` (begin, end) pairs of sizes (ints >= 0 unless negative ones are allowed)."""
    ok = isinstance(value, tuple) and len(value) == length and all(isinstance(p, tuple) and len(p) == 2 for p in value)
    if ok:
        for p in value:
            for v in p:
                if isinstance(v, bool) or not (isinstance(v, int) or hasattr(v, "free_symbols")):
                    ok = False
                elif isinstance(v, int) and v < 0 and not allow_negative:
                    ok = False
    if not ok:
        sign = "" if allow_negative else " >= 0"
        raise fail(op, f"{name} must be a tuple of {length} (begin, end) pairs of ints{sign}, got {value!r}")
    return value


def optional_float(op: str, name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(op, f"{name} must be a number, got {value!r}")


def one_of(op: str, name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise fail(op, f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")


def quiet(xp):
    """Silence NumPy's overflow/invalid warnings (inf and nan are the intended results)."""
    import contextlib
    return xp.errstate(all="ignore") if hasattr(xp, "errstate") else contextlib.nullcontext()


def host_array(a):
    """``a`` as an array in host memory: a CuPy array is copied off the device (it refuses an
    implicit conversion); NumPy arrays are returned as they are."""
    if hasattr(a, "get") and not hasattr(a, "__array_interface__"):
        return a.get()
    return np.asarray(a)


def open_grid(xp, shape: Sequence[int]) -> list:
    """One index array per axis of ``shape``, each shaped to broadcast against the others
    (``numpy.indices(shape, sparse=True)``, which CuPy lacks)."""
    rank = len(shape)
    # shapes as tuples of lists: a tuple of a generator is built long and shrunk, and the shrunk
    # block stays in CPython's free list (tracemalloc counts it, once per chunk-loop iteration)
    return [xp.arange(n).reshape(tuple([n if k == axis else 1 for k in range(rank)])) for axis, n in enumerate(shape)]


def array_result_dtype(*arrays):
    """The NumPy dtype chunkc's promotion gives for these arrays (PyTorch's rule, not NumPy's)."""
    from ..dtypes import dtype as to_dtype, promote
    d = to_dtype(arrays[0].dtype)
    for a in arrays[1:]:
        d = promote(d, to_dtype(a.dtype))
    return d.numpy


def fresh(xp, result):
    """A ufunc's result as an array that in-place ops can write (0-d inputs give NumPy scalars)."""
    return result if isinstance(result, xp.ndarray) else xp.asarray(result)


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The shape concrete ``shapes`` broadcast to (checked by the IR already); plain Python,
    as ``numpy.broadcast_shapes`` allocates several KiB on the way."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for k, n in enumerate(s, start=rank - len(s)):
            if n != 1:
                out[k] = n
    return tuple(out)


def blocks(shape: Sequence[int], max_elems: int, whole: Sequence[int] = ()):
    """Index tuples (of slices) that cover an array of ``shape`` in blocks of at most
    ``max_elems`` elements, never splitting the axes in ``whole`` (a block is then as large as
    those axes need).  Outer axes go one index at a time, one axis is cut into runs, the inner
    axes are taken whole."""
    import itertools
    split = [k for k in range(len(shape)) if k not in whole]
    fixed = 1
    for k in whole:
        fixed *= shape[k]
    run_axis, run = None, 1
    for pos, k in enumerate(split):  # the outermost axis whose one index is small enough
        inner = fixed
        for j in split[pos + 1:]:
            inner *= shape[j]
        if inner <= max_elems:
            run_axis, run = k, max(1, max_elems // max(inner, 1))
            break
    outer = split if run_axis is None else split[:split.index(run_axis)]
    for position in itertools.product(*[range(shape[k]) for k in outer]):
        index = [slice(None)] * len(shape)
        for k, i in zip(outer, position):
            index[k] = slice(i, i + 1)
        for start in ([0] if run_axis is None else range(0, shape[run_axis], run)):
            if run_axis is not None:
                index[run_axis] = slice(start, start + run)
            yield tuple(index)


# NumPy's fancy indexing (take_along_axis) buffers up to 8192 index entries per index array, a
# fixed size that numpy.setbufsize does not change: tens of KiB no record declares.  Gathering
# block by block keeps those buffers under a few KiB.
GATHER_BLOCK = 64  # elements of the index per take_along_axis call


def take_along(xp, x, index, axis: int, out=None):
    """``xp.take_along_axis(x, index, axis)`` into ``out`` (fresh when None), ``GATHER_BLOCK``
    index elements at a time.  ``x`` and ``index`` have the same rank; off ``axis``, ``x``'s
    sizes equal ``index``'s (or are 1)."""
    axis %= max(x.ndim, 1)
    if out is None:
        out = xp.empty(index.shape, dtype=x.dtype)
    for block in blocks(index.shape, GATHER_BLOCK, whole=(axis,)):
        source = tuple([slice(None) if k == axis or x.shape[k] == 1 else b for k, b in enumerate(block)])
        out[block] = xp.take_along_axis(x[source], index[block], axis=axis)
    return out
