"""Chunk-flow search: legal chunk regions ending at a node, found bottom-up.

A region is a span ``[start, end]`` of the schedule.  Fix the end node and the
axis along which its output is chunked, then walk the schedule backwards.  Each
node met either

* runs **in the loop**: some consumer in the span needs a slice of its output,
  so its dimension record must *carry* that axis; the record then says which
  input axes are sliced (with their ratio), every other input is used whole; or
* is **hoisted** before the loop: nobody in the loop needs a slice of it, or
  somebody (in the loop or hoisted) needs its output whole; it is computed
  whole, from whole inputs, and loop nodes that want a slice of it read a view.

A node whose outputs are wanted along two different axes ends the walk: no
span that contains it is legal.  Every node the walk passes gives a legal
start, so one walk yields all regions ending at ``end`` — in time linear in
the span.  The walk reads only dimension records (``node.dims()``),
never op names.

A third kind of node **accumulates** in the loop: nobody in the loop reads its
output, and its record says that the axis along which the loop slices its input
accumulates (chunkc.ir.dims.Accumulation: a reduction or a contraction over the chunk
axis; a contraction's other operand, its record's partner, is then sliced too).  Its
output is then whole, merged across iterations (an *accumulator*, final only
after the loop, so no loop node may read it; it is a region output).  A region
may also *end* at such a node (``walk_regions(..., accumulate=True)``: ``axis``
is then the axis of its input 0 that the loop slices); see
chunkc.passes.accumulate.  An accumulator asks no halo of its inputs: in a loop
whose values hold halo rows (a convolution reads them) it merges only the core
rows of its sliced inputs, so that no row is merged twice.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterator

from ..ir.graph import Graph, Node, Value
from ..ir.sizes import Size, normalize, ratio, sizes_equal
from .accumulate import accumulates_in_loop, accumulating_end
from .halo import NO_HALO, input_halo, union
from .plan import ChunkedValue, ChunkRegion

WHOLE = None  # requirement: the value is used whole


class Candidate:
    """A legal region before a chunk size is chosen (indices into the schedule)."""

    __slots__ = ("start", "end", "loop", "hoisted", "outputs", "extent", "_sliced", "_req", "_scale", "_chunked",
                 "_axes", "_whole", "accumulators", "halos")

    def __init__(self, start: int, end: int, loop: tuple[int, ...], hoisted: tuple[int, ...],
                 outputs: tuple[Value, ...], extent: Size, sliced: tuple[Value, ...],
                 requirements: dict, scale: int, whole_reads: tuple[tuple[int, int, Value], ...] = (),
                 accumulators: tuple[Value, ...] = (), halos: dict[Value, tuple[int, int]] | None = None):
        self.start, self.end = start, end
        self.loop = loop  # node indices run in the loop, ascending
        self.hoisted = hoisted  # node indices moved before the loop, ascending
        self.outputs = outputs  # values written into full buffers
        self.extent = extent  # chunk units in all
        # the walk's requirement table only grows, so a snapshot of its keys suffices
        self._sliced, self._req, self._scale = sliced, requirements, scale
        self._whole = whole_reads  # (node index, input position, value) read whole by a loop node
        self._chunked = None
        self._axes = None
        self.accumulators = accumulators  # outputs kept whole and merged across iterations
        self.halos = halos or {}  # value -> (lo, hi) rows beyond its chunk (chunkc.passes.halo); absent: none

    def halo(self, v: Value) -> tuple[int, int]:
        return self.halos.get(v, NO_HALO)

    def whole_reads(self, graph: Graph) -> tuple[tuple[str, int], ...]:
        """(node, input position) of loop nodes that read a sliced region input whole."""
        sliced = set(self._sliced)
        return tuple(sorted((graph.nodes[i].name, pos) for i, pos, v in self._whole if v in sliced))

    @property
    def chunked(self) -> tuple[tuple[Value, int, int], ...]:
        """(value, axis, unit) for every sliced value."""
        if self._chunked is None:
            req, scale = self._req, self._scale
            if scale == 1:  # most walks never rescale their units: no Fraction arithmetic per value
                self._chunked = tuple((v, req[v][0], int(req[v][1])) for v in self._sliced)
            else:
                self._chunked = tuple((v, req[v][0], int(req[v][1] * scale)) for v in self._sliced)
        return self._chunked

    @property
    def axes(self) -> dict[Value, tuple[int, int]]:
        """{value: (axis, unit)} for every sliced value, made once (read it, do not change it)."""
        if self._axes is None:
            self._axes = {v: (axis, unit) for v, axis, unit in self.chunked}
        return self._axes

    def to_region(self, graph: Graph, chunk_size: Size, reuse: tuple[tuple[Value, Value], ...] = ()) -> ChunkRegion:
        return ChunkRegion(
            nodes=tuple(graph.nodes[i].name for i in self.loop),
            chunked=tuple(ChunkedValue(v.name, axis, unit, *self.halo(v)) for v, axis, unit in self.chunked),
            outputs=tuple(v.name for v in self.outputs),
            extent=self.extent,
            chunk_size=chunk_size,
            whole_reads=self.whole_reads(graph),
            reuse=tuple((o.name, r.name) for o, r in reuse),
            accumulators=tuple(v.name for v in self.accumulators),
        )

    def __repr__(self) -> str:
        return f"<Candidate {self.start}..{self.end}: {len(self.loop)} in loop, {len(self.hoisted)} hoisted>"


class GraphIndex:
    """Schedule positions, uses and dimension records of a graph, computed once."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.position = {n: i for i, n in enumerate(graph.nodes)}
        self.uses: dict[Value, list[tuple[int, int]]] = {v: [] for v in graph.values()}
        for i, n in enumerate(graph.nodes):
            for k, v in enumerate(n.inputs):
                self.uses[v].append((i, k))
        outputs = set(graph.outputs)
        self.last_use = {v: (len(graph.nodes) if v in outputs else max((i for i, _ in u), default=-1))
                         for v, u in self.uses.items()}
        self._dims: dict[int, tuple] = {}
        # the first node that makes or reads each value: below it, no node of a walk has
        # anything to do with the value (see walk_regions)
        self.first_touch = {v: (self.position[v.producer] if v.producer is not None else
                                min((i for i, _ in u), default=len(graph.nodes)))
                            for v, u in self.uses.items()}

    def dims(self, i: int):
        rec = self._dims.get(i)
        if rec is None:
            rec = self._dims[i] = self.graph.nodes[i].dims()
        return rec

    def producer_index(self, v: Value) -> int:
        return -1 if v.producer is None else self.position[v.producer]


class _Conflict(Exception):
    """The walk cannot include the current node."""


def _input_requirements(node: Node, rec, out_reqs: dict[int, tuple[int, Fraction]]) -> dict[int, object]:
    """Per input position: (axis, unit) to slice, or WHOLE, for the given output slicing."""
    needs: dict[int, object] | None = None
    for k, (axis, unit) in out_reqs.items():
        flow = rec[k][axis]
        if flow.kind not in ("carry", "window"):  # a window's halo: see _input_halos
            raise _Conflict(f"{node.name} {flow.kind}es output axis {axis}")
        this: dict[int, object] = {i: WHOLE for i in range(len(node.inputs))}
        for s in flow.sources:
            r = s.ratio
            this[s.input] = (s.axis, unit if r == 1 else unit * r)
        if needs is not None and needs != this:
            raise _Conflict(f"outputs of {node.name} need different input slices")
        needs = this
    assert needs is not None
    # one value read at two positions as two different slices cannot be one slice
    by_value: dict[Value, object] = {}
    for i, req in needs.items():
        v = node.inputs[i]
        if req is not WHOLE and by_value.get(v, req) != req:
            raise _Conflict(f"{node.name} reads %{v.name} along two different axes")
        if req is not WHOLE:
            by_value[v] = req
    return needs


def _input_halos(node: Node, rec, reqs: dict[int, tuple[int, Fraction]], in_reqs: dict[int, object],
                  halos: dict[Value, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per sliced input position: the halo it needs for the outputs' halos (chunkc.passes.halo).
    Positional ops and multi-output nodes do not take a halo: their slices would need more
    than rows.  (An op whose attribute states its output shape runs with the rows it computes:
    chunkc.passes.halo.computed_length.)"""
    out: dict[int, tuple[int, int]] = {}
    for k, (axis, _) in reqs.items():
        flow = rec[k][axis]
        lo, hi = halos.get(node.outputs[k], NO_HALO)
        if flow.kind != "window" and lo == 0 and hi == 0:
            continue
        if flow.positional or len(node.outputs) != 1:
            raise _Conflict(f"{node.name} cannot compute rows beyond its chunk (a halo)")
        for s in flow.sources:
            if s.window is not None and not sizes_equal(node.inputs[s.input].shape[s.axis],
                                                        normalize(node.outputs[k].shape[axis] * s.window.stride)):
                # rows of the input and of the output no longer line up (a conv without padding
                # after an explicit pad): chunk units would not be the same rows on both sides
                raise _Conflict(f"{node.name}: its window's input is not stride times its output")
            h = input_halo(s, lo, hi)
            if h is None:
                raise _Conflict(f"{node.name}: a halo cannot pass a ratio of {s.ratio}")
            if in_reqs.get(s.input) is not WHOLE and h != NO_HALO:
                out[s.input] = union(out.get(s.input, NO_HALO), h)
    return out


def _match_output_axes(node: Node, rec, reqs: dict[int, tuple[int, Fraction]],
                       want: list[int]) -> dict[int, tuple[int, Fraction]]:
    """For a multi-output node: the axis of each escaping output that slices the same inputs."""
    k0, (a0, u0) = next(iter(reqs.items()))
    base = {s.input: (s.axis, u0 * s.ratio) for s in rec[k0][a0].sources}
    out = dict(reqs)
    for k in want:
        for a, flow in enumerate(rec[k]):
            if flow.kind != "carry" or not flow.sources:
                continue
            if not all(s.input in base and base[s.input][0] == s.axis for s in flow.sources):
                continue
            units = {base[s.input][1] / s.ratio for s in flow.sources}
            if len(units) == 1:
                out[k] = (a, units.pop())
                break
        else:
            raise _Conflict(f"output {k} of {node.name} leaves the region but no axis of it follows the chunk")
    return out


def walk_regions(index: GraphIndex, end: int, axis: int, min_start: int = 0,
                 max_nodes: int | None = None, accumulate: bool = False) -> Iterator[Candidate]:
    """Yield every legal region ``[start, end]`` whose end output is chunked along ``axis``
    (with ``accumulate``: whose end node accumulates over ``axis`` of its input 0).

    Regions come from the shortest to the longest.  ``min_start`` bounds the
    walk (the end of a region already chosen); ``max_nodes`` bounds its length.
    """
    graph = index.graph
    end_node = graph.nodes[end]
    if accumulate and accumulating_end(end_node, axis) is None:
        return
    if not accumulate and (len(end_node.outputs) != 1 or not (0 <= axis < end_node.outputs[0].rank)):
        return
    end_out = end_node.outputs[0]
    # the value whose axis the loop covers: the end output, or the input an accumulator reduces
    extent_of = end_node.inputs[0] if accumulate else end_out
    chunk_req: dict[Value, tuple[int, Fraction | int]] = {extent_of: (axis, 1)}
    sliced: list[Value] = [extent_of]  # chunk_req's keys in insertion order (append-only)
    whole_loop: set[Value] = set()  # read whole by a loop node
    whole_hoisted: set[Value] = set()  # read by a hoisted node
    loop: list[int] = []
    hoisted: list[int] = []
    whole_reads: list[tuple[int, int, Value]] = []
    outputs: list[Value] = [end_out]
    accumulators: list[Value] = []
    halos: dict[Value, tuple[int, int]] = {}  # rows beyond the chunk a loop node needs (none: absent)
    scale = 1  # lcm of the units' denominators
    lowest = max(min_start, 0 if max_nodes is None else end - max_nodes + 1)
    position = index.position
    first_touch = index.first_touch
    # the first node that makes or reads a value the loop slices: a node before it neither
    # makes a slice the loop needs nor accumulates over one; it and all before it would be
    # hoisted, which yields no new span, so the walk stops there
    touched = first_touch[extent_of]

    def candidate(i: int) -> Candidate:
        return Candidate(
            start=i, end=end, loop=tuple(reversed(loop)), hoisted=tuple(reversed(hoisted)),
            outputs=tuple(sorted(outputs, key=lambda v: position[v.producer])),
            extent=extent_of.shape[axis] if scale == 1 else _divide(extent_of.shape[axis], Fraction(scale)),
            sliced=tuple(sliced), requirements=chunk_req, scale=scale, whole_reads=tuple(whole_reads),
            accumulators=tuple(accumulators),
            halos=dict(halos) if halos else None,  # a snapshot: longer spans may widen them
        )

    for i in range(end, lowest - 1, -1):
        if touched > i:
            return
        node = graph.nodes[i]
        outs = node.outputs
        if not (node.inputs and node.inputs[0] in chunk_req) and not (
                outs[0] in chunk_req if len(outs) == 1 else any(o in chunk_req for o in outs)):
            # nothing it makes is sliced and it accumulates over nothing: hoisted (as below, quicker)
            whole_hoisted.update(node.inputs)
            hoisted.append(i)
            continue
        try:
            reqs = {k: chunk_req[o] for k, o in enumerate(node.outputs) if o in chunk_req}
            merged = None if reqs else accumulates_in_loop(node, chunk_req, (whole_loop, whole_hoisted))
            if merged is not None:  # an accumulator: whole, merged across iterations, read after the loop
                whole_positions, partners = merged
                for pos in whole_positions:
                    whole_loop.add(node.inputs[pos])
                    whole_reads.append((i, pos, node.inputs[pos]))
                for pos, req in partners.items():  # a contraction's other operand, sliced alike
                    v = node.inputs[pos]
                    if v not in chunk_req:
                        chunk_req[v] = req
                        sliced.append(v)
                        touched = min(touched, first_touch[v])
                        if not isinstance(req[1], int):
                            scale = math.lcm(scale, req[1].denominator)
                accumulators.append(node.outputs[0])
                if node.outputs[0] is not end_out:
                    outputs.append(node.outputs[0])
                loop.append(i)
                yield candidate(i)
                continue
            if not reqs or any(o in whole_loop or o in whole_hoisted for o in node.outputs):
                # Nobody in the loop needs a slice, or somebody needs the whole value: compute
                # it whole, before the loop (the loop then reads slices of it as views).
                whole_hoisted.update(node.inputs)
                hoisted.append(i)
                continue  # a span starting at a hoisted node equals one starting after it
            rec = index.dims(i)
            # every output gets an axis: those read after the loop, and those nobody reads
            # (a loop node computes all its outputs a slice at a time)
            escaping = [k for k, o in enumerate(node.outputs)
                        if k not in reqs and (index.last_use[o] > end or index.last_use[o] < 0)]
            if escaping:
                reqs = _match_output_axes(node, rec, reqs, escaping)
            in_reqs = _input_requirements(node, rec, reqs)
            in_halos = _input_halos(node, rec, reqs, in_reqs, halos)
            for k, req in reqs.items():
                o = node.outputs[k]
                if o not in chunk_req:
                    chunk_req[o] = req
                    sliced.append(o)
                    touched = min(touched, first_touch[o])
                if index.last_use[o] > end and o is not end_out:
                    outputs.append(o)
            for pos, req in in_reqs.items():
                v = node.inputs[pos]
                if req is WHOLE:
                    # read whole; if the loop also slices it, it is computed before the loop
                    whole_loop.add(v)
                    whole_reads.append((i, pos, v))
                elif v in chunk_req:
                    if chunk_req[v] != req:
                        raise _Conflict(f"%{v.name} is needed along two different axes")
                else:
                    chunk_req[v] = req
                    sliced.append(v)
                    touched = min(touched, first_touch[v])
                    if not isinstance(req[1], int):
                        scale = math.lcm(scale, req[1].denominator)
            for pos, h in in_halos.items():
                v = node.inputs[pos]
                halos[v] = union(halos.get(v, NO_HALO), h)
            loop.append(i)
        except _Conflict:
            return
        yield candidate(i)


def _divide(size: Size, unit: Fraction) -> Size:
    if unit == 1:
        return size
    return normalize(size * unit.denominator / unit.numerator) if not isinstance(size, int) \
        else int(Fraction(size) / unit)


def candidate_axes(node: Node) -> list[int]:
    """Output axes worth chunking along: not of static size 1."""
    if len(node.outputs) != 1:
        return []
    return [a for a, s in enumerate(node.outputs[0].shape) if not (isinstance(s, int) and s <= 1)]


def consistent_extent(c: Candidate) -> bool:
    """Every sliced value's axis has ``unit * extent`` elements."""
    for v, axis, unit in c.chunked:
        if not sizes_equal(v.shape[axis], normalize(c.extent * unit)):
            r = ratio(v.shape[axis], c.extent)
            if r is None or r != unit:
                return False
    return True
