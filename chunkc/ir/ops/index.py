"""Indexing: take (numpy.take, ONNX Gather), gather (torch.gather, ONNX
GatherElements) and embedding.

Axes of the result that come from the index tensor carry from it; the other
axes carry from the data; the indexed axis of the data is read whole.
"""

from __future__ import annotations

import sympy

from ..dims import POSITION, AxisSource, DimRecord, MIX, NEW
from ..dtypes import DType
from ..elements import at, index
from ..kernel_workspace import TorchWorkspace
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, format_size, normalize, sizes_equal
from ..types import TensorType
from ._common import carry_from, fail, norm_axis, require_int_dtype, require_rank, take_along


# -- take -------------------------------------------------------------------------------


def _take_infer(ins, attrs):
    x, idx = ins
    if x.rank == 0:
        raise fail("take", f"cannot index a 0-d input {x}")
    require_int_dtype("take", idx, "indices (input 1)")
    axis = norm_axis("take", attrs["axis"], x.rank)
    return (x.with_shape(x.shape[:axis] + idx.shape + x.shape[axis + 1:]),)


def _take_dims(ins, attrs, outs) -> DimRecord:
    x, idx = ins
    axis = norm_axis("take", attrs["axis"], x.rank)
    flows = [carry_from(AxisSource(0, k)) for k in range(axis)]
    flows += [carry_from(AxisSource(1, j)) for j in range(idx.rank)]
    flows += [carry_from(AxisSource(0, k)) for k in range(axis + 1, x.rank)]
    return (tuple(flows),)


def _take_torch(ctx: LoweringContext) -> str:
    axis = norm_axis("take", ctx.attrs["axis"], ctx.in_type(0).rank)
    return f"{ctx.arg(0)}[{':, ' * axis}{ctx.arg(1)}]"


def _take_elements(fs, attrs, ins, outs):
    x, idx = ins
    axis = norm_axis("take", attrs["axis"], x.rank)
    picked = at(fs[1], [index(axis + j) for j in range(idx.rank)])
    position = [index(k) for k in range(axis)] + [None] + [index(k + idx.rank - 1) for k in range(axis + 1, x.rank)]
    read = lambda i: at(fs[0], position[:axis] + [i] + position[axis + 1:])  # noqa: E731
    negative = sympy.piecewise_fold(sympy.Lt(sympy.piecewise_fold(picked), 0))
    if negative == sympy.false:
        return read(picked)
    return sympy.Piecewise((read(picked + x.shape[axis]), negative), (read(picked), True))


def _int64_copy(ins, attrs, outs) -> Size:
    """An index that is not int64, converted first."""
    return 0 if ins[1].dtype == DType.int64 else ins[1].numel() * 8


register(OpDef(name="take", saves=(1,), infer=_take_infer, dims=_take_dims, num_inputs=(2, 2), attrs={"axis": 0}, torch=_take_torch,
               elements=_take_elements,
               torch_workspace=TorchWorkspace(aten=_int64_copy),  # advanced indexing converts the index
               reference=lambda xp, x, indices, axis: xp.take(x, indices, axis=axis), flops=lambda *a: 0,
               doc="take(x, indices, axis=0): x's `axis` replaced by the indices' axes (negative indices count "
                   "from the end). Carries: the index axes from indices, the other axes from x."))


# -- gather -------------------------------------------------------------------------------


def _gather_infer(ins, attrs):
    x, idx = ins
    require_int_dtype("gather", idx, "index (input 1)")
    if idx.rank != x.rank:
        raise fail("gather", f"index (input 1) {idx} must have the rank of input 0 {x}")
    axis = norm_axis("gather", attrs["axis"], x.rank)
    for k, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if k != axis and isinstance(a, int) and isinstance(b, int) and b > a:
            raise fail("gather", f"index {idx} is larger than input {x} along axis {k}: {b} > {a}")
        if k != axis and not (isinstance(a, int) and isinstance(b, int)) and not sizes_equal(a, b):
            raise fail("gather", f"index {idx} and input {x} differ along axis {k} "
                                 f"({format_size(b)} vs {format_size(a)}); symbolic sizes must match")
    return (x.with_shape(idx.shape),)


def _gather_dims(ins, attrs, outs) -> DimRecord:
    x, idx = ins
    axis = norm_axis("gather", attrs["axis"], x.rank)
    flows = []
    for k in range(x.rank):
        if k == axis:
            flows.append(carry_from(AxisSource(1, k)))  # x is read whole along the gathered axis
        elif sizes_equal(x.shape[k], idx.shape[k]):
            flows.append(carry_from(AxisSource(0, k), AxisSource(1, k)))
        else:
            flows.append(MIX)  # the index covers a prefix of x: a slice would shift it
    return (tuple(flows),)


def _gather_ref(xp, x, index, axis):
    axis %= x.ndim
    crop = tuple([slice(None) if k == axis else slice(0, index.shape[k]) for k in range(x.ndim)])
    return take_along(xp, x[crop], index, axis)


def _gather_torch(ctx: LoweringContext) -> str:
    index = ctx.arg(1) if ctx.in_type(1).dtype == DType.int64 else f"{ctx.arg(1)}.to(torch.int64)"
    return f"torch.gather({ctx.arg(0)}, {ctx.attr('axis')}, {index})"


register(OpDef(name="gather", saves=(1,), infer=_gather_infer, dims=_gather_dims, reference=_gather_ref, num_inputs=(2, 2),
               attrs={"axis": REQUIRED}, flops=lambda *a: 0, torch=_gather_torch,
               torch_workspace=TorchWorkspace(lowering=_int64_copy),
               doc="gather(x, index, axis): out[i][j] = x[index[i][j]][j] along `axis` (torch.gather); "
                   "index has x's rank and is no larger off `axis`. Carries: `axis` from index; "
                   "the other axes from index and x where their sizes match."))


# -- embedding ------------------------------------------------------------------------------


def _embedding_infer(ins, attrs):
    w, ids = ins
    require_rank("embedding", w, 2, "weight (input 0)")
    require_int_dtype("embedding", ids, "ids (input 1)")
    return (TensorType(w.dtype, ids.shape + (w.shape[1],)),)


def _embedding_dims(ins, attrs, outs) -> DimRecord:
    w, ids = ins
    return (tuple(carry_from(AxisSource(1, k)) for k in range(ids.rank)) + (carry_from(AxisSource(0, 1)),),)


def _embedding_ref(xp, weight, ids):
    if weight.flags.c_contiguous:
        return xp.take(weight, ids, axis=0)
    # a slice of the table's columns (a chunk loop over D): take would copy the whole slice
    # first (every row, not only those looked up); fancy indexing reads it in place
    return weight[ids]


register(OpDef(name="embedding", saves=(1,), infer=_embedding_infer, dims=_embedding_dims, num_inputs=(2, 2),
               torch="F.embedding({1}, {0})",
               reference=_embedding_ref, flops=lambda *a: 0,
               doc="embedding(weight[V, D], ids) -> [*ids.shape, D] (= take(weight, ids, axis=0)). "
                   "Carries: the id axes from ids, D from weight."))


# -- toeplitz -------------------------------------------------------------------------------


def _toeplitz_infer(ins, attrs):
    (table,) = ins
    if table.rank == 0:
        raise fail("toeplitz", f"needs a table with at least one axis, got {table}")
    rows, cols, base = attrs["rows"], attrs["cols"], attrs["base"]
    if all(isinstance(v, int) for v in (rows, cols, base, table.shape[-1])) and \
            not (rows >= 1 and cols >= 1 and base - rows + 1 >= 0 and base + cols <= table.shape[-1]):
        raise fail("toeplitz", f"reads the table's last axis at base - row + column, from {base - rows + 1} to "
                               f"{base + cols - 1}, outside [0, {table.shape[-1]}) (rows={rows}, cols={cols}, "
                               f"base={base}, table {table})")
    return (table.with_shape(table.shape[:-1] + (rows, cols)),)


def _toeplitz_dims(ins, attrs, outs) -> DimRecord:
    lead = ins[0].rank - 1
    # a slice of rows reads the whole (small) table, from the slice's start: positional
    return (tuple(carry_from(AxisSource(0, k)) for k in range(lead)) + (POSITION, NEW),)


def _toeplitz_slice(attrs, ins, axis, start, length):
    return {**attrs, "rows": length, "base": normalize(attrs["base"] - start)}


def _toeplitz_window(attrs) -> tuple[Size, Size]:
    """The rows of the table's sliding windows a node reads, [lo, hi), last row first."""
    return normalize(attrs["base"] - attrs["rows"] + 1), normalize(attrs["base"] + 1)


def _toeplitz_ref(xp, table, rows, cols, base):
    lo, hi = base - rows + 1, base + 1
    step = table.strides[-1]
    windows = xp.lib.stride_tricks.as_strided(table, table.shape[:-1] + (table.shape[-1] - cols + 1, cols),
                                              table.strides + (step,), writeable=False)
    out = xp.empty(table.shape[:-1] + (rows, cols), dtype=table.dtype)
    out[...] = windows[..., lo:hi, :][..., ::-1, :]  # always a fresh copy (as torch's flip)
    return out


def _toeplitz_torch(ctx: LoweringContext) -> str:
    # torch.flip lays its result out in its input's stride order; the windows' rows and columns
    # both have stride 1, and TensorIterator puts the smaller of two such axes innermost: with
    # fewer rows than columns (a chunk of rows) the flip would write a column-major matrix, and
    # the transposing copy a reader makes of it costs five times a copy of the windows in rows
    # order first (then the flip writes rows order).  Decided at run time on the sizes.
    lo, hi = _toeplitz_window(ctx.attrs)
    windows = f"{ctx.arg(0)}.contiguous().unfold(-1, {ctx.attr('cols')}, 1)[..., {ctx.lit(lo)}:{ctx.lit(hi)}, :]"
    rows, cols = ctx.attr("rows"), ctx.attr("cols")
    return f"({windows} if ({rows}) >= ({cols}) else {windows}.contiguous()).flip(-2)"


def _toeplitz_copy(ins, attrs, outs) -> Size:
    """Bytes of the rows-order copy of the windows the lowering makes first when rows < columns
    (counted whenever the sizes are not known apart: the most it can be)."""
    rows, cols = attrs["rows"], attrs["cols"]
    if sizes_equal(rows, cols) or (isinstance(rows, int) and isinstance(cols, int) and rows >= cols):
        return 0
    return outs[0].numel() * outs[0].dtype.itemsize


def _toeplitz_elements(fs, attrs, ins, outs):
    lead = ins[0].rank - 1
    return at(fs[0], [index(k) for k in range(lead)] + [attrs["base"] - index(lead) + index(lead + 1)])


register(OpDef(name="toeplitz", saves=(), infer=_toeplitz_infer, dims=_toeplitz_dims, num_inputs=(1, 1),
               attrs={"rows": REQUIRED, "cols": REQUIRED, "base": REQUIRED}, size_attrs=("rows", "cols", "base"),
               slice_attrs=_toeplitz_slice, torch=_toeplitz_torch, reference=_toeplitz_ref,
               torch_workspace=TorchWorkspace(lowering=_toeplitz_copy),
               elements=_toeplitz_elements, flops=lambda *a: 0,
               doc="toeplitz(table[..., M], rows, cols, base) -> [..., rows, cols] with out[..., r, c] = "
                   "table[..., base - r + c] (a Toeplitz matrix: constant along diagonals; the table's sliding "
                   "windows, last row first, copied once). Carries: the leading axes from the table; rows "
                   "positionally (a slice of rows moves base), from the whole table."))
