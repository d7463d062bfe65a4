"""Indexing: advanced indexing with index tensors, index_select, embedding, gather.

``x[i0, i1]`` with several index tensors becomes one ``take`` on the indexed
axes merged into one (the linear index ``i0*n1 + i1``), after moving the
indexed axes together as torch does.
"""

from __future__ import annotations

import torch

from chunkc.ir.dtypes import DType
from chunkc.ir.sizes import normalize

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


def _wrap_negative(cx: Ctx, idx, size):
    """torch indices may count from the end."""
    neg = cx.op("lt", idx, cx.const(0, idx.dtype))
    return cx.op("where", neg, cx.op("add", idx, cx.tensor(size, idx.dtype)), idx)


@converts(aten.index, aten._unsafe_index)
def index(cx: Ctx, a: Args):
    x = a.self
    indices = list(a.indices)
    pos = [k for k, ix in enumerate(indices) if ix is not None]
    if not pos:
        return x
    for k in pos:
        if indices[k].dtype == DType.bool:
            raise cx.fail("boolean mask indexing has a data-dependent result size")
    if len(pos) == 1:
        return cx.op("take", x, cx.cast(indices[pos[0]], DType.int64), axis=pos[0])
    # Several index tensors: bring the indexed axes together (first, when torch would put
    # the result there because they are not adjacent), merge them, take a linear index.
    idx_list = [indices[k] for k in pos]
    if pos != list(range(pos[0], pos[0] + len(pos))):  # not adjacent: torch puts the result first
        rest = [k for k in range(x.rank) if k not in pos]
        x = cx.op("permute", x, dims=tuple(pos + rest))
        pos = list(range(len(pos)))
    first = pos[0]
    sizes = [x.shape[first + i] for i in range(len(pos))]
    linear = None
    for i, (ix, n) in enumerate(zip(idx_list, sizes)):
        ix = _wrap_negative(cx, cx.cast(ix, DType.int64), n)
        stride = normalize(_product(sizes[i + 1:]))
        term = ix if (isinstance(stride, int) and stride == 1) else cx.op("mul", ix, cx.tensor(stride, DType.int64))
        linear = term if linear is None else cx.op("add", linear, term)
    merged_shape = tuple(x.shape[:first]) + (normalize(_product(sizes)),) + tuple(x.shape[first + len(pos):])
    merged = cx.op("reshape", x, shape=merged_shape)
    return cx.op("take", merged, linear, axis=first)


def _product(sizes):
    out = 1
    for s in sizes:
        out = out * s
    return out


@converts(aten.index_select)
def index_select(cx: Ctx, a: Args):
    x = a.self
    return cx.op("take", x, cx.cast(a.index, DType.int64), axis=a.dim % max(x.rank, 1))


@converts(aten.embedding)
def embedding(cx: Ctx, a: Args):
    return cx.op("embedding", a.weight, cx.cast(a.indices, DType.int64))


@converts(aten.gather)
def gather(cx: Ctx, a: Args):
    x = a.self
    return cx.op("gather", x, cx.cast(a.index, DType.int64), axis=a.dim % max(x.rank, 1))


@converts(aten.take)
def take_flat(cx: Ctx, a: Args):
    flat = cx.op("reshape", a.self, shape=(-1,))
    return cx.op("take", flat, cx.cast(a.index, DType.int64), axis=0)
