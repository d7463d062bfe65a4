"""Shape ATen ops: views, reshapes, permutations, slicing, concatenation, splits.

Sizes in the arguments (view targets, slice ends) arrive as chunkc sizes, so
``view(x, [B, L, 12, 64])`` keeps ``L`` symbolic.  Where torch derives an
output size itself (``split`` into equal pieces, ``flatten``), the converter
reads it from the export's own shape for the node, mapped to chunkc symbols.
"""

from __future__ import annotations

import torch

from chunkc.errors import IRError
from chunkc.ir.dtypes import DType
from chunkc.ir.sizes import normalize, sizes_equal

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten
_END = 2**62  # anything at least this large is PyTorch's "to the end" (INT64_MAX)


def _axis(dim: int, rank: int) -> int:
    return dim % rank if rank else 0


@converts(aten.view, aten.reshape, aten._unsafe_view, aten.view_copy, aten._reshape_alias)
def view(cx: Ctx, a: Args):
    x = a.self
    shape = tuple(a.get("size", a.get("shape")))  # reshape names it shape, the views size
    try:
        return cx.op("reshape", x, shape=shape)
    except IRError:  # a -1 chunkc cannot solve symbolically: torch's own answer
        return cx.op("reshape", x, shape=tuple(cx.out.shape))


@converts(aten.flatten, aten.unflatten, aten.view_as, aten.reshape_as, aten.ravel)
def reshape_to_out(cx: Ctx, a: Args):
    return cx.op("reshape", a.self, shape=tuple(cx.out.shape))


@converts(aten.as_strided, aten.as_strided_copy)
def as_strided(cx: Ctx, a: Args):
    # Only the layout-preserving case: a contiguous input read with contiguous strides
    # (what several decompositions emit to restore a memory format) is a reshape.
    src = cx.fx_args["self"].meta.get("val")
    size, stride = [normalize(s) for s in a.size], [normalize(s) for s in a.stride]
    offset = a.get("storage_offset", 0) or 0
    want, acc = [], 1
    for s in reversed(size):
        want.append(acc)
        acc = normalize(acc * s)
    want.reverse()
    contiguous_in = src is not None and src.is_contiguous()
    if offset == 0 and contiguous_in and all((isinstance(n, int) and n == 1) or sizes_equal(st, w)
                                             for n, st, w in zip(size, stride, want)) \
            and sizes_equal(normalize(acc), a.self.type.numel()):
        return cx.op("reshape", a.self, shape=tuple(size))
    raise cx.fail(f"as_strided(size={size}, stride={stride}, offset={offset}) reads memory in a way "
                  "chunkc's value semantics cannot express")


@converts(aten.expand, aten.expand_copy)
def expand(cx: Ctx, a: Args):
    return cx.op("expand", a.self, shape=tuple(a.size))


@converts(aten.expand_as)
def expand_as(cx: Ctx, a: Args):
    return cx.op("expand", a.self, shape=tuple(a.other.shape))


@converts(aten.permute, aten.permute_copy)
def permute(cx: Ctx, a: Args):
    dims = tuple(_axis(d, a.self.rank) for d in a.dims)
    if dims == tuple(range(a.self.rank)):
        return a.self
    return cx.op("permute", a.self, dims=dims)


@converts(aten.transpose, aten.swapaxes, aten.swapdims)
def transpose(cx: Ctx, a: Args):
    x = a.self
    d0, d1 = _axis(a.get("dim0", a.get("axis0")), x.rank), _axis(a.get("dim1", a.get("axis1")), x.rank)
    if d0 == d1:
        return x
    perm = list(range(x.rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return cx.op("permute", x, dims=tuple(perm))


@converts(aten.t, aten.numpy_T)
def t(cx: Ctx, a: Args):
    x = a.self
    if x.rank < 2:
        return x
    return cx.op("permute", x, dims=tuple(reversed(range(x.rank))))


@converts(aten.movedim)
def movedim(cx: Ctx, a: Args):
    x = a.self
    src = [_axis(d, x.rank) for d in (a.source if isinstance(a.source, (list, tuple)) else [a.source])]
    dst = [_axis(d, x.rank) for d in (a.destination if isinstance(a.destination, (list, tuple)) else [a.destination])]
    rest = [d for d in range(x.rank) if d not in src]
    perm = [None] * x.rank
    for s, d in zip(src, dst):
        perm[d] = s
    it = iter(rest)
    perm = [p if p is not None else next(it) for p in perm]
    return cx.op("permute", x, dims=tuple(perm))


@converts(aten.squeeze, aten.squeeze_copy)
def squeeze(cx: Ctx, a: Args):
    x = a.self
    dims = a.get("dim")
    if dims is None:
        axes = None
    else:
        axes = tuple(_axis(d, x.rank) for d in (dims if isinstance(dims, (list, tuple)) else [dims]))
        axes = tuple(k for k in axes if isinstance(x.shape[k], int) and x.shape[k] == 1)
        if not axes:
            return x
    return cx.op("squeeze", x, axes=axes)


@converts(aten.unsqueeze, aten.unsqueeze_copy)
def unsqueeze(cx: Ctx, a: Args):
    return cx.op("unsqueeze", a.self, axis=_axis(a.dim, a.self.rank + 1))


def slice_value(cx: Ctx, x, dim: int, start, end, step: int = 1):
    axis = _axis(dim, x.rank)
    start = None if start is None or (isinstance(start, int) and start == 0) else start
    end = None if end is None or (isinstance(end, int) and end >= _END) else end
    if end is not None and sizes_equal(normalize(end), x.shape[axis]):
        end = None
    if start is None and end is None and step == 1:
        return x
    return cx.op("slice", x, axis=axis, start=start, end=end, step=int(step))


@converts(aten.slice, aten.slice_copy)
def slice_(cx: Ctx, a: Args):
    return slice_value(cx, a.self, a.get("dim", 0), a.get("start"), a.get("end"), a.get("step", 1))


@converts(aten.narrow, aten.narrow_copy)
def narrow(cx: Ctx, a: Args):
    start = a.start
    if not isinstance(start, int) and not hasattr(start, "free_symbols"):
        raise cx.fail("narrow with a tensor start is data-dependent")
    return slice_value(cx, a.self, a.dim, start, normalize(start + a.length))


@converts(aten.select, aten.select_copy)
def select(cx: Ctx, a: Args):
    x, axis, index = a.self, _axis(a.dim, a.self.rank), a.index
    end = None if (isinstance(index, int) and index == -1) else normalize(index + 1)
    y = cx.op("slice", x, axis=axis, start=index, end=end, step=1)
    return cx.op("squeeze", y, axes=(axis,))


@converts(aten.slice_scatter)
def slice_scatter(cx: Ctx, a: Args):
    x, src = a.self, cx.tensor(a.src, a.self.dtype)
    step = a.get("step", 1)
    if step != 1:
        raise cx.fail("slice_scatter with a step other than 1")
    axis = _axis(a.get("dim", 0), x.rank)
    return _splice(cx, x, src, axis, a.get("start"), a.get("end"))


@converts(aten.select_scatter)
def select_scatter(cx: Ctx, a: Args):
    x = a.self
    axis = _axis(a.dim, x.rank)
    src = cx.op("unsqueeze", cx.tensor(a.src, x.dtype), axis=axis)
    index = a.index
    end = None if (isinstance(index, int) and index == -1) else normalize(index + 1)
    return _splice(cx, x, src, axis, index, end)


def _splice(cx: Ctx, x, src, axis, start, end):
    """``x`` with ``x[start:end]`` along ``axis`` replaced by ``src`` (a concat of three pieces)."""
    size = x.shape[axis]
    start = 0 if start is None else start
    if isinstance(start, int) and start < 0:
        start = normalize(size + start)
    end = size if end is None or (isinstance(end, int) and end >= _END) else end
    if isinstance(end, int) and end < 0:
        end = normalize(size + end)
    pieces = []
    if not (isinstance(start, int) and start == 0):
        pieces.append(cx.op("slice", x, axis=axis, start=None, end=start, step=1))
    pieces.append(src)
    if not sizes_equal(normalize(end), size):
        pieces.append(cx.op("slice", x, axis=axis, start=end, end=None, step=1))
    return pieces[0] if len(pieces) == 1 else cx.op("concat", *pieces, axis=axis)


@converts(aten.cat, aten.concat, aten.concatenate)
def cat(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    xs = [cx.tensor(v, dt) for v in a.tensors]
    # torch still accepts legacy empty 1-D tensors among N-D ones
    ranked = [v for v in xs if not (v.rank == 1 and v.shape[0] == 0)] or xs
    if len(ranked) == 1:
        return ranked[0]
    return cx.op("concat", *ranked, axis=_axis(a.get("dim", 0), ranked[0].rank))


@converts(aten.stack)
def stack(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    xs = [cx.tensor(v, dt) for v in a.tensors]
    return cx.op("stack", *xs, axis=_axis(a.get("dim", 0), xs[0].rank + 1))


@converts(aten.split_with_sizes, aten.split, aten.chunk, aten.tensor_split, aten.split_with_sizes_copy,
          aten.split_copy, aten.unsafe_split, aten.unsafe_split_with_sizes)
def split(cx: Ctx, a: Args):
    x = a.self
    axis = _axis(a.get("dim", 0), x.rank)
    sizes = a.get("split_sizes", a.get("split_size"))
    if not isinstance(sizes, (list, tuple)):
        sizes = [t.shape[axis] for t in cx.out_types]  # equal pieces: torch's own sizes
    sizes = tuple(normalize(s) for s in sizes)
    if len(sizes) == 1:
        return (x,)
    return cx.op_multi("split", x, sizes=sizes, axis=axis)


@converts(aten.unbind, aten.unbind_copy)
def unbind(cx: Ctx, a: Args):
    x = a.self
    axis = _axis(a.get("dim", 0), x.rank)
    n = len(cx.out_types)
    pieces = (x,) if n == 1 else cx.op_multi("split", x, sizes=(1,) * n, axis=axis)
    return tuple(cx.op("squeeze", p, axes=(axis,)) for p in pieces)


@converts(aten.flip)
def flip(cx: Ctx, a: Args):
    return cx.op("flip", a.self, axes=tuple(_axis(d, a.self.rank) for d in a.dims))


@converts(aten.roll)
def roll(cx: Ctx, a: Args):
    x = a.self
    shifts, dims = list(a.shifts), list(a.get("dims", []) or [])
    if not dims:  # roll of the flattened tensor
        flat = cx.op("reshape", x, shape=(-1,))
        rolled = cx.op("roll", flat, shifts=tuple(shifts), axes=(0,))
        return cx.op("reshape", rolled, shape=tuple(x.shape))
    return cx.op("roll", x, shifts=tuple(shifts), axes=tuple(_axis(d, x.rank) for d in dims))


@converts(aten.repeat, aten.tile)
def tile(cx: Ctx, a: Args):
    reps = tuple(a.repeats if "repeats" in a else a.dims)
    return cx.op("tile", a.self, repeats=reps)


@converts(aten.triu, aten.tril)
def triangle(cx: Ctx, a: Args):
    name = "triu" if cx.node.target.overloadpacket is aten.triu else "tril"
    return cx.op(name, a.self, diagonal=int(a.get("diagonal", 0)))


@converts(aten.diff)
def diff(cx: Ctx, a: Args):
    """``x[1:] - x[:-1]`` along ``dim``, ``n`` times, after ``prepend``/``append`` (bools: ``!=``)."""
    x = a.self
    axis = _axis(a.get("dim", -1), x.rank)
    pieces = [v for v in (a.get("prepend"), x, a.get("append")) if v is not None]
    if len(pieces) > 1:
        x = cx.op("concat", *[cx.tensor(v, x.dtype) for v in pieces], axis=axis)
    step = "ne" if x.dtype == DType.bool else "sub"
    for _ in range(a.get("n", 1)):
        size = x.shape[axis]
        later = cx.op("slice", x, axis=axis, start=1, end=None, step=1)
        earlier = cx.op("slice", x, axis=axis, start=None, end=normalize(size - 1), step=1)
        x = cx.op(step, later, earlier)
    return x
