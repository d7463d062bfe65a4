"""Helpers shared by op records: axis normalization, broadcasting, checks."""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

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
