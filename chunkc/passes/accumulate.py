"""Accumulating regions: a chunk loop that reduces its own chunk axis.

An op whose record ``accumulates`` (chunkc.ir.dims.Accumulation) over an axis of
its input may run in a loop that slices that input along the axis: each
iteration computes the op on its slice (the *partial*), scales it by the slice's
share of the axis when the record says ``share`` (a mean), and merges it into the
*accumulator* with the record's elementwise ``combine`` function (the first
partial is taken as it is).  A contraction's other operand (the record's
``partners``: ``B`` in ``A[:, c] @ B[c, :]``) is sliced chunk for chunk with input 0.  The accumulator has the output's full (small) shape,
is a region output (``ChunkRegion.accumulators``), and is final only once the loop
ends, so no node of the loop may read it.

This module holds what the search, the plan analysis, the reference interpreter
and the code generators share: the legality questions asked of a node's record
and the merge step itself.
"""

from __future__ import annotations

from typing import Any, Container, Mapping, Sequence

from ..ir.dims import Accumulation
from ..ir.graph import Node, Value
from ..ir.sizes import sizes_equal


def accumulation(node: Node, input: int, axis: int) -> Accumulation | None:
    """How ``node``'s output merges across slices of its input ``input`` along ``axis``
    (its record's ``accumulates``), or None when it does not."""
    fn = node.op.accumulates
    if fn is None or not 0 <= input < len(node.inputs) or not 0 <= axis < node.inputs[input].rank:
        return None
    return fn([v.type for v in node.inputs], node.attrs, input, axis)


def sliced_axes(axis: int, how: Accumulation) -> dict[int, int]:
    """Input position -> the axis a loop accumulating over ``axis`` of input 0 slices it
    along (input 0 and the record's partners; every other input is read whole)."""
    return {0: axis, **dict(how.partners)}


def accumulating_end(node: Node, axis: int) -> Accumulation | None:
    """Whether a region may end at ``node`` accumulating over ``axis`` of its input 0:
    one output, not a view, a record that accumulates there, partners whose axes have
    the same size, and no value read at two positions in two different ways."""
    if len(node.outputs) != 1 or not node.inputs or node.op.may_alias:
        return None
    how = accumulation(node, 0, axis)
    if how is None:
        return None
    size = node.inputs[0].shape[axis]
    for pos, a in how.partners:
        if not (0 < pos < len(node.inputs) and 0 <= a < node.inputs[pos].rank
                and sizes_equal(node.inputs[pos].shape[a], size)):
            return None
    sliced = sliced_axes(axis, how)
    seen: dict[Value, int | None] = {}
    for pos, v in enumerate(node.inputs):
        if seen.setdefault(v, sliced.get(pos)) != sliced.get(pos):
            return None  # the same value would be read sliced and whole, or along two axes
    return how


def accumulating_axes(node: Node) -> list[int]:
    """Axes of ``node``'s input 0 a region ending at it may accumulate over (not of static size 1)."""
    if not node.inputs:
        return []
    x = node.inputs[0]
    return [a for a, s in enumerate(x.shape) if not (isinstance(s, int) and s <= 1)
            and accumulating_end(node, a) is not None]


def accumulates_in_loop(node: Node, chunk_req: Mapping[Value, tuple],
                        read_in_span: Sequence[Container[Value]]) -> tuple[tuple[int, ...], dict[int, tuple]] | None:
    """When ``node`` can run in a loop as an accumulator: the input positions it reads whole
    and the (axis, unit) of each partner input it reads sliced; else None.  ``chunk_req``
    gives the (axis, unit) at which the loop slices each value; ``read_in_span`` holds the
    values a node of the span reads whole, in one or more collections (a reader in the span
    would see an unfinished accumulator)."""
    if not node.inputs:
        return None
    req = chunk_req.get(node.inputs[0])
    if req is None or any(node.outputs[0] in read for read in read_in_span):
        return None
    how = accumulating_end(node, req[0])
    if how is None:
        return None
    partners = {pos: (a, req[1]) for pos, a in how.partners}
    if any(chunk_req.get(node.inputs[pos], r) != r for pos, r in partners.items()):
        return None  # a partner the loop already slices another way
    return tuple(p for p in range(1, len(node.inputs)) if p not in partners), partners


def softmax_merge(xp, acc: Any, part: Any) -> None:
    """Merge ``part`` into ``acc`` in place, both ``[..., n + 1]`` partial softmax-weighted sums
    with their log-sum-exp in the last column (the combine ``softmax_merge``, see
    chunkc.ir.dims.Combine); ``xp`` is NumPy, CuPy or torch.  ``part`` is overwritten.  The
    temporaries are a few ``[..., 1]`` columns (the lse's), far below the partial's own kernel."""
    a, b = acc[..., -1:], part[..., -1:]
    merged = xp.logaddexp(a, b)
    base = xp.where(xp.isneginf(merged), xp.zeros_like(merged), merged)  # no key yet: weights exp(-inf) = 0
    acc[..., :-1] *= xp.exp(a - base)
    part[..., :-1] *= xp.exp(b - base)
    acc[..., :-1] += part[..., :-1]
    acc[..., -1:] = merged


# Merges that are not one elementwise function: generated code calls them as
# ``<helpers>.<combine>(<array module>, acc, part)`` (chunkc.backends.codegen.Dialect.merge_helpers).
COMBINERS = {"softmax_merge": softmax_merge}


def merge_partial(xp, acc: Any, part: Any, how: Accumulation, share: float) -> Any:
    """The reference merge step: ``part`` (this iteration's partial, owned by the loop)
    scaled by ``share`` when ``how.share``, merged into ``acc`` (None before the first)."""
    part = xp.array(part, copy=True)  # the accumulator owns its storage
    if how.share:
        part = xp.asarray(part * share, dtype=part.dtype)
    if acc is None:
        return part
    if how.combine in COMBINERS:
        COMBINERS[how.combine](xp, acc, part)
    else:
        getattr(xp, how.combine)(acc, part, out=acc)
    return acc


def merge_lines(xp: str, acc: str, part: str, how: Accumulation, share: str, first: str,
                helpers: str = "rt") -> list[str]:
    """Generated code (NumPy, CuPy or PyTorch: ``xp`` names the module) that merges the
    partial ``part`` into ``acc``; ``first`` is the condition of the first iteration;
    ``helpers`` names the module that holds :data:`COMBINERS` in the generated code."""
    lines = [f"{part} *= {share}  # its share of the axis"] if how.share else []
    merge = f"{helpers}.{how.combine}({xp}, {acc}, {part})" if how.combine in COMBINERS else \
        f"{xp}.{how.combine}({acc}, {part}, out={acc})"
    return lines + [f"if {first}:",
                    f"    {acc} = {part}",
                    "else:",
                    f"    {merge}"]


__all__ = ["accumulation", "sliced_axes", "accumulating_end", "accumulating_axes", "accumulates_in_loop", "merge_partial",
           "merge_lines", "softmax_merge", "COMBINERS"]
