"""Shape ops: reshape, permute, expand, squeeze, unsqueeze, slice, contiguous.

These are views where the layout allows it (``view_strides``), so memory
estimation can tell an alias from a copy.  Reshape records which output axis
is the *outer factor* of a split or merged input axis: that axis carries, with
the ratio of the inner factors.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import sympy

from ..elements import at, broadcast_to, index, indices
from ..dims import AxisFlow, AxisSource, DimRecord, MIX, NEW
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, normalize, product, ratio, sizes_equal
from ..types import TensorType
from ._common import fail, norm_axes, norm_axis, shape_str


def _is_one(s: Size) -> bool:
    return isinstance(s, int) and s == 1


def contiguous_strides(shape: Sequence[Size]) -> tuple[Size, ...]:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc = normalize(acc * s)
    return tuple(reversed(strides))


def is_contiguous(shape: Sequence[Size], strides: Sequence[Size]) -> bool:
    want = contiguous_strides(shape)
    return all(_is_one(s) or sizes_equal(a, b) for s, a, b in zip(shape, strides, want))


# -- reshape --------------------------------------------------------------------


def resolve_shape(op: str, t: TensorType, shape) -> tuple[Size, ...]:
    shape = tuple(normalize(s) for s in shape)
    holes = [k for k, s in enumerate(shape) if isinstance(s, int) and s == -1]
    if len(holes) > 1:
        raise fail(op, f"target shape {shape} has more than one -1")
    known = product(s for s in shape if not (isinstance(s, int) and s == -1))
    numel = t.numel()
    if holes:
        q = sympy.sympify(numel) / sympy.sympify(known)
        q = sympy.simplify(q)
        if not (q.is_integer or (q.is_Integer)):
            raise fail(op, f"cannot reshape {t} into {shape}: {numel} elements do not divide by {known}")
        shape = tuple(normalize(q) if k == holes[0] else s for k, s in enumerate(shape))
    shape = tuple(normalize(s) for s in shape)
    if not sizes_equal(product(shape), numel):
        raise fail(op, f"cannot reshape {t} into {shape_str(shape)}: element counts differ")
    return shape


def _reshape_infer(ins, attrs):
    return (ins[0].with_shape(resolve_shape("reshape", ins[0], attrs["shape"])),)


def reshape_groups(in_shape, out_shape):
    """Pair minimal blocks of input and output axes with equal products.

    Size-1 axes are skipped.  Yields (input axes, output axes); a block whose
    products cannot be matched ends the pairing (the rest are left unpaired).
    """
    ins = [k for k, s in enumerate(in_shape) if not _is_one(s)]
    outs = [k for k, s in enumerate(out_shape) if not _is_one(s)]
    groups, i, j = [], 0, 0
    while i < len(ins) and j < len(outs):
        gi, go = [ins[i]], [outs[j]]
        pi, po = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        for _ in range(len(ins) + len(outs)):
            r = ratio(pi, po)
            if r == 1 or sizes_equal(pi, po):
                break
            if r is not None and r < 1 and i < len(ins):
                gi.append(ins[i]); pi = normalize(pi * in_shape[ins[i]]); i += 1
            elif r is not None and r > 1 and j < len(outs):
                go.append(outs[j]); po = normalize(po * out_shape[outs[j]]); j += 1
            else:
                return groups  # symbolic mismatch: stop pairing
        else:
            return groups
        groups.append((tuple(gi), tuple(go)))
    return groups


def _reshape_dims(ins, attrs, outs) -> DimRecord:
    t, out = ins[0], outs[0]
    flows: list[AxisFlow] = [NEW if _is_one(s) else MIX for s in out.shape]
    for gi, go in reshape_groups(t.shape, out.shape):
        in_inner = product(t.shape[k] for k in gi[1:])
        out_inner = product(out.shape[k] for k in go[1:])
        r = ratio(out_inner, in_inner)
        if r is not None:
            flows[go[0]] = AxisFlow("carry", (AxisSource(0, gi[0], r),))
    return (tuple(flows),)


def _reshape_strides(ins, attrs, strides):
    t = ins[0]
    out_shape = resolve_shape("reshape", t, attrs["shape"])
    if is_contiguous(t.shape, strides):
        return contiguous_strides(out_shape)
    if all(isinstance(s, int) for s in tuple(t.shape) + tuple(out_shape) + tuple(strides)):
        return nocopy_reshape_strides(t.shape, strides, out_shape)
    return None  # a symbolic, non-contiguous layout: assume the copy NumPy and PyTorch may make


def nocopy_reshape_strides(old_shape, old_strides, new_shape):
    """Strides of a reshape that NumPy and PyTorch do as a view, or None when they copy.

    Groups of old and new axes with equal products must each stand on a run of old
    axes that is contiguous within itself (stride = next stride * next size).
    """
    old = [(s, st) for s, st in zip(old_shape, old_strides) if s != 1]
    if 0 in new_shape:
        return contiguous_strides(new_shape)
    new_strides = [0] * len(new_shape)
    oi = ni = 0
    while ni < len(new_shape) and oi < len(old):
        new_prod, old_prod = new_shape[ni], old[oi][0]
        nj, oj = ni + 1, oi + 1
        while new_prod != old_prod:
            if new_prod < old_prod:
                new_prod *= new_shape[nj]
                nj += 1
            else:
                old_prod *= old[oj][0]
                oj += 1
        for k in range(oi, oj - 1):  # the old group must be one contiguous run
            if old[k][1] != old[k + 1][0] * old[k + 1][1]:
                return None
        new_strides[nj - 1] = old[oj - 1][1]
        for k in range(nj - 1, ni, -1):
            new_strides[k - 1] = new_strides[k] * new_shape[k]
        ni, oi = nj, oj
    last = new_strides[ni - 1] if ni else 1
    for k in range(ni, len(new_shape)):  # trailing size-1 axes
        new_strides[k] = last
    return tuple(new_strides)


def _reshape_elements(fs, attrs, ins, outs):
    # only reshapes that add or drop size-1 axes (the others would need div/mod index maps)
    t, out = ins[0], outs[0]
    kept_in = [k for k, s in enumerate(t.shape) if not _is_one(s)]
    kept_out = [k for k, s in enumerate(out.shape) if not _is_one(s)]
    if len(kept_in) != len(kept_out) or not all(sizes_equal(t.shape[a], out.shape[b])
                                                 for a, b in zip(kept_in, kept_out)):
        return _merge_elements(fs[0], t, out)
    position = [sympy.Integer(0)] * t.rank
    for a, b in zip(kept_in, kept_out):
        position[a] = index(b)
    return at(fs[0], position)


def _merge_elements(f, t: TensorType, out: TensorType):
    """A reshape that only merges runs of adjacent axes whose inner sizes are static
    (``[B, G, R, L, E] -> [B, G*R, L, E]``): merged index h reads ``(h // R, h % R)``."""
    position: list = []
    k = 0
    for b, size in enumerate(out.shape):
        group = [k]
        total = t.shape[k] if k < t.rank else None
        k += 1
        while total is not None and not sizes_equal(total, size) and k < t.rank:
            group.append(k)
            total = normalize(total * t.shape[k])
            k += 1
        inner = [t.shape[g] for g in group[1:]]
        if total is None or not sizes_equal(total, size) or not all(isinstance(s, int) for s in inner):
            return None
        stride = 1
        parts = []
        for g in reversed(group[1:]):
            parts.append(sympy.Mod(sympy.floor(index(b) / stride), t.shape[g]))
            stride *= t.shape[g]
        parts.append(sympy.floor(index(b) / stride))
        position += reversed(parts)
    return at(f, position) if k == t.rank else None


def _reshape_ref(xp, x, shape):
    # a list, not a generator: CPython builds a tuple from a generator at a guessed length and
    # shrinks it, so each call leaves a fresh block in the free list of the final length (up to
    # 2000 of them); in a chunk loop that was ~70 B per iteration that tracemalloc counted
    return xp.reshape(x, tuple([int(s) for s in shape]))


register(OpDef(name="reshape", saves=(), infer=_reshape_infer, dims=_reshape_dims, view_strides=_reshape_strides,
               elements=_reshape_elements,
               reference=_reshape_ref,
               attrs={"shape": REQUIRED}, size_attrs=("shape",), shape_attr="shape", flops=lambda *a: 0,
               torch="{0}.reshape({out_shape})",
               doc="reshape(x, shape=(B, L, 12, 64)); one -1 allowed; a view when x is contiguous. "
                   "Carries: the outer axis of each group of split or merged axes (with the ratio of the inner sizes)."))


# -- permute --------------------------------------------------------------------


def _perm(op, t, dims):
    dims = tuple(norm_axis(op, d, t.rank, "dim") for d in dims)
    if sorted(dims) != list(range(t.rank)):
        raise fail(op, f"dims {dims} is not a permutation of {t.rank} axes of {t}")
    return dims


def _permute_infer(ins, attrs):
    t = ins[0]
    dims = _perm("permute", t, attrs["dims"])
    return (t.with_shape(tuple(t.shape[d] for d in dims)),)


def _permute_dims(ins, attrs, outs) -> DimRecord:
    dims = _perm("permute", ins[0], attrs["dims"])
    return (tuple(AxisFlow("carry", (AxisSource(0, d),)) for d in dims),)


def _permute_elements(fs, attrs, ins, outs):
    dims = _perm("permute", ins[0], attrs["dims"])
    position = [None] * len(dims)
    for j, d in enumerate(dims):  # output axis j is input axis d
        position[d] = index(j)
    return at(fs[0], position)


register(OpDef(name="permute", saves=(), infer=_permute_infer, dims=_permute_dims, elements=_permute_elements,
               view_strides=lambda ins, attrs, strides: tuple(strides[d] for d in _perm("permute", ins[0], attrs["dims"])),
               reference=lambda xp, x, dims: xp.transpose(x, dims), attrs={"dims": REQUIRED}, flops=lambda *a: 0,
               torch="{0}.permute({dims})",
               doc="permute(x, dims=(0, 2, 1, 3)): a view. Carries: every axis, from its permuted source."))


# -- expand ---------------------------------------------------------------------


def _expand_infer(ins, attrs):
    t = ins[0]
    shape = tuple(normalize(s) for s in attrs["shape"])
    if len(shape) < t.rank:
        raise fail("expand", f"cannot expand {t} to fewer axes {shape}")
    lead = len(shape) - t.rank
    out = list(shape[:lead])
    for s, target in zip(t.shape, shape[lead:]):
        if isinstance(target, int) and target == -1:
            out.append(s)
        elif _is_one(s) or sizes_equal(s, target):
            out.append(target)
        else:
            raise fail("expand", f"cannot expand {t} to {shape_str(shape)}: size {s} is not 1")
    if any(isinstance(s, int) and s < 0 for s in out):
        raise fail("expand", f"bad target shape {shape}")
    return (t.with_shape(tuple(out)),)


def _expand_dims(ins, attrs, outs) -> DimRecord:
    t, out = ins[0], outs[0]
    lead = out.rank - t.rank
    flows = [NEW] * lead
    for k, s in enumerate(t.shape):
        o = out.shape[lead + k]
        flows.append(NEW if (_is_one(s) and not _is_one(o)) else AxisFlow("carry", (AxisSource(0, k),)))
    return (tuple(flows),)


def _expand_strides(ins, attrs, strides):
    t = ins[0]
    out = _expand_infer(ins, attrs)[0]
    lead = out.rank - t.rank
    return (0,) * lead + tuple(0 if (_is_one(s) and not _is_one(o)) else st
                               for s, o, st in zip(t.shape, out.shape[lead:], strides))


def _expand_ref(xp, x, shape):
    lead = len(shape) - x.ndim
    target = tuple([int(s) if not (isinstance(s, int) and s == -1) else x.shape[k - lead] for k, s in enumerate(shape)])
    return xp.broadcast_to(x, target)


register(OpDef(name="expand", saves=(), infer=_expand_infer, dims=_expand_dims, view_strides=_expand_strides,
               elements=lambda fs, attrs, ins, outs: broadcast_to(fs[0], ins[0], outs[0]),
               reference=_expand_ref, attrs={"shape": REQUIRED}, size_attrs=("shape",), shape_attr="shape", flops=lambda *a: 0,
               torch="{0}.expand({out_shape})",
               doc="expand(x, shape=...): broadcast size-1 axes (and new leading ones); a view. "
                   "Carries: the axes that are not broadcast."))


# -- squeeze / unsqueeze ----------------------------------------------------------


def _squeeze_axes(t: TensorType, axes) -> tuple[int, ...]:
    if axes is None:
        return tuple(k for k, s in enumerate(t.shape) if _is_one(s))
    return tuple(k for k in norm_axes("squeeze", axes, t.rank) if _is_one(t.shape[k]))


def _squeeze_infer(ins, attrs):
    t = ins[0]
    axes = _squeeze_axes(t, attrs["axes"])
    return (t.with_shape(tuple(s for k, s in enumerate(t.shape) if k not in axes)),)


def _squeeze_dims(ins, attrs, outs) -> DimRecord:
    # the op drops the named axes (all with axes=None) that have size 1 *at run time*: a chunk of
    # length 1 of a named axis would be dropped too, so only the axes not named carry
    t = ins[0]
    axes = _squeeze_axes(t, attrs["axes"])
    named = range(t.rank) if attrs["axes"] is None else norm_axes("squeeze", attrs["axes"], t.rank)
    return (tuple(MIX if k in named else AxisFlow("carry", (AxisSource(0, k),)) for k in range(t.rank) if k not in axes),)


def _squeeze_ref(xp, x, axes):
    named = range(x.ndim) if axes is None else norm_axes("squeeze", axes, x.ndim)
    return xp.reshape(x, tuple([s for k, s in enumerate(x.shape) if not (s == 1 and k in named)]))


def _squeeze_torch(ctx: LoweringContext) -> str:
    axes = _squeeze_axes(ctx.in_type(0), ctx.attrs["axes"])
    if not axes:
        return f"{ctx.arg(0)}.view_as({ctx.arg(0)})"  # nothing to drop: a view, as in the IR
    return f"{ctx.arg(0)}.squeeze({ctx.lit(axes)})"


def _squeeze_elements(fs, attrs, ins, outs):
    axes = _squeeze_axes(ins[0], attrs["axes"])
    kept = [k for k in range(ins[0].rank) if k not in axes]
    position = [sympy.Integer(0)] * ins[0].rank
    for j, k in enumerate(kept):
        position[k] = index(j)
    return at(fs[0], position)


register(OpDef(name="squeeze", saves=(), infer=_squeeze_infer, dims=_squeeze_dims, elements=_squeeze_elements,
               view_strides=lambda ins, attrs, st: tuple(s for k, s in enumerate(st) if k not in _squeeze_axes(ins[0], attrs["axes"])),
               reference=_squeeze_ref, torch=_squeeze_torch, attrs={"axes": None}, flops=lambda *a: 0,
               doc="squeeze(x, axes=None): drop size-1 axes (those of `axes` that have size 1); a view. "
                   "Carries: the axes not named in `axes` (with axes=None none: a chunk of length 1 of a named "
                   "axis would be dropped too)."))


def _unsqueeze_axis(t: TensorType, axis: int) -> int:
    return norm_axis("unsqueeze", axis, t.rank + 1)


def _unsqueeze_infer(ins, attrs):
    t = ins[0]
    a = _unsqueeze_axis(t, attrs["axis"])
    return (t.with_shape(t.shape[:a] + (1,) + t.shape[a:]),)


def _unsqueeze_dims(ins, attrs, outs) -> DimRecord:
    t = ins[0]
    a = _unsqueeze_axis(t, attrs["axis"])
    flows = [AxisFlow("carry", (AxisSource(0, k),)) for k in range(t.rank)]
    flows.insert(a, NEW)
    return (tuple(flows),)


def _unsqueeze_strides(ins, attrs, st):
    t = ins[0]
    a = _unsqueeze_axis(t, attrs["axis"])
    inner = normalize(st[a] * t.shape[a]) if a < t.rank else 1
    return tuple(st[:a]) + (inner,) + tuple(st[a:])


def _unsqueeze_ref(xp, x, axis):
    # indexed with None, not xp.expand_dims: that reshapes through a shape list, and each call
    # left a block in CPython's tuple free list, which tracemalloc counts (48 B per iteration
    # of a chunk loop, up to 2000 of them; fuzz case 11000132)
    return x[(slice(None),) * (axis % (x.ndim + 1)) + (None,)]


def _unsqueeze_elements(fs, attrs, ins, outs):
    a = _unsqueeze_axis(ins[0], attrs["axis"])
    return at(fs[0], [index(k if k < a else k + 1) for k in range(ins[0].rank)])


register(OpDef(name="unsqueeze", saves=(), infer=_unsqueeze_infer, dims=_unsqueeze_dims, view_strides=_unsqueeze_strides,
               elements=_unsqueeze_elements,
               reference=_unsqueeze_ref, attrs={"axis": REQUIRED}, flops=lambda *a: 0,
               torch="{0}.unsqueeze({axis})",
               doc="unsqueeze(x, axis=k): insert a size-1 axis; a view. Carries: every axis of x."))


# -- slice ------------------------------------------------------------------------


def _slice_bounds(t: TensorType, attrs):
    axis = norm_axis("slice", attrs["axis"], t.rank)
    size = t.shape[axis]
    start, end, step = attrs["start"], attrs["end"], attrs["step"]
    if not isinstance(step, int) or step < 1:
        raise fail("slice", f"step must be a positive int, got {step!r}")
    return axis, size, start, end, step


def _clip(v, size, default):
    if v is None:
        return default
    if isinstance(v, int) and isinstance(size, int):
        if v < 0:
            v += size
        return max(0, min(v, size))
    if isinstance(v, int) and v < 0:
        return normalize(size + v)
    if isinstance(v, int) and not isinstance(size, int):
        return v  # assumed within range of the symbolic size
    return normalize(v)


def _slice_infer(ins, attrs):
    t = ins[0]
    axis, size, start, end, step = _slice_bounds(t, attrs)
    s = _clip(start, size, 0)
    e = _clip(end, size, size)
    if isinstance(end, int) and end >= 2**62:  # PyTorch's "to the end" sentinel
        e = size
    length = normalize(sympy.ceiling((sympy.sympify(e) - sympy.sympify(s)) / step)) if step > 1 else normalize(e - s)
    if isinstance(length, int) and length < 0:
        length = 0
    return (t.with_shape(t.shape[:axis] + (length,) + t.shape[axis + 1:]),)


def _slice_dims(ins, attrs, outs) -> DimRecord:
    # the sliced axis mixes (its rows shift by `start`), unless the slice keeps the whole axis
    # (``x[:, 0:2**63-1]`` in exported graphs): then a chunk of it is sliced whole too, and it carries
    t = ins[0]
    axis = norm_axis("slice", attrs["axis"], t.rank)
    whole = attrs["step"] == 1 and sizes_equal(outs[0].shape[axis], t.shape[axis])
    return (tuple(MIX if k == axis and not whole else AxisFlow("carry", (AxisSource(0, k),)) for k in range(t.rank)),)


def _slice_ref(xp, x, axis, start, end, step):
    index = [slice(None)] * x.ndim
    index[axis] = slice(None if start is None else int(start), None if end is None else int(end), step)
    return x[tuple(index)]


def _slice_torch(ctx: LoweringContext) -> str:
    axis = norm_axis("slice", ctx.attrs["axis"], ctx.in_type(0).rank)
    start, end, step = (ctx.attrs[k] for k in ("start", "end", "step"))
    bound = lambda v: "" if v is None else ctx.lit(v)  # noqa: E731
    index = f"{bound(start)}:{bound(end)}" + (f":{step}" if step != 1 else "")
    return f"{ctx.arg(0)}[{':, ' * axis}{index}]"


def _slice_elements(fs, attrs, ins, outs):
    t = ins[0]
    axis, size, start, _, step = _slice_bounds(t, attrs)
    first = _clip(start, size, 0)
    if isinstance(start, int) and start < 0 and not isinstance(size, int):
        return None  # a start counted from the end of a symbolic axis may clip at 0
    position = list(indices(t.rank))
    position[axis] = first + step * index(axis)
    return at(fs[0], position)


register(OpDef(name="slice", saves=(), infer=_slice_infer, dims=_slice_dims, torch=_slice_torch, elements=_slice_elements,
               view_strides=lambda ins, attrs, st: tuple(normalize(s * attrs["step"]) if k == norm_axis("slice", attrs["axis"], ins[0].rank) else s
                                                        for k, s in enumerate(st)),
               reference=_slice_ref, attrs={"axis": REQUIRED, "start": None, "end": None, "step": 1},
               size_attrs=("start", "end"),
               flops=lambda *a: 0, doc="slice(x, axis=, start=, end=, step=1): a view; negative bounds count from the end. "
                   "Carries: every axis but `axis` (and `axis` too when the slice keeps all of it)."))


# -- contiguous -------------------------------------------------------------------


register(OpDef(name="contiguous", saves=(), infer=lambda ins, attrs: (ins[0],), elements=lambda fs, *_: fs[0],
               dims=lambda ins, attrs, outs: (tuple(AxisFlow("carry", (AxisSource(0, k),)) for k in range(ins[0].rank)),),
               view_strides=lambda ins, attrs, st: tuple(st) if is_contiguous(ins[0].shape, st) else None,
               reference=lambda xp, x: xp.ascontiguousarray(x).reshape(x.shape), flops=lambda *a: 0,
               torch="{0}.contiguous()",
               doc="contiguous(x): x itself when already contiguous, else a contiguous copy. Carries: every axis."))

register(OpDef(name="copy", saves=(), infer=lambda ins, attrs: (ins[0],), elements=lambda fs, *_: fs[0],
               dims=lambda ins, attrs, outs: (tuple(AxisFlow("carry", (AxisSource(0, k),)) for k in range(ins[0].rank)),),
               reference=lambda xp, x: x.copy(), flops=lambda *a: 0,
               torch="{0}.clone(memory_format=torch.contiguous_format)",
               doc="copy(x): a fresh contiguous copy. Carries: every axis."))

__all__ = ["contiguous_strides", "is_contiguous", "resolve_shape", "reshape_groups", "Fraction"]
