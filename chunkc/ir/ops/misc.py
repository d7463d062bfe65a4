"""Reordering ops: flip, roll, tile, topk and sort.

Axes that an op reorders or repeats mix (output rows come from elsewhere in
the input); every other axis carries.  ``topk`` and ``sort`` return
``(values, indices)``, both carrying the axes they do not sort.
"""

from __future__ import annotations

from ..dims import AxisSource, DimRecord, MIX, NEW
from ..dtypes import DType
from ..kernel_workspace import TorchWorkspace
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, ceildiv, format_size, normalize
from ..types import TensorType
from ._common import blocks, carry_from, fail, is_one, norm_axes, norm_axis, take_along


def _carry_except(rank: int, mixed) -> tuple:
    return tuple(MIX if k in mixed else carry_from(AxisSource(0, k)) for k in range(rank))


# -- flip -----------------------------------------------------------------------------------------


def _flip_axes(x: TensorType, axes) -> tuple[int, ...]:
    if axes is None:
        raise fail("flip", "give the axes to flip (an int or a tuple)")
    return norm_axes("flip", axes, x.rank)


def _flip_infer(ins, attrs):
    _flip_axes(ins[0], attrs["axes"])
    return (ins[0],)


def _flip_ref(xp, x, axes):
    # basic slicing, not xp.flip: that left a block in CPython's tuple free list per call,
    # one per iteration of a chunk loop, which tracemalloc counts (as unsqueeze's did)
    flipped = {a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes)}
    return x[tuple([slice(None, None, -1) if a in flipped else slice(None) for a in range(x.ndim)])].copy()


register(OpDef(
    name="flip", infer=_flip_infer,
    dims=lambda ins, a, outs: (_carry_except(ins[0].rank, _flip_axes(ins[0], a["axes"])),),
    reference=_flip_ref, attrs={"axes": REQUIRED}, flops=lambda *a: 0,
    torch=lambda ctx: f"torch.flip({ctx.arg(0)}, {ctx.lit(_flip_axes(ctx.in_type(0), ctx.attrs['axes']))})",
    doc="flip(x, axes): reverse the order along `axes` (a copy, as in PyTorch). Carries: every other axis."))


# -- roll -----------------------------------------------------------------------------------------


def _roll_parts(x: TensorType, attrs) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(shifts, axes), or None for a roll of the flattened tensor (axes=None)."""
    shifts, axes = attrs["shifts"], attrs["axes"]
    shifts = (shifts,) if isinstance(shifts, int) and not isinstance(shifts, bool) else shifts
    if not isinstance(shifts, tuple) or not shifts or \
            not all(isinstance(s, int) and not isinstance(s, bool) for s in shifts):
        raise fail("roll", f"shifts must be an int or a tuple of ints, got {attrs['shifts']!r}")
    if axes is None:
        if len(shifts) != 1:
            raise fail("roll", f"without axes, give one shift for the flattened input, got {shifts}")
        return None
    axes = (axes,) if isinstance(axes, int) else axes
    if not isinstance(axes, tuple) or len(axes) != len(shifts):
        raise fail("roll", f"axes {attrs['axes']!r} must match shifts {shifts} one to one")
    return shifts, tuple(norm_axis("roll", a, x.rank) for a in axes)


def _roll_infer(ins, attrs):
    _roll_parts(ins[0], attrs)
    return (ins[0],)


def _roll_dims(ins, attrs, outs) -> DimRecord:
    x = ins[0]
    parts = _roll_parts(x, attrs)
    if parts is None:
        return ((MIX,) * x.rank,)
    total: dict[int, int] = {}
    for s, a in zip(*parts):
        total[a] = total.get(a, 0) + s
    mixed = {a for a, s in total.items() if not (isinstance(x.shape[a], int) and s % max(x.shape[a], 1) == 0)}
    return (_carry_except(x.rank, mixed),)


def _roll_ref(xp, x, shifts, axes=None):
    if axes is None:
        return xp.roll(x, shifts if isinstance(shifts, int) else shifts[0])
    # two slice copies per rolled axis into one fresh array (xp.roll builds index arrays and
    # temporaries as large as the output)
    total: dict[int, int] = {}
    for s, a in zip((shifts,) if isinstance(shifts, int) else shifts, (axes,) if isinstance(axes, int) else axes):
        a %= x.ndim
        total[a] = total.get(a, 0) + s
    out = xp.empty(x.shape, dtype=x.dtype)
    pieces = [([slice(None)] * x.ndim, [slice(None)] * x.ndim)]  # (source, destination) index pairs
    for a, s in total.items():
        n = x.shape[a]
        s = s % n if n else 0
        if s == 0:
            continue
        split = []
        for src, dst in pieces:
            for (s0, s1), (d0, d1) in (((0, n - s), (s, n)), ((n - s, n), (0, s))):
                src2, dst2 = list(src), list(dst)
                src2[a], dst2[a] = slice(s0, s1), slice(d0, d1)
                split.append((src2, dst2))
        pieces = split
    for src, dst in pieces:
        out[tuple(dst)] = x[tuple(src)]
    return out


def _roll_torch(ctx: LoweringContext) -> str:
    if ctx.attrs["axes"] is None:  # the flattened input rolls by one shift
        shifts = ctx.attrs["shifts"]
        return f"torch.roll({ctx.arg(0)}, {ctx.lit(shifts if isinstance(shifts, int) else shifts[0])})"
    return f"torch.roll({ctx.arg(0)}, {ctx.attr('shifts')}, {ctx.attr('axes')})"


register(OpDef(
    name="roll", infer=_roll_infer, dims=_roll_dims, reference=_roll_ref, attrs={"shifts": REQUIRED, "axes": None},
    flops=lambda *a: 0, torch=_roll_torch,
    # torch.roll over several axes rolls one axis at a time, each result kept until the last
    torch_workspace=TorchWorkspace(aten=lambda ins, a, outs: 0 if _roll_parts(ins[0], a) is None else
                                   (len(_roll_parts(ins[0], a)[1]) - 1) * ins[0].numel() * ins[0].dtype.itemsize),
    doc="roll(x, shifts, axes=None): rotate along axes (torch.roll; axes=None rolls the flattened input). "
        "Carries: every axis not rotated."))


# -- tile -----------------------------------------------------------------------------------------


def _tile_parts(x: TensorType, repeats) -> tuple[int, tuple[int, ...]]:
    """(number of new leading axes, repeats for every output axis)."""
    if not isinstance(repeats, tuple) or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0
                                                  for r in repeats):
        raise fail("tile", f"repeats must be a tuple of ints >= 0, got {repeats!r}")
    lead = max(0, len(repeats) - x.rank)
    reps = (1,) * (x.rank + lead - len(repeats)) + repeats
    return lead, reps


def _tile_infer(ins, attrs):
    x = ins[0]
    lead, reps = _tile_parts(x, attrs["repeats"])
    shape = (1,) * lead + x.shape
    return (x.with_shape(tuple(normalize(s * r) for s, r in zip(shape, reps))),)


def _tile_dims(ins, attrs, outs) -> DimRecord:
    x = ins[0]
    lead, reps = _tile_parts(x, attrs["repeats"])
    flows = [NEW] * lead
    for k, s in enumerate(x.shape):
        r = reps[lead + k]
        flows.append(carry_from(AxisSource(0, k)) if r == 1 else (NEW if is_one(s) else MIX))
    return (tuple(flows),)


def _tile_ref(xp, x, repeats):
    # the output, viewed as [r0, s0, r1, s1, ...], receives x broadcast over the repeats: one
    # allocation, the output (xp.tile copies through intermediates, and builds its output
    # shape as a tuple of a generator, which left a block in CPython's tuple free list per
    # call, once per iteration of a chunk loop, which tracemalloc counts)
    lead = max(0, len(repeats) - x.ndim)
    shape = (1,) * lead + x.shape
    reps = (1,) * (len(shape) - len(repeats)) + tuple(repeats)
    blocked, source = [], []
    for s, r in zip(shape, reps):
        blocked += [r, s]
        source += [1, s]
    out = xp.empty(tuple([s * r for s, r in zip(shape, reps)]), dtype=x.dtype)
    out.reshape(tuple(blocked))[...] = x.reshape(tuple(source))
    return out


register(OpDef(
    name="tile", infer=_tile_infer, dims=_tile_dims, reference=_tile_ref, attrs={"repeats": REQUIRED},
    flops=lambda *a: 0, torch="torch.tile({0}, {repeats})",
    doc="tile(x, repeats): repeat the whole tensor along each axis (torch.tile; missing leading repeats are "
        "1, extra ones add axes). Carries: every axis repeated once."))


# -- topk / sort --------------------------------------------------------------------------------------


def _topk_parts(x: TensorType, attrs) -> tuple[int, Size]:
    if x.rank == 0:
        raise fail("topk", f"input must have rank >= 1, got {x}")
    axis = norm_axis("topk", attrs["axis"], x.rank)
    k = attrs["k"]
    if isinstance(k, bool) or not isinstance(k, int) and not hasattr(k, "free_symbols"):
        raise fail("topk", f"k must be a size, got {k!r}")
    if isinstance(k, int) and (k < 0 or (isinstance(x.shape[axis], int) and k > x.shape[axis])):
        raise fail("topk", f"k={k} is out of range for axis {axis} of input {x} (size {format_size(x.shape[axis])})")
    for name in ("largest", "sorted"):
        if not isinstance(attrs[name], bool):
            raise fail("topk", f"{name} must be a bool, got {attrs[name]!r}")
    return axis, k


def _topk_infer(ins, attrs):
    x = ins[0]
    axis, k = _topk_parts(x, attrs)
    shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
    return (x.with_shape(shape), TensorType(DType.int64, shape))


def _sorted_dims(axis_of):
    def dims(ins, attrs, outs) -> DimRecord:
        one = _carry_except(ins[0].rank, {axis_of(ins[0], attrs)})
        return (one, one)
    return dims


def _topk_ref(xp, x, k, axis=-1, largest=True, sorted=True):
    axis %= x.ndim
    n = x.shape[axis]
    k = int(k)
    if k == 0:
        shape = x.shape[:axis] + (0,) + x.shape[axis + 1:]
        return xp.empty(shape, x.dtype), xp.empty(shape, "int64")
    part = xp.argpartition(x, n - k if largest else k - 1, axis=axis)
    keep = [slice(None)] * x.ndim
    keep[axis] = slice(n - k, n) if largest else slice(0, k)
    idx = part[tuple(keep)]
    values = take_along(xp, x, idx, axis)
    if not sorted:
        return values, xp.ascontiguousarray(idx)
    order = xp.argsort(values, axis=axis, kind="stable")
    if largest:  # reversed by basic slicing: xp.flip leaves a block in CPython's tuple free list per call
        order = order[tuple([slice(None, None, -1) if a == axis else slice(None) for a in range(x.ndim)])]
    return take_along(xp, values, order, axis), take_along(xp, idx, order, axis)


def _topk_workspace(ins, attrs, outs) -> Size:
    # argpartition's int64 array over the whole input; sorting adds an index array and a values copy
    isz = outs[0].dtype.itemsize
    extra = normalize(8 * ins[0].numel() + (outs[0].numel() * (8 + isz) if attrs["sorted"] else 0))
    return ceildiv(extra, isz)


register(OpDef(
    name="topk", infer=_topk_infer, dims=_sorted_dims(lambda x, a: norm_axis("topk", a["axis"], x.rank)),
    reference=_topk_ref, num_outputs=2, workspace=_topk_workspace, size_attrs=("k",),
    attrs={"k": REQUIRED, "axis": -1, "largest": True, "sorted": True},
    torch="torch.topk({0}, {k}, dim={axis}, largest={largest}, sorted={sorted})",
    doc="topk(x, k, axis=-1, largest=True, sorted=True) -> (values, i64 indices): the k largest (or smallest) "
        "along `axis`. Carries: every other axis (both outputs)."))


def _sort_infer(ins, attrs):
    x = ins[0]
    if x.rank == 0:
        raise fail("sort", f"input must have rank >= 1, got {x}")
    norm_axis("sort", attrs["axis"], x.rank)
    if not isinstance(attrs["descending"], bool):
        raise fail("sort", f"descending must be a bool, got {attrs['descending']!r}")
    return (x, x.with_dtype(DType.int64))


def _reverse_inplace(xp, a, axis):
    """Reverse ``a`` along ``axis`` in place, swapping blocks through a temporary of at most
    ``SWAP_BYTES``."""
    # swapaxes, not xp.moveaxis: that normalizes its axes into tuples of generators, each of
    # which left a block in CPython's tuple free list per call (the other axes' order is moot)
    v = a.swapaxes(axis, -1)
    n = v.shape[-1]
    half = n // 2
    if half == 0:
        return
    step = max(1, min(half, SWAP_BYTES // (a.itemsize * max(1, a.size // n))))
    rows = max(1, SWAP_BYTES // (a.itemsize * step))
    for s in range(0, half, step):
        e = min(s + step, half)
        for lead in blocks(v.shape[:-1], rows):
            lo, hi = v[lead + (slice(s, e),)], v[lead + (slice(n - e, n - s),)][..., ::-1]
            tmp = lo.copy()
            lo[...] = hi
            hi[...] = tmp


SWAP_BYTES = 1024


def _sort_ref(xp, x, axis=-1, descending=False):
    idx = xp.argsort(x, axis=axis, kind="stable")
    values = xp.sort(x, axis=axis, kind="stable")  # = x at idx, without gathering
    if descending:
        _reverse_inplace(xp, idx, axis)  # equal values then come in reverse order (PyTorch's is unspecified)
        _reverse_inplace(xp, values, axis)
    return values, idx


register(OpDef(
    name="sort", infer=_sort_infer, dims=_sorted_dims(lambda x, a: norm_axis("sort", a["axis"], x.rank)),
    reference=_sort_ref, num_outputs=2, attrs={"axis": -1, "descending": False},
    torch="torch.sort({0}, dim={axis}, descending={descending}, stable=True)",
    # the CPU kernel fills an int64 arange of the sorted axis
    torch_workspace=TorchWorkspace(cpu=lambda ins, a, outs: ins[0].shape[norm_axis("sort", a["axis"], ins[0].rank)] * 8),
    flops=lambda ins, a, outs: ins[0].numel(),
    doc="sort(x, axis=-1, descending=False) -> (values, i64 indices). Carries: every other axis (both outputs)."))
