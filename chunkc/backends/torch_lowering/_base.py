"""The lowering table and the helpers its rules share."""

from __future__ import annotations

import functools

import torch

from ...ir.dtypes import DType
from ..codegen import NodeContext, Rule

RULES: dict[str, Rule] = {}


def rule(*names: str):
    """Register the decorated function as the lowering of ops ``names``."""
    def deco(fn: Rule) -> Rule:
        for name in names:
            if name in RULES:
                raise ValueError(f"torch lowering for {name} defined twice")
            RULES[name] = fn
        return fn
    return deco


def torch_dtype(dt: DType) -> str:
    """``torch.float32`` for chunkc's f32 (names come from chunkc's dtype table)."""
    return f"torch.{dt.name}"


# -- helpers ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _torch_promotes_to(dtypes_and_ranks: tuple) -> DType:
    """The dtype PyTorch computes a promoting op in (0-d tensors weigh less than others)."""
    dt, rank = None, 0
    for name, r in dtypes_and_ranks:
        t = torch.empty((0,) * r, dtype=getattr(torch, name))
        if dt is None:
            dt, rank = t.dtype, r
            continue
        dt = torch.result_type(torch.empty((0,) * rank, dtype=dt), t)
        rank = max(rank, r)
    return DType[str(dt).removeprefix("torch.")]


def operands(ctx: NodeContext, indices, out: DType, inline_scalars: bool = False, strict: bool = False) -> list[str]:
    """Argument text for a promoting op, converted so that the op computes in ``out``.

    ``strict``: the PyTorch call wants every operand in ``out`` (matmul, linear).
    With ``inline_scalars``, a 0-d weight of the same dtype as the other operand
    and the result is written as a Python number (``x * 0.125``).
    """
    types = [ctx.in_type(i) for i in indices]
    key = tuple((t.dtype.name, t.rank) for t in types)
    cast_needed = strict or _torch_promotes_to(key) != out
    texts = []
    for i, t in zip(indices, types):
        others = [u for j, u in zip(indices, types) if j != i]
        if inline_scalars and t.dtype == out and all(u.dtype == out and u.rank > 0 for u in others):
            lit = ctx.scalar(i)
            if lit is not None:
                texts.append(lit)
                continue
        text = ctx.arg(i)
        if cast_needed and t.dtype != out:
            text = f"{text}.to({torch_dtype(out)})"
        texts.append(text)
    return texts


def call(fn: str) -> Rule:
    """The rule ``fn(arg0, arg1, ...)`` for ops without attributes."""
    return lambda ctx: f"{fn}({', '.join(ctx.args)})"


def input_axes(ctx: NodeContext, axes) -> tuple[int, ...]:
    """An ``axes`` attribute (None, an int or a tuple) as sorted non-negative axes of input 0."""
    rank = ctx.in_type(0).rank
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted({a % rank for a in axes})) if rank else ()


def keywords(**kwargs: str | None) -> str:
    """``, k=v`` for each keyword whose text is not None."""
    return "".join(f", {k}={v}" for k, v in kwargs.items() if v is not None)


def fill_none(args: list[str], n: int) -> list[str]:
    """Optional trailing inputs that are absent become ``None``."""
    return args + ["None"] * (n - len(args))
