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

**The in-place rule** (:func:`host_problem`, the one statement of it): region input ``x`` may
host region output ``y`` (``y``'s chunks are written into ``x``'s storage, so the loop makes no
new buffer and ``x``'s bytes become ``y``'s) when

* ``x`` is fresh storage a node made: not a graph input or weight (a user's array is never
  overwritten), not a view whose storage is shared with a value the loop reads otherwise
  (``shared_read_in``), not a view holding one element at several indices (an ``expand``);
* ``x`` dies with the loop: nothing after it reads ``x`` or a view of it, and it is no graph
  output;
* the loop reads ``x`` only as the current chunk's slice, along ``y``'s chunk axis and unit
  (no halo rows, no whole read: a key projection of the layer input inside the loop, or an
  inner loop over key rows, reads rows other iterations own);
* ``x`` and ``y`` have one type (shape and dtype).

One exception to the whole reads: a region that runs its chunks last first
(``ChunkRegion.last_first``) may write over an input that inner loops read whole, when each such
inner loop reads only the rows up to the outer chunk's stop (:func:`reads_rows_behind`: causal
keys, ``stop_at`` the outer ``LOOP_STOP``, ``x`` sliced along the outer chunk axis and unit):
every chunk run later stops at or before this chunk's start.

Each iteration reads its rows of ``x`` and writes ``y``'s rows at its end
(``Generator._emit_region``), so no iteration reads a row that it or an earlier one wrote.  A
plan names its pairs (``ChunkRegion.reuse``); ``PlanIndex`` checks them by this rule
(``RegionView.reuse``), and the estimator, the code generators and the chunked reference
interpreter read them there.  The planner picks them by the same rule: per candidate region
(``region_memory.reusable``, which also asks that the estimator lay ``x`` out as ``y``), and
for a region built whole (:func:`chunkc.passes.nest.choose_hosts`: nested plans and their flat fill loops).  At
most one output per host.

Imports nothing from the backends, so that both sides can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Iterable, Mapping, Sequence

from ..ir.graph import Graph, Node, Value
from ..ir.layout import Strides, contiguous_strides

if TYPE_CHECKING:
    from .plan import ChunkedValue, ChunkRegion
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


def reads_rows_behind(region: "ChunkRegion", host: str, readers: Iterable[str]) -> bool:
    """Whether every node of ``readers`` (loop nodes that read ``host`` whole) is in an inner
    loop of ``region`` that stops at the outer chunk's stop and slices ``host`` along the outer
    chunk axis and unit, over the same extent: it reads no row past the outer chunk."""
    from ..ir.dims import LOOP_STOP
    from ..ir.sizes import sizes_equal

    outer = region.axis_of(host)
    if outer is None:
        return False
    for name in readers:
        q = next((q for q in region.inner if name in q.nodes), None)
        c = q.axis_of(host) if q is not None else None
        if c is None or q.stop_at is None or not sizes_equal(q.stop_at, LOOP_STOP) or \
                (c.axis, c.unit) != (outer.axis, outer.unit) or not sizes_equal(q.extent, region.extent):
            return False
    return True


def storage_group(v: Value) -> tuple[Value, set[Value]]:
    """The value whose storage ``v`` may share (following ops that may return a view of
    their input 0, up), and every value that may share it (the same, down): conservative,
    whether or not a view is made at run time."""
    root = v
    while root.producer is not None and root.producer.op.may_alias and root.producer.inputs:
        root = root.producer.inputs[0]
    group, stack = {root}, [root]
    while stack:
        for n in stack.pop().users:
            if n.op.may_alias and n.inputs and n.inputs[0] in group:
                for o in n.outputs:
                    if o not in group:
                        group.add(o)
                        stack.append(o)
    return root, group


def overwritable_after(graph: Graph, v: Value, position: Mapping[Node, int], end: int,
                       group: tuple[Value, set[Value]] | None = None) -> str:
    """Why the storage of ``v`` may not be overwritten once the schedule is past ``end``
    ('' when it may): it must be a node's fresh storage that nothing reads after ``end``.
    ``group``: ``storage_group(v)`` when the caller has it."""
    root, group = group or storage_group(v)
    if root.producer is None:
        return "graph inputs and weights are never overwritten"
    outputs = set(graph.outputs)
    for a in group:
        if a in outputs:
            return f"%{a.name}, which shares its storage, is a graph output"
        late = [u for u in a.users if position[u] > end]
        if late:
            return f"%{a.name}, which shares its storage, is read after the loop (by node {late[0].name})"
    return ""


def shared_read_in(v: Value, nodes, group: tuple[Value, set[Value]] | None = None) -> str:
    """Why ``v``'s storage may not be overwritten by a loop of ``nodes`` ('' when it may): a
    loop node reads another value that shares it (a key read whole while the queries, a view
    of the same fused projection, are overwritten a chunk at a time).  ``group``:
    ``storage_group(v)`` when the caller has it."""
    _, group = group or storage_group(v)
    for a in group:
        if a is v:
            continue
        reader = next((u for u in a.users if u in nodes), None)
        if reader is not None:
            return f"%{a.name}, which shares its storage, is read in the loop (by node {reader.name})"
    return ""


def host_problem(graph: Graph, output: Value, host: Value, *, output_slice: "ChunkedValue | None",
                 host_slice: "ChunkedValue | None", read_whole: bool, loop_nodes: Collection[Node],
                 position: Mapping[Node, int], end: int, overlapping: Callable[[Value], str],
                 group: tuple[Value, set[Value]] | None = None, rows_behind: bool = False,
                 last_first: bool = False) -> str:
    """Why region output ``output`` may not be written over region input ``host`` ('' when it
    may): the rule of the module docstring.  ``output_slice``/``host_slice``: how the loop
    slices each (None: not sliced); ``read_whole``: a loop node reads ``host`` whole;
    ``loop_nodes``: every node the loop runs (inner loops' included); ``end``: the schedule
    position of the loop's last node; ``overlapping(v)``: why ``v``'s elements may not be
    written one at a time (plan_index.overlapping_view at the sizes in use); ``group``:
    ``storage_group(host)`` when the caller has it; ``rows_behind``: the whole reads are all
    :func:`reads_rows_behind`; ``last_first``: the region runs its chunks last first.  The
    cheap tests come first."""
    if host.type != output.type:
        return f"their types differ ({host.type} and {output.type})"
    if host_slice is None or output_slice is None or (host_slice.axis, host_slice.unit) != \
            (output_slice.axis, output_slice.unit):
        return "it is not sliced along the output's chunk axis and unit"
    if host_slice.halo_lo or host_slice.halo_hi:
        return (f"the loop reads it at rows beyond the chunk (halo {host_slice.halo_lo}, {host_slice.halo_hi}), "
                "which the previous or next iteration owns")
    if read_whole and not (rows_behind and last_first):
        return "a node of the loop reads it whole" + (
            " (only its rows up to the chunk's stop: running the chunks last first would allow it)"
            if rows_behind else "")
    group = group or storage_group(host)
    return overwritable_after(graph, host, position, end, group) or shared_read_in(host, loop_nodes, group) \
        or overlapping(host)


__all__ = ["LoopBuffer", "host_problem", "loop_buffer", "loop_buffers", "overwritable_after", "reads_rows_behind",
           "shared_read_in", "storage_group"]
