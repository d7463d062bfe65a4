"""What a plan means for its graph's schedule, worked out once for every consumer.

A :class:`PlanIndex` folds each region of a plan into one step of the schedule
(a chunk loop) and says, for every region, which values it slices, which it
reads whole, which it writes into full buffers, and when each value dies —
at the top level, where the loop is one step that reads its region inputs for
its whole duration, and inside one iteration.  It also checks that the plan can
be run as loops, with errors that name the region and the value at fault.

The reference interpreter of plans, the code generators and the memory
estimator all read plans through it, so that what runs, what is emitted and
what is estimated are the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import sympy

from ..errors import ChunkcError
from ..ir.dims import INNER_START, INNER_STOP, LOOP_START, LOOP_STOP, Accumulation, AxisSource
from ..ir.graph import Graph, Node, Value
from ..ir.liveness import deaths
from ..ir.sizes import format_size, normalize, sizes_equal
from .accumulate import accumulating_end
from .halo import computed_length
from .plan import ChunkedValue, ChunkRegion, Plan


@dataclass
class RegionView:
    """One region of a plan as a loop over ``graph``'s schedule."""

    index: int
    region: ChunkRegion
    start: int  # schedule position of its first node
    end: int  # schedule position of its last node
    nodes: list[Node]
    chunk: dict[Value, ChunkedValue]  # every value sliced in the loop
    inputs: list[Value]  # read inside, produced before the loop (first-use order)
    outputs: list[Value]  # written slice by slice into buffers allocated before the loop
    whole_reads: frozenset[tuple[str, int]] = frozenset()  # (node, input position) read whole though chunked
    reuse: dict[Value, Value] = field(default_factory=dict)  # output -> region input whose storage it takes
    # whole outputs merged across iterations (chunkc.passes.accumulate) -> how they merge
    accumulators: dict[Value, Accumulation] = field(default_factory=dict)
    # loops nested in this one (ChunkRegion.inner), in schedule order; ``parent``: the loop an
    # inner region runs in (None for a region of the plan)
    inner: list["RegionView"] = field(default_factory=list)
    parent: "RegionView | None" = None

    @property
    def bounds(self) -> tuple[sympy.Symbol, sympy.Symbol]:
        """The symbols of this loop's chunk start and stop (chunkc.ir.dims): LOOP_START and
        LOOP_STOP for a region of the plan, INNER_START and INNER_STOP for an inner one."""
        return (LOOP_START, LOOP_STOP) if self.parent is None else (INNER_START, INNER_STOP)

    def slices_outer_chunk(self, v: Value) -> bool:
        """Whether this inner loop slices ``v`` out of the outer iteration's slice of it (the
        loops slice two axes of it: a mask's query rows and key columns), not out of all of it."""
        return self.parent is not None and v in self.parent.chunk and \
            any(self.parent.reads_slice(n, k) for n in self.nodes for k, u in enumerate(n.inputs) if u is v)

    def inner_at(self, node: Node) -> "RegionView | None":
        """The inner loop whose first node is ``node``, if any."""
        return next((r for r in self.inner if r.nodes[0] is node), None)

    @cached_property
    def sliced(self) -> list[Value]:
        """Region inputs read as slices (views made at the top of each iteration)."""
        return [v for v in self.inputs if v in self.chunk and self._sliced_somewhere(v)]

    def _sliced_somewhere(self, v: Value) -> bool:
        return any(u is v and (n.name, k) not in self.whole_reads for n in self.nodes for k, u in enumerate(n.inputs))

    def reads_slice(self, node: Node, position: int) -> bool:
        """Whether ``node`` (in the loop) reads its input ``position`` as a slice."""
        return node.inputs[position] in self.chunk and (node.name, position) not in self.whole_reads

    def inner_deaths(self) -> list[list[Value]]:
        """For each loop node, the slices and chunk values that die right after it in an iteration
        (a chunk written in place into a reused input is written, and dies, after the last node)."""
        local = set(self.sliced)
        for n in self.nodes:
            local.update(n.outputs)
        steps = [([v for k, v in enumerate(n.inputs) if v in local and (v.producer is not None and v.producer in
                                                                         self.node_set or self.reads_slice(n, k))],
                  n.outputs) for n in self.nodes]
        steps[-1] = (list(steps[-1][0]) + list(self.reuse), steps[-1][1])
        out = deaths(steps, owned=lambda v: v in local)
        for v in self.sliced:  # a slice nobody reads (cannot happen for a valid plan) dies at once
            if not any(v in group for group in out):
                out[0].append(v)
        return out

    @cached_property
    def node_set(self) -> frozenset[Node]:
        return frozenset(self.nodes)

    def loop_attrs(self, node: Node) -> dict:
        """The attributes ``node`` runs with inside this loop (see :func:`loop_attrs`); an
        accumulator whose record places its slice (``Accumulation.offset_attr``) gets the
        slice's first element added there."""
        out = node.outputs[0] if node.outputs else None
        if self.parent is not None and out not in self.chunk:  # a chunk of the outer loop (its accumulators)
            attrs = self.parent.loop_attrs(node)
        else:
            attrs = rebased(loop_attrs(node, self.chunk.get(out)), self.bounds)
        how = self.accumulators.get(out)
        if how is not None and how.offset_attr is not None:
            unit = self.chunk[node.inputs[0]].unit
            attrs[how.offset_attr] = normalize(attrs[how.offset_attr] + unit * self.bounds[0])
        return attrs

    @cached_property
    def has_halo(self) -> bool:
        """Some value of the loop has rows beyond its chunk (chunkc.passes.halo)."""
        return any(c.halo_lo or c.halo_hi for c in self.chunk.values())

    def reads_core(self, node: Node, position: int) -> bool:
        """Whether accumulator node ``node`` reads its input ``position`` in its core rows only: a
        sliced input holding halo rows (for a window op of the loop) whose extra rows belong to
        the neighbouring chunks, so merging them would count them twice (chunkc.passes.accumulate)."""
        if not node.outputs or node.outputs[0] not in self.accumulators or not self.reads_slice(node, position):
            return False
        return self.chunk[node.inputs[position]].halo != (0, 0)

    def row_source(self, node: Node, position: int) -> AxisSource | None:
        """How ``node``'s output rows map to rows of its sliced input ``position`` (the
        record's source on the chunk axis), or None when that input is not read as a slice."""
        if not node.outputs or node.outputs[0] not in self.chunk or not self.reads_slice(node, position):
            return None
        flow = node.dims()[0][self.chunk[node.outputs[0]].axis]
        return next((s for s in flow.sources if s.input == position), None)


def rebased(attrs: dict, bounds: tuple[sympy.Symbol, sympy.Symbol]) -> dict:
    """``attrs`` with LOOP_START/LOOP_STOP replaced by ``bounds`` (an inner loop's symbols)."""
    if bounds == (LOOP_START, LOOP_STOP):
        return attrs
    swap = {LOOP_START: bounds[0], LOOP_STOP: bounds[1]}

    def sub(v):
        if isinstance(v, tuple):
            return tuple(sub(x) for x in v)
        return v.xreplace(swap) if isinstance(v, sympy.Basic) else v
    return {k: sub(v) for k, v in attrs.items()}


def loop_attrs(node: Node, chunk: ChunkedValue | None, record: tuple | None = None) -> dict:
    """The attributes ``node`` runs with inside a loop that slices its first output as
    ``chunk``, as expressions of the loop's ``chunk_start``/``chunk_stop`` (chunkc.ir.dims):
    the attribute that states the output shape (``shape_attr``) has, on the chunk axis, the
    number of rows the node computes (the chunk's length, with its halo where it has one:
    chunkc.passes.halo.computed_length), and an op whose chunk axis is positional gets its
    ``slice_attrs``.  ``record``: the node's dimension record, when the caller has it."""
    attrs = dict(node.attrs)
    if chunk is None:
        return attrs
    axis, unit = chunk.axis, chunk.unit
    start, length = unit * LOOP_START, unit * (LOOP_STOP - LOOP_START)
    flow = (record or node.dims())[0][axis]
    key = node.op.shape_attr
    if key is not None and attrs.get(key) is not None:
        shape = list(attrs[key])  # one entry per trailing output axis (every axis for a reshape)
        k = axis - (node.outputs[0].rank - len(shape))
        if k >= 0 and shape[k] != -1:
            shape[k] = computed_length(flow, chunk, node.outputs[0].shape[axis])
        attrs[key] = tuple(shape)
    if flow.kind == "window":  # the loop pads the rows itself (chunkc.passes.halo.take_rows)
        w = flow.sources[0].window
        pads = attrs.get(w.pad_attr)
        if pads is not None:
            attrs[w.pad_attr] = tuple((0, 0) if k == w.pad_index else p for k, p in enumerate(pads))
    if flow.positional:
        if node.op.slice_attrs is None:
            raise ChunkcError(f"op {node.op.name} (node {node.name}): axis {axis} is positional but the op's "
                              "record has no slice_attrs")
        attrs = node.op.slice_attrs(attrs, [v.type for v in node.inputs], axis, start, length)
    return attrs


PROBE_SIZE = 8  # a size symbol's value where a plan names no sizes (views are followed at it)


@dataclass
class PlanIndex:
    """``plan`` over ``graph`` (normally ``plan.graph``): regions as loops, steps, deaths."""

    graph: Graph
    plan: Plan | None
    regions: list[RegionView] = field(default_factory=list)
    region_of: dict[Node, int] = field(default_factory=dict)

    @classmethod
    def build(cls, graph: Graph, plan: Plan | None) -> "PlanIndex":
        index = cls(graph, plan)
        if plan is None or not plan.regions:
            return index
        position = {n.name: i for i, n in enumerate(graph.nodes)}
        values = {v.name: v for v in graph.values()}
        # sizes at which layouts are followed (overlapping_view): the plan's, else a probe
        sizes = {**{s: PROBE_SIZE for s in graph.symbols()}, **plan.sizes} if any(r.reuse for r in plan.regions) else {}
        for k, r in enumerate(plan.regions):
            index.regions.append(_view(graph, k, r, position, values, index.region_of, sizes))
        _check_outputs(graph, index.regions)
        return index

    @cached_property
    def steps(self) -> list[Node | RegionView]:
        """The schedule with each region folded into one step."""
        out: list[Node | RegionView] = []
        seen: set[int] = set()
        for n in self.graph.nodes:
            k = self.region_of.get(n)
            if k is None:
                out.append(n)
            elif k not in seen:
                seen.add(k)
                out.append(self.regions[k])
        return out

    def top_level_deaths(self) -> list[list[Value]]:
        """For each step, the node values (never graph outputs) that die right after it."""
        return deaths([(s.inputs, s.outputs) for s in self.steps], keep=set(self.graph.outputs))


def _view(graph: Graph, k: int, r: ChunkRegion, position: Mapping[str, int], values: Mapping[str, Value],
          region_of: dict[Node, int], sizes: Mapping[str, int], parent: RegionView | None = None) -> RegionView:
    where = (f"plan region {k} ({r.describe() if r.nodes else 'empty'})" if parent is None else
             f"inner loop {k} of plan region {parent.index} ({r.describe() if r.nodes else 'empty'})")
    if not r.nodes:
        raise ChunkcError(f"{where}: a region needs at least one node")
    if parent is None and any(q.inner for q in r.inner):
        raise ChunkcError(f"{where}: loops nest one level deep; an inner loop has inner loops")
    for name in r.nodes:
        if name not in position:
            raise ChunkcError(f"{where}: node {name} is not in graph {graph.name}")
    twice = next((name for j, name in enumerate(r.nodes) if name in r.nodes[:j]), None)
    if twice is not None:
        raise ChunkcError(f"{where}: node {twice} is listed twice; list each node of the loop once")
    pos = sorted(position[name] for name in r.nodes)
    if pos != list(range(pos[0], pos[0] + len(pos))):
        gap = next(graph.nodes[p].name for p in range(pos[0], pos[-1] + 1) if p not in set(pos))
        raise ChunkcError(f"{where}: its nodes are not contiguous in the schedule; node {gap} lies between them "
                          "(reorder the graph or split the region)")
    nodes = [graph.nodes[p] for p in pos]
    if parent is not None:
        _check_inner(where, r, nodes, parent)
    for n in nodes:
        if parent is not None:
            continue
        if n in region_of:
            raise ChunkcError(f"{where}: node {n.name} is also in region {region_of[n]}; regions must not overlap")
        region_of[n] = k
    chunk: dict[Value, ChunkedValue] = {}
    for c in r.chunked:
        v = values.get(c.value)
        if v is None:
            raise ChunkcError(f"{where}: chunked value %{c.value} is not in graph {graph.name}")
        if not 0 <= c.axis < v.rank:
            raise ChunkcError(f"{where}: axis {c.axis} of %{c.value} {v.type} is out of range")
        if c.unit < 1:
            raise ChunkcError(f"{where}: %{c.value} has unit {c.unit}; units are positive")
        if c.halo_lo < 0 or c.halo_hi < 0:
            raise ChunkcError(f"{where}: %{c.value} has halo ({c.halo_lo}, {c.halo_hi}); halos are not negative")
        if not sizes_equal(v.shape[c.axis], sympy.sympify(r.extent) * c.unit):
            raise ChunkcError(f"{where}: %{c.value} {v.type} axis {c.axis} has size {format_size(v.shape[c.axis])}, "
                              f"but the region covers {format_size(r.extent)} units of {c.unit}")
        chunk[v] = c
    node_set = set(nodes)
    inputs: dict[Value, None] = {}
    for n in nodes:
        for v in n.inputs:
            if v.producer not in node_set:
                inputs.setdefault(v, None)
    whole = frozenset(r.whole_reads)
    by_name = {n.name: n for n in nodes}
    for name, i in whole:
        n = by_name.get(name)
        if n is None or not 0 <= i < len(n.inputs):
            raise ChunkcError(f"{where}: whole read ({name}, {i}) names no input of a node in the loop")
        if n.inputs[i].producer in node_set:
            raise ChunkcError(f"{where}: node {name} reads %{n.inputs[i].name} whole, but it is computed a slice at "
                              "a time in the loop; compute it before the loop")
    accumulators = _accumulators(where, r, values, node_set, chunk, whole)
    outputs = []
    for name in r.outputs:
        v = values.get(name)
        if v is None or v.producer not in node_set:
            raise ChunkcError(f"{where}: output %{name} is not produced inside the region")
        outputs.append(v)
    reuse = {}
    for out_name, in_name in r.reuse:
        o, v = values.get(out_name), values.get(in_name)
        if o not in outputs:
            raise ChunkcError(f"{where}: reuse names %{out_name}, which is not an output of the region")
        problem = reuse_problem(graph, r, o, v, chunk, inputs, node_set, whole, sizes)
        if problem:
            raise ChunkcError(f"{where}: output %{out_name} cannot take the storage of %{in_name}: {problem}")
        if v in reuse.values():
            raise ChunkcError(f"{where}: %{in_name} is reused by two outputs")
        reuse[o] = v
    for v in accumulators:
        if v not in outputs:
            raise ChunkcError(f"{where}: accumulator %{v.name} must also be listed among the region's outputs")
    if r.last_first and (parent is not None or accumulators or any(c.halo_lo or c.halo_hi for c in r.chunked)):
        raise ChunkcError(f"{where}: only a region of the plan that merges nothing across its chunks and reads no "
                          "halo rows may run its chunks last first")
    view = RegionView(k, r, pos[0], pos[-1], nodes, chunk, list(inputs), outputs, whole, reuse, accumulators,
                      parent=parent)
    for j, q in enumerate(r.inner):
        view.inner.append(_view(graph, j, q, position, values, region_of, sizes, view))
    graph_outputs = set(graph.outputs)
    in_inner = {name for q in r.inner for name in q.nodes}
    for n in nodes:
        if n.name in in_inner:  # checked by its inner loop's view
            continue
        for o in n.outputs:
            if o not in chunk and o not in accumulators and (o.users or o in graph_outputs):
                raise ChunkcError(f"{where}: node {n.name} ({n.op.name}) output %{o.name} is not chunked; "
                                  "work that does not depend on the chunk must be moved before the loop")
    if parent is None and r.inner and view.has_halo:
        raise ChunkcError(f"{where}: a loop with inner loops cannot have halo rows")
    if view.has_halo or any(n.dims()[0][chunk[n.outputs[0]].axis].kind == "window" for n in nodes
                            if n.outputs and n.outputs[0] in chunk):
        _check_halos(view, where)
    return view


def _check_inner(where: str, r: ChunkRegion, nodes: list[Node], parent: RegionView) -> None:
    """An inner region runs a span of its parent's nodes, one level deep, and makes nothing but
    accumulators (chunks of the parent's loop); the parent slices none of its sliced values,
    except region inputs of the parent that the parent reads whole at the inner nodes."""
    if parent.parent is not None or r.inner:
        raise ChunkcError(f"{where}: loops nest one level deep")
    outside = [n.name for n in nodes if n not in parent.node_set]
    if outside:
        raise ChunkcError(f"{where}: node {outside[0]} is not a node of the outer loop")
    for q in parent.inner:
        if set(q.region.nodes) & set(r.nodes):
            raise ChunkcError(f"{where}: it shares nodes with inner loop {q.index}")
    if set(r.outputs) != set(r.accumulators) or r.reuse:
        raise ChunkcError(f"{where}: an inner loop's outputs must all be accumulators (chunks of the outer loop), "
                          f"got outputs {list(r.outputs)} and accumulators {list(r.accumulators)}")
    for c in r.chunked:
        if c.halo_lo or c.halo_hi:
            raise ChunkcError(f"{where}: %{c.value} has a halo; inner loops have none")
    names = {n.name for n in nodes}
    for v, c in parent.chunk.items():
        mine = r.axis_of(v.name)
        if mine is None:
            continue
        readers = [(u.name, k) for u in v.users if u.name in names for k, x in enumerate(u.inputs) if x is v]
        whole = [p in parent.whole_reads for p in readers]
        if v.producer in parent.node_set or not (all(whole) or (not any(whole) and mine.axis != c.axis)):
            raise ChunkcError(f"{where}: %{v.name} is sliced by both loops; it must be made before the outer loop, "
                              "and the outer loop must read it whole at the inner loop's nodes (list them in its "
                              "whole_reads) or, where the loops slice two different axes of it, sliced")
    for name in r.accumulators:
        if parent.region.axis_of(name) is None:
            raise ChunkcError(f"{where}: accumulator %{name} must be a chunk of the outer loop (in its chunked values)")


def _accumulators(where: str, r: ChunkRegion, values: Mapping[str, Value], node_set, chunk,
                  whole) -> dict[Value, Accumulation]:
    """The region's accumulators, checked: each is the only output of a loop node that reads
    its input 0 sliced along an axis its record accumulates over (and the record's partners
    sliced alike), and no loop node reads it."""
    out: dict[Value, Accumulation] = {}
    for name in r.accumulators:
        v = values.get(name)
        if v is None or v.producer not in node_set:
            raise ChunkcError(f"{where}: accumulator %{name} is not produced inside the region")
        node = v.producer
        if v in chunk:
            raise ChunkcError(f"{where}: accumulator %{name} is also listed as chunked; an accumulator is whole")
        x = node.inputs[0] if node.inputs else None
        if x not in chunk or (node.name, 0) in whole:
            raise ChunkcError(f"{where}: accumulator %{name}: node {node.name} ({node.op.name}) must read its "
                              "input 0 as a slice of the chunk axis")
        how = accumulating_end(node, chunk[x].axis)
        if how is None:
            raise ChunkcError(f"{where}: accumulator %{name}: op {node.op.name} (node {node.name}) does not "
                              f"accumulate over axis {chunk[x].axis} of its input %{x.name} (its record's "
                              "accumulates says so); compute it after the loop")
        for pos, axis in how.partners:  # a contraction's other operand: sliced chunk for chunk
            p = node.inputs[pos]
            if p not in chunk or (node.name, pos) in whole or (chunk[p].axis, chunk[p].unit) != (axis, chunk[x].unit):
                raise ChunkcError(f"{where}: accumulator %{name}: node {node.name} ({node.op.name}) contracts %{x.name} "
                                  f"axis {chunk[x].axis} with %{p.name} axis {axis}, so the plan must slice %{p.name} "
                                  f"along axis {axis} in units of {chunk[x].unit} and read it as a slice")
        reader = next((u for u in v.users if u in node_set), None)
        if reader is not None:
            raise ChunkcError(f"{where}: accumulator %{name} is read inside the loop (by node {reader.name}), "
                              "where it is not complete; end the region before that node")
        out[v] = how
    return out


def _check_halos(view: RegionView, where: str) -> None:
    """Every sliced input of a loop node holds the rows the node's output rows need."""
    from .halo import NO_HALO, input_halo
    for n in view.nodes:
        o = n.outputs[0] if n.outputs else None
        if o not in view.chunk:
            continue
        c = view.chunk[o]
        for pos, v in enumerate(n.inputs):
            source = view.row_source(n, pos)
            if source is None:
                continue
            need = input_halo(source, c.halo_lo, c.halo_hi)
            have = view.chunk[v].halo if v in view.chunk else NO_HALO
            if need is None or need[0] > have[0] or need[1] > have[1] or (
                    len(n.outputs) > 1 and c.halo != NO_HALO):
                raise ChunkcError(f"{where}: node {n.name} ({n.op.name}) needs rows ({need}) of %{v.name} beyond its "
                                  f"chunk, but the plan gives it halo {have}; widen the halo in the plan")


def overlapping_view(v: Value, sizes: Mapping[str, int]) -> str:
    """Why the elements of ``v`` may not be written one at a time ('' when they may): a view
    in its storage chain holds one element at several indices (an ``expand`` broadcasting a
    mask over the batch), so an output written in place into it would write one storage
    element for several outputs (NumPy refuses a broadcast array; PyTorch refuses or
    overwrites rows a later iteration still reads).  The records' view strides are followed
    from the fresh storage down to ``v`` at ``sizes``."""
    from ..ir.layout import non_overlapping
    try:
        shape, strides, _ = _layout_at(v, sizes)
        if not non_overlapping(shape, strides):
            return (f"%{v.name} is a view that holds one element at several indices (strides {strides} for "
                    f"shape {shape})")
    except Exception as exc:  # a layout that cannot be followed at these sizes is not written over
        return f"the layout of %{v.name} cannot be followed at sizes {dict(sizes)} ({exc})"
    return ""


def _layout_at(v: Value, sizes: Mapping[str, int]) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
    """``v``'s shape and strides at ``sizes``, following the records' view strides from the
    fresh storage down to ``v``, and whether its own producer made it a view (not a copy)."""
    from ..ir.layout import contiguous_strides, split_view_result
    from ..ir.registry import concrete_attrs, has_symbolic_attrs
    from ..ir.sizes import evaluate
    from ..ir.types import TensorType

    def shape(a: Value) -> tuple[int, ...]:
        return tuple(int(evaluate(s, sizes)) for s in a.shape)

    chain = [v]
    while chain[-1].producer is not None and chain[-1].producer.op.may_alias and chain[-1].producer.inputs:
        chain.append(chain[-1].producer.inputs[0])
    strides, aliased = contiguous_strides(shape(chain[-1])), False
    for a in reversed(chain[:-1]):
        node = a.producer
        attrs = concrete_attrs(node.attrs, sizes) if has_symbolic_attrs(node.attrs) else node.attrs
        types = [TensorType(x.dtype, shape(x)) for x in node.inputs]
        res = node.op.view_strides(types, attrs, strides)
        got = split_view_result(res, len(node.outputs))[node.outputs.index(a)]
        aliased = got is not None
        strides = got if aliased else contiguous_strides(shape(a))
    return shape(v), strides, aliased


def reuse_problem(graph: Graph, region: ChunkRegion, o: Value, v: Value | None, chunk, inputs, node_set, whole,
                   sizes: Mapping[str, int]) -> str:
    """Why output ``o`` may not be written in place into region input ``v`` ('' when it may):
    the rule is chunkc.passes.loop_buffers.host_problem."""
    from .loop_buffers import host_problem, reads_rows_behind

    if v is None or v not in inputs:
        return "it is not an input of the region"
    position = {n: i for i, n in enumerate(graph.nodes)}
    readers = [n.name for n in node_set for k in range(len(n.inputs)) if (n.name, k) in whole and v is n.inputs[k]]
    return host_problem(graph, o, v, output_slice=chunk.get(o), host_slice=chunk.get(v), read_whole=bool(readers),
                        loop_nodes=node_set, position=position, end=max(position[n] for n in node_set),
                        overlapping=lambda x: overlapping_view(x, sizes),
                        rows_behind=bool(readers) and reads_rows_behind(region, v.name, readers),
                        last_first=region.last_first)


def _check_outputs(graph: Graph, regions: list[RegionView]) -> None:
    """A value made in a loop and read after it must be one of the region's outputs."""
    graph_outputs = set(graph.outputs)
    region_of = {n: r for r in regions for n in r.nodes}
    for n in graph.nodes:
        for v in n.inputs:
            r = region_of.get(v.producer) if v.producer is not None else None
            if r is not None and region_of.get(n) is not r and v not in r.outputs:
                raise ChunkcError(f"plan region {r.index} ({r.region.describe()}): %{v.name} is read after the loop but "
                                  f"is not a region output (node {n.name} reads it)")
    for v in graph_outputs:
        r = region_of.get(v.producer) if v.producer is not None else None
        if r is not None and v not in r.outputs:
            raise ChunkcError(f"plan region {r.index} ({r.region.describe()}): graph output %{v.name} is made in the "
                              "loop but is not a region output")


def check_same_signature(graph: Graph, planned: Graph) -> None:
    """A plan's graph has the inputs and outputs of the graph it is compiled for."""
    if graph is planned:
        return
    a = [v.name for v in graph.inputs]
    b = [v.name for v in planned.inputs]
    if a != b or len(graph.outputs) != len(planned.outputs):
        raise ChunkcError(f"plan was made for a graph with inputs {b} and {len(planned.outputs)} outputs, "
                          f"not graph {graph.name} with inputs {a} and {len(graph.outputs)} outputs")


__all__ = ["PlanIndex", "RegionView", "check_same_signature", "loop_attrs", "overlapping_view", "reuse_problem"]
