"""Tensor creation: arange, full/zeros/ones/empty and their ``_like``/``new_`` forms.

Shapes and ``arange`` bounds may be symbolic (``arange(L)``); the element type
is the one torch computed for the node.  ``empty`` is filled with zeros.
"""

from __future__ import annotations

import torch

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


def _fill(cx: Ctx, shape, value):
    dt = cx.out_dtype()
    if not isinstance(value, (bool, int, float)):
        raise cx.fail(f"fill value {value!r} is not a number (a tensor or a symbolic size)")
    value = bool(value) if dt.name == "bool" else float(value) if dt.is_floating else int(value)
    return cx.op("full", shape=tuple(shape), value=value, dtype=dt)


_ZEROS_ONES = {aten.zeros: 0, aten.ones: 1, aten.empty: 0, aten.new_zeros: 0, aten.new_ones: 1,
               aten.new_empty: 0, aten.empty_strided: 0, aten.new_empty_strided: 0}


@converts(*_ZEROS_ONES)
def zeros_ones(cx: Ctx, a: Args):
    return _fill(cx, a.size, _ZEROS_ONES[cx.node.target.overloadpacket])


@converts(aten.full, aten.new_full)
def full(cx: Ctx, a: Args):
    value = a.fill_value
    if not isinstance(value, (bool, int, float)) and hasattr(value, "free_symbols"):
        return cx.op("expand", cx.tensor(value, cx.out_dtype()), shape=tuple(a.size))
    return _fill(cx, a.size, value)


_LIKE = {aten.zeros_like: 0, aten.ones_like: 1, aten.empty_like: 0}


@converts(*_LIKE, aten.full_like)
def like(cx: Ctx, a: Args):
    packet = cx.node.target.overloadpacket
    value = _LIKE[packet] if packet in _LIKE else a.fill_value
    dt = cx.out_dtype()
    value = bool(value) if dt.name == "bool" else float(value) if dt.is_floating else int(value)
    return cx.op("full_like", a.self, value=value, dtype=dt)


@converts(aten.scalar_tensor)
def scalar_tensor(cx: Ctx, a: Args):
    return cx.tensor(a.s, cx.out_dtype())


@converts(aten.arange)
def arange(cx: Ctx, a: Args):
    start, end, step = a.get("start", 0), a.end, a.get("step", 1)
    for v in (start, end, step):
        if not isinstance(v, (int, float)) and not hasattr(v, "free_symbols"):
            raise cx.fail(f"arange bound {v!r} is neither a number nor a size")
    return cx.op("arange", start=start, end=end, step=step, dtype=cx.out_dtype())
