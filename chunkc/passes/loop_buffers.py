"""Where a chunk loop writes an output it makes whole: the rule the code generator and the
memory estimator share.

A region's output that no accumulator merges is written a chunk at a time into a buffer that
exists before the loop (``Generator.open_region``):

* the storage of a region input that dies with the loop (``RegionView.reuse``), laid out as
  that input is;
* else a fresh buffer in C order (the dialect's ``empty``).

Not the layout the op that makes the value gives it in the unchunked program: an elementwise
op over heads permuted from ``[B, L, H, D]`` lays its result out permuted, so a reshape after
it copies there, while a reshape of the loop's C-order buffer is a view (and the other way
round for a permute back).  The estimator lays the value out as its buffer is
(:class:`chunkc.passes.memory.MemoryModel`, ``loop_buffers``), so that whatever reads it
after the loop is judged on the strides the program has.

Imports nothing from the backends, so that both sides can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ..ir.graph import Value
from ..ir.layout import Strides, contiguous_strides
from .plan_index import RegionView


@dataclass(frozen=True, eq=False)
class LoopBuffer:
    """The buffer a loop writes ``value`` into: the storage of ``in_place_of`` (an input that
    dies with the loop), or a fresh C-order buffer when that is None."""

    value: Value
    in_place_of: Value | None = None

    def strides(self, shape: Sequence[int], strides_of: Callable[[Value], Strides]) -> Strides:
        """The value's strides after the loop, at the concrete ``shape``; ``strides_of``
        gives a value's strides (the input taken in place keeps its own)."""
        if self.in_place_of is not None:
            return tuple(strides_of(self.in_place_of))
        return contiguous_strides(shape)


def loop_buffer(view: RegionView, v: Value) -> LoopBuffer | None:
    """The buffer output ``v`` of the region is written into; None for an accumulator (its
    first partial is the buffer, merged into by the later ones)."""
    if v in view.accumulators:
        return None
    return LoopBuffer(v, view.reuse.get(v))


def loop_buffers(views: Iterable[RegionView]) -> list[LoopBuffer]:
    """Every buffer of every region, in the regions' order."""
    return [b for view in views for v in view.outputs if (b := loop_buffer(view, v)) is not None]


__all__ = ["LoopBuffer", "loop_buffer", "loop_buffers"]
