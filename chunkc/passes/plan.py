"""Chunk plans: which spans of the schedule run in a loop over slices of one axis.

A :class:`ChunkRegion` names the nodes that run inside one loop (contiguous in
``Plan.graph``'s schedule), the chunk axis of every value that is sliced in it,
and the chunk size.  Every chunked value's axis has ``unit * extent`` elements;
iteration ``k`` covers units ``[k*chunk, min((k+1)*chunk, extent))``, that is
elements ``[k*chunk*unit, ...)`` of each chunked value.

Region inputs (read inside, produced outside) are sliced when they appear in
``chunked``, else used whole.  A chunked value may have a halo (rows beyond its
chunk that a window op in the loop reads; chunkc.passes.halo).  Region outputs (produced inside, read after the
loop or graph outputs) are all chunked: they are preallocated in full before
the loop and written slice by slice, except *accumulators* (``accumulators``): outputs
of nodes that reduce the chunk axis, kept whole and merged across iterations
(chunkc.passes.accumulate), final after the loop.

A region may hold *inner* regions (``ChunkRegion.inner``, one level deep): loops that run
inside each iteration of the outer loop over a second axis, over a contiguous span of the
outer region's nodes.  An inner region lists the values its own loop slices (values the
outer loop slices too are not among them, except region inputs of the outer loop that the
outer loop reads whole at the inner nodes, listed in the outer ``whole_reads``) and has
accumulators only as outputs: whole for the inner loop, they are chunks of the outer one
(listed in the outer ``chunked``).  Attention over query rows with its keys split
(chunkc.ir.ops.attention_keys) is the case: the outer loop slices the queries, each inner
loop recomputes a chunk of keys and values from the layer input and merges the online
softmax into the outer chunk's queries.  An inner loop's bounds are the symbols
``INNER_START``/``INNER_STOP`` (chunkc.ir.dims); ``stop_at``, an expression of the outer
loop's ``LOOP_STOP``, ends it early (causal keys past the outer chunk's last query row
are attended by none of its queries).  ``last_first`` runs a region's chunks from the last
to the first (values unchanged): with causal inner loops, the layer input they read can then
host the region's output (chunkc.passes.loop_buffers).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from ..ir.graph import Graph, Node, Value
from ..ir.sizes import Size, evaluate, format_size


@dataclass(frozen=True)
class ChunkedValue:
    value: str  # value name
    axis: int  # the axis sliced
    unit: int = 1  # elements of the axis per chunk unit
    # rows beyond the chunk the loop holds of this value (a window's overlap, chunkc.passes.halo):
    # iteration [s, e) holds rows [max(0, unit*s - halo_lo), min(size, unit*e + halo_hi))
    halo_lo: int = 0
    halo_hi: int = 0

    @property
    def halo(self) -> tuple[int, int]:
        return self.halo_lo, self.halo_hi


@dataclass(frozen=True)
class ChunkRegion:
    nodes: tuple[str, ...]  # node names run inside the loop, in schedule order
    chunked: tuple[ChunkedValue, ...]  # every sliced value: sliced inputs, intermediates, outputs
    outputs: tuple[str, ...]  # values written into preallocated full buffers
    extent: Size  # chunk units in all (e.g. L)
    chunk_size: Size  # units per iteration (an int, or an expression of the symbols)
    # (node, input position) pairs of loop nodes that read a chunked region input whole
    # (a value computed before the loop that the loop needs both sliced and whole)
    whole_reads: tuple[tuple[str, int], ...] = ()
    # (output, region input) pairs: the output's buffer is the input's storage, written in
    # place a chunk at a time (the input dies with the loop and is read only as slices
    # along the same axis, each row before it is overwritten)
    reuse: tuple[tuple[str, str], ...] = ()
    # region outputs (also in ``outputs``) that are whole accumulators: their node reduces
    # the chunk axis of its sliced input 0, and each iteration merges its partial into them
    accumulators: tuple[str, ...] = ()
    # loops nested in this one, over spans of its nodes (see the module docstring)
    inner: tuple["ChunkRegion", ...] = ()
    # an inner region: the units its loop runs, at most (an expression of the outer LOOP_STOP)
    stop_at: Size | None = None
    # a region of the plan whose chunks run from the last to the first (see the module docstring)
    last_first: bool = False

    def axis_of(self, value: str) -> ChunkedValue | None:
        for c in self.chunked:
            if c.value == value:
                return c
        return None

    def chunk_map(self) -> dict[str, ChunkedValue]:
        return {c.value: c for c in self.chunked}

    def region_inputs(self, graph: Graph) -> list[Value]:
        """Values read inside the loop and produced before it, in first-use order."""
        inside = set(self.nodes)
        seen: dict[Value, None] = {}
        for n in graph.nodes:
            if n.name in inside:
                for v in n.inputs:
                    if v.producer is None or v.producer.name not in inside:
                        seen.setdefault(v, None)
        return list(seen)

    def region_nodes(self, graph: Graph) -> list[Node]:
        inside = set(self.nodes)
        return [n for n in graph.nodes if n.name in inside]

    def num_chunks(self, sizes: Mapping[str, int] | None = None) -> int:
        e, c = evaluate(self.extent, sizes), evaluate(self.chunk_size, sizes)
        return -(-e // max(c, 1))

    def with_chunk_size(self, chunk_size: Size) -> "ChunkRegion":
        return replace(self, chunk_size=chunk_size)

    def describe(self) -> str:
        axes = ", ".join(f"%{c.value}@{c.axis}" + (f"x{c.unit}" if c.unit != 1 else "")
                         + (f"+halo({c.halo_lo},{c.halo_hi})" if c.halo_lo or c.halo_hi else "") for c in self.chunked)
        acc = f"; accumulates {', '.join('%' + v for v in self.accumulators)}" if self.accumulators else ""
        stop = f", stops at {format_size(self.stop_at)}" if self.stop_at is not None else ""
        nested = "".join(f"; inner loop [{r.describe()}]" for r in self.inner)
        order = ", last chunk first" if self.last_first else ""
        return (f"nodes {self.nodes[0]}..{self.nodes[-1]} ({len(self.nodes)}), chunk {format_size(self.chunk_size)} "
                f"of {format_size(self.extent)}{stop}{order}; axes {axes}{acc}{nested}")


@dataclass(frozen=True)
class RegionStats:
    """What the selection pass expected of one region, at the plan's sizes."""

    peak_before: int  # highest live bytes in the span, unchunked
    peak_after: int  # the same, chunked
    iterations: int
    extra_seconds: float  # cost model's overhead
    hoisted: tuple[str, ...] = ()  # nodes moved before the loop


DEFAULT_BACKEND = "torch"  # the backend chunkc.compile uses unless told otherwise


@dataclass
class Plan:
    """Regions over ``graph`` (a reordered copy of the user's graph, when reordering moved nodes)."""

    graph: Graph
    regions: tuple[ChunkRegion, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)  # sizes the plan was chosen for
    budget_bytes: int | None = None
    estimated_peak_bytes: int | None = None
    unchunked_peak_bytes: int | None = None
    estimated_slowdown: float | None = None  # cost model's time ratio chunked / unchunked
    notes: list[str] = field(default_factory=list)  # one line per decision, for the report
    stats: tuple[RegionStats, ...] = ()  # one per region, when chosen by autochunk
    backend: str = DEFAULT_BACKEND  # whose kernels the estimates (and the budget) are for
    device: str = "cpu"  # the device the estimates are for ("cpu" or "cuda")

    def __str__(self) -> str:
        """The readable report (chunkc.passes.report.plan_report): ``print(plan)``."""
        from .report import plan_report
        return plan_report(self)

    def region_of(self) -> dict[str, int]:
        """Node name -> index of the region that runs it."""
        return {name: i for i, r in enumerate(self.regions) for name in r.nodes}
