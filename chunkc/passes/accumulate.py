"""Accumulating regions: a chunk loop that reduces its own chunk axis.

An op whose record ``accumulates`` (chunkc.ir.dims.Accumulation) over an axis of
its input may run in a loop that slices that input along the axis: each
iteration computes the op on its slice (the *partial*), scales it by the slice's
share of the axis when the record says ``share`` (a mean), and merges it into the
*accumulator* with the record's elementwise ``combine`` function (the first
partial is taken as it is).  The accumulator has the output's full (small) shape,
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


def accumulation(node: Node, input: int, axis: int) -> Accumulation | None:
    """How ``node``'s output merges across slices of its input ``input`` along ``axis``
    (its record's ``accumulates``), or None when it does not."""
    fn = node.op.accumulates
    if fn is None or not 0 <= input < len(node.inputs) or not 0 <= axis < node.inputs[input].rank:
        return None
    return fn([v.type for v in node.inputs], node.attrs, input, axis)


def accumulating_end(node: Node, axis: int) -> Accumulation | None:
    """Whether a region may end at ``node`` accumulating over ``axis`` of its input 0:
    one output, not a view, and a record that accumulates there."""
    if len(node.outputs) != 1 or not node.inputs or node.op.may_alias:
        return None
    if any(v is node.inputs[0] for v in node.inputs[1:]):
        return None  # the same value would be read sliced and whole
    return accumulation(node, 0, axis)


def accumulating_axes(node: Node) -> list[int]:
    """Axes of ``node``'s input 0 a region ending at it may accumulate over (not of static size 1)."""
    if not node.inputs:
        return []
    x = node.inputs[0]
    return [a for a, s in enumerate(x.shape) if not (isinstance(s, int) and s <= 1)
            and accumulating_end(node, a) is not None]


def accumulates_in_loop(node: Node, chunk_req: Mapping[Value, tuple],
                        read_in_span: Sequence[Container[Value]]) -> tuple[int, ...] | None:
    """When ``node`` can run in a loop as an accumulator, the input positions it reads
    whole (every input but 0); else None.  ``chunk_req`` gives the (axis, unit) at which
    the loop slices each value; ``read_in_span`` holds the values a node of the span
    reads whole, in one or more collections (a reader in the span would see an
    unfinished accumulator)."""
    if not node.inputs:
        return None
    req = chunk_req.get(node.inputs[0])
    if req is None or any(node.outputs[0] in read for read in read_in_span) \
            or accumulating_end(node, req[0]) is None:
        return None
    return tuple(range(1, len(node.inputs)))


def merge_partial(xp, acc: Any, part: Any, how: Accumulation, share: float) -> Any:
    """The reference merge step: ``part`` (this iteration's partial, owned by the loop)
    scaled by ``share`` when ``how.share``, merged into ``acc`` (None before the first)."""
    part = xp.array(part, copy=True)  # the accumulator owns its storage
    if how.share:
        part = xp.asarray(part * share, dtype=part.dtype)
    if acc is None:
        return part
    getattr(xp, how.combine)(acc, part, out=acc)
    return acc


def merge_lines(xp: str, acc: str, part: str, how: Accumulation, share: str, first: str) -> list[str]:
    """Generated code (NumPy, CuPy or PyTorch: ``xp`` names the module) that merges the
    partial ``part`` into ``acc``; ``first`` is the condition of the first iteration."""
    lines = [f"{part} *= {share}  # its share of the axis"] if how.share else []
    return lines + [f"if {first}:",
                    f"    {acc} = {part}",
                    "else:",
                    f"    {xp}.{how.combine}({acc}, {part}, out={acc})"]


__all__ = ["accumulation", "accumulating_end", "accumulating_axes", "accumulates_in_loop", "merge_partial",
           "merge_lines"]
