"""Memory estimation: liveness over the schedule, with or without a chunk plan.

The model (docs/memory.md has the long form):

* A node's outputs are allocated when it runs; a storage is freed after the last
  use of every value that aliases it.  Graph outputs are never freed; graph
  inputs and constants (weights) cost nothing.
* Fresh outputs are C-contiguous, except those of ops whose record ``keeps_layout``
  (elementwise kernels): the backend's layout rule lays them out in the order of their
  inputs' strides, as TensorIterator and NumPy do (chunkc.ir.layout).
* Views cost nothing: when an op's record has ``view_strides`` and it returns
  strides for the input's layout, the output shares input 0's storage.  Strides
  are tracked per value, so a reshape of a permuted value is a copy.
* ``workspace`` (temporaries a kernel needs beyond its outputs) counts during
  its node only.  Peak during a node = live before it + its new outputs + its
  workspace; its dead values are freed after it.
* With a plan, each region is a loop: its outputs are allocated in full before
  the loop; every value read by the loop and produced before it stays live until
  the loop ends; inside an iteration a chunked value costs ``chunk/extent`` of
  its full size (the full chunk, not the shorter last one); sliced region inputs
  are views; each chunk result lives until its last use inside the loop (when it
  has been written into its output buffer); region-internal values are gone
  after the loop.

Every storage becomes one interval ``[alloc, free]`` of schedule positions, and
the timeline is a difference array over those intervals.  :class:`MemoryModel`
precomputes everything that does not depend on the plan (sizes, strides, views,
uses), so that :meth:`MemoryModel.peak` can score thousands of candidate plans.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..backends.registry import get_backend
from ..errors import ChunkcError
from ..ir.dims import LOOP_START, LOOP_STOP
from ..ir.graph import Graph, Node, Value
from ..ir.kernel_workspace import autograd_kept, needed_workspace, with_autograd, workspace_with_strides
from ..ir.layout import contiguous_strides, split_view_result
from ..ir.registry import concrete_attrs, has_symbolic_attrs
from ..ir.sizes import evaluate
from ..ir.types import TensorType
from .device_memory import get_device
from .halo import held_length, inner_held_length, rows, widening
from .loop_buffers import LoopBuffer, loop_buffers
from .plan import DEFAULT_BACKEND, ChunkedValue, ChunkRegion, Plan
from .accumulate import accumulating_end
from .plan_index import PlanIndex, RegionView, loop_attrs

EXTERNAL = -1  # alias root of graph inputs and constants: costs nothing
INTERNAL = -2  # a region-internal value: it has no storage outside its loop
# iterations at which a placed accumulator's workspace is asked, at most (MemoryModel._accumulator_attrs)
MAX_PLACED_ITERATIONS = 256


@dataclass(frozen=True)
class TimelineEntry:
    """One schedule step.  For a region's nodes the bytes are those of one
    iteration (the largest chunk); the region's last node reports its live bytes
    after the loop has ended."""

    node: str
    op: str
    live_bytes: int  # live after the node
    peak_bytes: int  # the most live during the node (outputs and workspace included)
    region: int | None  # index into plan.regions, or None


@dataclass
class MemoryReport:
    peak_bytes: int
    peak_node: str
    peak_index: int  # position of peak_node in the schedule
    timeline: list[TimelineEntry]
    live_at_peak: dict[str, int]  # storages live during the peak step (by the value that allocated them), largest first
    sizes: dict[str, int]
    regions: tuple[tuple[int, int], ...] = ()  # schedule span [start, end] of each plan region
    # the values held in full during the peak step (whole values and region output buffers, not
    # a loop's slices or kernel workspace), by value name, largest first: what a lower peak must
    # remove (this estimator's; a training report leaves it empty)
    whole_at_peak: dict[str, int] = field(default_factory=dict)

    def format(self, top: int = 8) -> str:
        """A short human-readable summary (peak, where, what is live)."""
        lines = [f"peak {format_bytes(self.peak_bytes)} during node {self.peak_node} "
                 f"(step {self.peak_index} of {len(self.timeline)})"]
        if self.sizes:
            lines[0] += " for " + ", ".join(f"{k}={v}" for k, v in sorted(self.sizes.items()))
        for name, nbytes in list(self.live_at_peak.items())[:top]:
            lines.append(f"  {format_bytes(nbytes):>10}  {name}")
        if len(self.live_at_peak) > top:
            rest = sum(list(self.live_at_peak.values())[top:])
            lines.append(f"  {format_bytes(rest):>10}  ({len(self.live_at_peak) - top} more)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def format_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def estimate_memory(graph: Graph, plan: Plan | None = None, sizes: Mapping[str, int] | None = None,
                    backend: str | None = None, device: str | None = None) -> MemoryReport:
    """Estimate the activation memory of one call of ``graph`` (chunked by ``plan``).

    With a plan, the estimate reads ``plan.graph``'s schedule (reordering may have
    moved nodes); ``sizes`` defaults to ``plan.sizes``.  ``backend`` (a registered
    backend's name: "torch", "numpy", "cupy"...) says whose kernels run, which decides
    the workspace they allocate beyond their outputs (its workspace policy, see
    :func:`workspace_fn`); by default the plan's backend, or without a plan the
    backend ``chunkc.compile`` defaults to.  ``device`` ("cpu" or "cuda"; by default the
    plan's, else "cpu") says whose allocator rounds each allocation and which kernels'
    workspace counts (:mod:`chunkc.passes.device_memory`).
    """
    graph, sizes, backend = plan_defaults(graph, plan, sizes, backend)
    if device is None:
        device = plan.device if plan is not None else "cpu"
    if plan is None or not plan.regions:
        return MemoryModel(graph, sizes, backend=backend, device=device).report(plan)
    index = PlanIndex.build(graph, plan)
    model = MemoryModel(graph, sizes, backend=backend, device=device, buffers=loop_buffers(index.regions))
    model._last_index = (plan, plan.regions, index)
    return model.report(plan)


def plan_defaults(graph: Graph, plan: Plan | None, sizes: Mapping[str, int] | None,
                  backend: str | None) -> tuple[Graph, Mapping[str, int] | None, str]:
    """What an estimate of ``plan`` reads when not told: the plan's (reordered) graph, its
    planning sizes and its backend; without a plan, ``chunkc.compile``'s default backend."""
    if plan is not None:
        graph = plan.graph
        if sizes is None:
            sizes = plan.sizes
    if backend is None:
        backend = plan.backend if plan is not None else DEFAULT_BACKEND
    return graph, sizes, backend


def workspace_fn(op, backend: str):
    """The record's workspace function for ``backend``'s kernels, or None: the backend's
    workspace policy says (NumPy/CuPy run the references, whose ``workspace`` the record
    declares; PyTorch runs the record's lowering and ATen's kernels, whose temporaries
    ``torch_workspace`` declares).  On the host: ``MemoryModel`` asks its device record
    (chunkc.passes.device_memory), which defers to this policy on the CPU."""
    return get_backend(backend).workspace(op)


# -- layout helpers -------------------------------------------------------------------


def _is_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    return all(s == 1 or a == b for s, a, b in zip(shape, strides, contiguous_strides(shape)))


@dataclass
class _Region:
    index: int
    start: int
    end: int
    region: ChunkRegion
    chunk_elems: dict[int, tuple[int, int]]  # value id -> (axis, elements of the axis per iteration)
    outputs: frozenset[int]
    reuse: dict[int, int]  # output id -> id of the region input whose storage it takes
    # value id -> (unit, lo, hi) for values with rows beyond their chunk (chunkc.passes.halo)
    halo: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    # value id -> q for halo values the loop computes through a ratio 1/q (a nearest
    # upsampling): their rows come in whole groups of q (chunkc.passes.halo.widening)
    widen: dict[int, int] = field(default_factory=dict)
    units: int = 0  # units per iteration (0: read them off chunk_elems)
    # which iteration of a halo loop is modelled: an inner one (every halo row held, window
    # inputs are views) or one at the image border (halo rows beyond the border not held, a
    # window op reads its input rows padded: a copy, chunkc.passes.halo.take_rows)
    border: bool = False
    clipped: frozenset[int] = frozenset()  # at the border: the halo values short of rows there
    # loops nested in this one (ChunkRegion.inner): each a _Region over its span of steps,
    # with this loop's chunks of the values it reads and its own of the values it slices
    inner: tuple["_Region", ...] = ()
    # an inner loop's: value id -> (axis, elements) of a second axis, for values both loops
    # slice (the outer loop's rows, then the inner loop's columns of a mask)
    also: dict[int, tuple[int, int]] = field(default_factory=dict)

    def iteration(self, start: int, stop: int, full: Mapping[int, int]) -> "_Region | None":
        """This region's iteration over units [start, stop) when it reaches the border (halo
        rows of some value fall beyond it: those rows are not held, and a window op reading
        such a value pads a copy of its rows), else None.  ``full``: each chunked value's size
        on its axis."""
        elems, clipped = {}, set()
        for v, (axis, n) in self.chunk_elems.items():
            if v in self.halo:
                unit, lo, hi = self.halo[v]
                first, last = rows(start, stop, unit, lo, hi, full[v])
                if first > start * unit - lo or last < stop * unit + hi:
                    clipped.add(v)
                held = held_length(start, stop, unit, lo, hi, full[v], self.widen.get(v, 1))
                elems[v] = (axis, max(held, 1))
            else:  # a full chunk, as an inner iteration's (the workspace reads units off it)
                elems[v] = (axis, n)
        if not clipped:
            return None
        return dataclasses.replace(self, chunk_elems=elems, border=True, clipped=frozenset(clipped))


@dataclass
class _Intervals:
    """Storages of one plan as intervals of schedule positions (free == N: never)."""

    nbytes: list[int] = field(default_factory=list)
    alloc: list[int] = field(default_factory=list)
    free: list[int] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # value id that allocated it
    kind: list[str] = field(default_factory=list)  # "" | "chunk" | "buffer"

    def add(self, nbytes: int, pos: int, free: int, owner: int, kind: str = "") -> int:
        self.nbytes.append(nbytes)
        self.alloc.append(pos)
        self.free.append(free)
        self.owner.append(owner)
        self.kind.append(kind)
        return len(self.nbytes) - 1


class MemoryModel:
    """Everything about ``graph`` at ``sizes`` that no plan changes, precomputed once.

    ``model.peak(plan)`` returns the estimated peak bytes; ``model.report(plan)`` the
    full :class:`MemoryReport`.  Plans must use ``graph``'s schedule (a reordered
    copy gets its own model, built on demand and cached).
    """

    def __init__(self, graph: Graph, sizes: Mapping[str, int] | None = None, backend: str = DEFAULT_BACKEND,
                 device: str | None = None, buffers: Sequence[LoopBuffer] = (), autograd: bool = False):
        self.graph = graph
        # whether the kernels run with autograd recording (a training step's nodes): records
        # whose kernels differ then are told so (chunkc.ir.kernel_workspace.AUTOGRAD_ATTR)
        self.autograd = autograd
        # values a plan's loops write into buffers (chunkc.passes.loop_buffers): laid out as the
        # buffer is, for whatever reads them after the loop
        self.loop_buffers = {b.value: b for b in buffers}
        self.sizes = _normalize_sizes(graph, sizes)
        self.backend = backend or DEFAULT_BACKEND
        self.layout = get_backend(self.backend).layout  # an unknown name is refused here
        self.device = get_device(device)
        self.block = self.device.block_bytes(self.backend)  # bytes the allocator hands out per request
        self.nodes: list[Node] = list(graph.nodes)
        self.order = tuple(n.name for n in self.nodes)
        self._others: dict[tuple, MemoryModel] = {}  # schedule, or (schedule, loop buffers) -> its model
        self._last_index: tuple | None = None  # (plan, its regions, its PlanIndex): see _index
        self._chunk_answers: dict[tuple, object] = {}  # answers of op records for chunk shapes
        self._records: dict[int, tuple] = {}  # node position -> its dimension record (asked once)
        self._build()
        self._base = self._intervals([])  # the unchunked schedule

    # -- precomputation ---------------------------------------------------------------
    def _build(self) -> None:
        b = self.sizes
        values: list[Value] = list(self.graph.inputs) + list(self.graph.constants)
        for n in self.nodes:
            values.extend(n.outputs)
        self.values = values
        self.vid = {v: i for i, v in enumerate(values)}
        V = len(values)
        self.prod = [-1] * V
        self.shape: list[tuple[int, ...]] = []
        self.nbytes: list[int] = []
        self.strides: list[tuple[int, ...]] = [()] * V
        # value id -> its strides as its node makes them, where its loop buffer is laid out otherwise
        self._made: dict[int, tuple[int, ...]] = {}
        self.parent = [-1] * V  # the value whose storage this one views
        self.users: list[list[int]] = [[] for _ in range(V)]
        for i, v in enumerate(values):
            try:
                shape = tuple(evaluate(s, b) for s in v.shape)
            except (KeyError, ValueError) as exc:
                raise ChunkcError(f"estimate_memory: %{v.name}: {exc}") from None
            self.shape.append(shape)
            n = v.dtype.itemsize
            for s in shape:
                n *= s
            self.nbytes.append(n)
            if v.producer is None:
                data = getattr(v, "data", None)
                if data is not None and data.ndim == len(shape) and data.itemsize:
                    self.strides[i] = tuple(st // data.itemsize for st in data.strides)
                else:
                    self.strides[i] = contiguous_strides(shape)
        self.node_in: list[list[int]] = []
        self.node_out: list[list[int]] = []
        self.ws = [0] * len(self.nodes)
        # None where the record proves a node takes none (a conversion of inputs already in the
        # output's dtype): neither this estimate nor the search's asks it at every chunk size
        self.ws_fn = [needed_workspace(self.device.workspace(n.op, self.backend), [v.dtype for v in n.inputs],
                                       [o.dtype for o in n.outputs]) for n in self.nodes]
        for p, node in enumerate(self.nodes):
            ins = [self.vid[v] for v in node.inputs]
            outs = [self.vid[v] for v in node.outputs]
            self.node_in.append(ins)
            self.node_out.append(outs)
            for u in dict.fromkeys(ins):
                self.users[u].append(p)
            for o in outs:
                self.prod[o] = p
                self.strides[o] = self._fresh_strides(p, self.shape[o], [self.shape[u] for u in ins],
                                                      [self.strides[u] for u in ins])
            has_ws = self.ws_fn[p] is not None
            if node.op.view_strides is None and not has_ws:
                self._lay_out_buffers(outs)
                continue
            types = [TensorType(self.values[u].dtype, self.shape[u]) for u in ins]
            otypes = [TensorType(self.values[o].dtype, self.shape[o]) for o in outs]
            attrs = concrete_attrs(node.attrs, b) if has_symbolic_attrs(node.attrs) else node.attrs
            if node.op.view_strides is not None and ins:
                try:
                    res = node.op.view_strides(types, attrs, self.strides[ins[0]])
                except Exception as exc:  # a record that cannot answer: say which
                    raise ChunkcError(f"estimate_memory: node {node.name} ({node.op.name}): its view_strides "
                                      f"failed on {', '.join(map(str, types))}: {exc}") from exc
                for o, st in zip(outs, split_view_result(res, len(outs))):
                    if st is not None:
                        self.parent[o] = ins[0]
                        self.strides[o] = st
            if has_ws:
                self.ws[p] = self.workspace_bytes(p, types, attrs, otypes)
            self._lay_out_buffers(outs)
        self.last = [self.users[i][-1] if self.users[i] else self.prod[i] for i in range(V)]
        self.is_out = [False] * V
        for v in self.graph.outputs:
            self.is_out[self.vid[v]] = True

    def _lay_out_buffers(self, outs: list[int]) -> None:
        """Give the outputs that a loop writes into buffers their buffers' strides."""
        for o in outs:
            buffer = self.loop_buffers.get(self.values[o])
            if buffer is None:
                continue
            st = buffer.strides(self.shape[o], lambda u: self.strides[self.vid[u]])
            if st != self.strides[o]:
                self._made[o] = self.strides[o]
                self.strides[o] = st

    # -- plans -----------------------------------------------------------------------------
    def _model_for(self, plan: Plan | None) -> "MemoryModel":
        """The model of ``plan``'s schedule whose loop outputs are laid out as their buffers."""
        if plan is None:
            return self
        if plan.graph is not self.graph:
            order = tuple(n.name for n in plan.graph.nodes)
            if order != self.order:  # a reordered copy: its own model, asked the same
                if order not in self._others:
                    self._others[order] = MemoryModel(plan.graph, self.sizes, self.backend, self.device.name)
                return self._others[order]._model_for(plan)
        if not plan.regions:
            return self
        buffers = tuple(loop_buffers(self._index(plan).regions))
        if self._lays_out(buffers):
            return self
        key = (self.order, tuple((b.value.name, b.in_place_of and b.in_place_of.name) for b in buffers))
        if key not in self._others:
            self._others[key] = MemoryModel(self.graph, self.sizes, self.backend, self.device.name, buffers)
        return self._others[key]

    def makes_view(self, v: Value, plan: Plan | None = None) -> bool:
        """Whether ``v`` shares the storage of its producer's input 0 in ``plan``'s program at
        this model's sizes, as this estimate lays values out: fresh results by the backend's
        layout rule (an elementwise op over a permuted input is laid out permuted), a loop's
        outputs as their buffers are (chunkc.passes.loop_buffers), then the records' view
        strides (a reshape of a value that is not contiguous copies).  The code generator asks
        it before it moves a view into a chunk function (chunkc.backends.region_views), so
        that no copy it does not count runs there."""
        model = self._model_for(plan)
        i = model.vid.get(v)
        return i is not None and model.parent[i] >= 0

    def _index(self, plan: Plan) -> PlanIndex:
        """``plan``'s index over this model's graph, kept for the plan last asked about (its
        model and its regions both read it)."""
        hit = self._last_index
        if hit is not None and hit[0] is plan and hit[1] is plan.regions:
            return hit[2]
        index = PlanIndex.build(self.graph, plan)
        self._last_index = (plan, plan.regions, index)
        return index

    def _lays_out(self, buffers: Sequence[LoopBuffer]) -> bool:
        """Whether this model's strides already are those ``buffers`` give their values (this
        model built with them, or a model without buffers where each is laid out as its
        value's node lays it out)."""
        if len(buffers) == len(self.loop_buffers) and all(
                (mine := self.loop_buffers.get(b.value)) is not None and mine.in_place_of is b.in_place_of
                for b in buffers):
            return True
        if self.loop_buffers:  # laid out for another plan's buffers
            return False
        for b in buffers:
            o = self.vid.get(b.value)
            if o is None:
                return False
            want = b.strides(self.shape[o], lambda u: self.strides[self.vid[u]])
            if any(n != 1 and x != y for n, x, y in zip(self.shape[o], want, self.strides[o])):
                return False
        return True

    def _regions(self, plan: Plan | None) -> list[_Region]:
        if plan is None:
            return []
        out = []
        for view in self._index(plan).regions:
            r = view.region
            try:
                chunk = evaluate(r.chunk_size, self.sizes)
            except (KeyError, ValueError) as exc:
                raise ChunkcError(f"plan region {view.index} ({r.describe()}): chunk size: {exc}") from None
            halo = {self.vid[v]: (c.unit, *c.halo) for v, c in view.chunk.items() if c.halo_lo or c.halo_hi}
            widen = {u: q for u in halo if (q := self._widening(u, view.start, view.end, view.chunk)) > 1}
            elems: dict[int, tuple[int, int]] = {}
            for v, c in view.chunk.items():
                u = self.vid[v]
                # a halo's rows count in full: the interior iterations hold them all (chunkc.passes.halo)
                rows_held = inner_held_length(max(chunk, 1), c.unit, c.halo_lo, c.halo_hi, widen.get(u, 1))
                elems[u] = (c.axis, min(rows_held, self.shape[u][c.axis]))
            outs = frozenset(self.vid[o] for o in view.outputs)
            reuse = {self.vid[o]: self.vid[v] for o, v in view.reuse.items()}
            units = min(max(chunk, 1), evaluate(r.extent, self.sizes)) if halo else 0
            inner = tuple(self._inner_region(view, q, elems) for q in view.inner)
            out.append(_Region(view.index, view.start, view.end, r, elems, outs, reuse, halo, widen, units,
                               inner=inner))
        return out

    def _inner_region(self, outer: RegionView, view: RegionView, outer_elems: dict[int, tuple[int, int]]) -> _Region:
        """An inner loop of ``outer`` as a _Region: the outer loop's chunks, and its own of the
        values it slices (at its full chunk: one that stops early runs shorter ones)."""
        r = view.region
        try:
            chunk = max(evaluate(r.chunk_size, self.sizes), 1)
        except (KeyError, ValueError) as exc:
            raise ChunkcError(f"plan region {outer.index}, inner loop {view.index}: chunk size: {exc}") from None
        elems, also = dict(outer_elems), {}
        for v, c in view.chunk.items():
            u = self.vid[v]
            rows = (c.axis, min(chunk * c.unit, self.shape[u][c.axis]))
            if u in outer_elems and outer_elems[u][0] != c.axis:
                also[u] = rows
            else:
                elems[u] = rows
        outs = frozenset(self.vid[o] for o in view.outputs)
        return _Region(outer.index, view.start, view.end, r, elems, outs, {}, also=also)

    def _widening(self, u: int, start: int, end: int, chunk: Mapping[Value, ChunkedValue]) -> int:
        """q when value ``u`` is computed inside the loop over schedule steps [start, end] by a
        node reading its input through a ratio 1/q on the chunk axis (else 1)."""
        p = self.prod[u]
        if not start <= p <= end:
            return 1
        axis = chunk[self.values[u]].axis
        return widening(self.record(p)[self.node_out[p].index(u)][axis])

    def _chunk_bytes(self, v: int, reg: _Region) -> int:
        if v not in reg.chunk_elems:
            return self.nbytes[v]
        n = self.values[v].dtype.itemsize
        for s in self._chunk_shape(v, reg):
            n *= s
        return n

    def _chunk_shape(self, v: int, reg: _Region) -> tuple[int, ...]:
        if v not in reg.chunk_elems:
            return self.shape[v]
        axis, elems = reg.chunk_elems[v]
        s = list(self.shape[v])
        s[axis] = elems
        if v in reg.also:
            axis, elems = reg.also[v]
            s[axis] = elems
        return tuple(s)

    def _fresh_strides(self, p: int, shape: tuple[int, ...], in_shapes: list, in_strides: list) -> tuple[int, ...]:
        """Strides of a fresh output of node ``p``: C-contiguous, unless its op's record
        ``keeps_layout`` (elementwise kernels), when the backend's layout rule lays it out in
        the order of the inputs' strides (chunkc.ir.layout)."""
        if not self.nodes[p].op.keeps_layout:
            return contiguous_strides(shape)
        return self.layout(shape, list(zip(in_shapes, in_strides)))

    def _chunk_view(self, v: int, reg: _Region, cstrides: dict[int, tuple[int, ...]]) -> tuple[int, ...] | None:
        """Strides of ``v`` inside ``reg``'s loop when it is a view there, else None.

        Every output of an op that may alias is asked again with the chunk shapes and the
        chunk's layout (a slice of a contiguous value is not contiguous; a reshape that
        copies at full size can be a view of a chunk whose axis has one element); its
        ``shape_attr`` (a reshape target) is given the chunk's output shape, as the code
        generators do.  When the record still cannot answer for chunk shapes, the
        full-size answer stands.
        """
        p = self.prod[v]
        node = self.nodes[p]
        ins = self.node_in[p]
        if node.op.view_strides is None or not ins:
            return None
        par = ins[0]  # a view aliases input 0 (the records' contract)
        in_shapes = tuple(self._chunk_shape(u, reg) for u in ins)
        par_strides = cstrides.get(par, self.strides[par])
        key = (v, in_shapes, par_strides)
        if key in self._chunk_answers:
            return self._chunk_answers[key]
        types = [TensorType(self.values[u].dtype, s) for u, s in zip(ins, in_shapes)]
        attrs = self._chunk_attrs(p, reg)
        try:
            res = split_view_result(node.op.view_strides(types, attrs, par_strides), len(self.node_out[p]))
            st = res[self.node_out[p].index(v)]
        except Exception:
            if self.parent[v] < 0:
                st = None  # a copy at full size
            else:
                made = self._made.get(v, self.strides[v])
                full_contig = _is_contiguous(self.shape[v], made)
                in_contig = _is_contiguous(in_shapes[0], par_strides)
                st = contiguous_strides(self._chunk_shape(v, reg)) if (full_contig and in_contig) else made
        self._chunk_answers[key] = st
        return st

    def workspace_bytes(self, p: int, in_types: list[TensorType], attrs: Mapping, out_types: list[TensorType],
                        in_strides: Sequence[tuple[int, ...]] | None = None, autograd: bool | None = None) -> int:
        """Bytes node ``p``'s kernel on this model's backend allocates beyond its outputs,
        for these (concrete) input and output types and attributes.  ``in_strides``: the
        inputs' strides as the kernel sees them (in a loop: a slice of a value from before
        the loop keeps its full strides, a chunk made in the loop is dense in its own shape);
        by default the full-size values' strides (a chunk slice keeps which axes are dense).
        ``autograd``: whether autograd records the call (default: the model's)."""
        fn = self.ws_fn[p]
        if fn is None or not out_types:
            return 0
        attrs = with_autograd(attrs, self.autograd if autograd is None else autograd)
        strides = in_strides
        if strides is None:
            strides = [self.strides[u] for u in self.node_in[p]] if p < len(self.node_in) else None
        n = workspace_with_strides(fn, in_types, attrs, out_types, strides) if strides else fn(in_types, attrs, out_types)
        return self.block(int(evaluate(n, self.sizes)) * out_types[0].dtype.itemsize)

    def kept_bytes(self, p: int, in_types: list[TensorType], attrs: Mapping, out_types: list[TensorType]) -> int:
        """Bytes of node ``p``'s workspace that autograd keeps after a recorded call, to its
        backward, beyond the values it saves (its record's ``TorchWorkspace.kept``)."""
        fn = self.ws_fn[p]
        if fn is None or not out_types:
            return 0
        return self.block(int(evaluate(autograd_kept(fn, in_types, attrs, out_types), self.sizes)))

    def record(self, p: int) -> tuple:
        """Node ``p``'s dimension record (``node.dims()``), asked of its op once."""
        rec = self._records.get(p)
        if rec is None:
            rec = self._records[p] = self.nodes[p].dims()
        return rec

    def loop_attrs(self, p: int, chunk: ChunkedValue | None, chunk_units: int, extent: int,
                   start: int | None = None) -> dict:
        """Node ``p``'s concrete attributes in the loop iteration of ``chunk_units`` units that
        starts at ``start``; by default one past the first (a positional op's slice does not
        start at 0 there), if there is one."""
        if start is None:
            start = chunk_units if 2 * chunk_units <= extent else 0
        bindings = {**self.sizes, LOOP_START.name: start, LOOP_STOP.name: start + chunk_units}
        return concrete_attrs(loop_attrs(self.nodes[p], chunk, self.record(p)), bindings)

    def loop_iterations(self, p: int, chunk: ChunkedValue | None, chunk_units: int,
                        extent: int) -> list[tuple[int, int]]:
        """(units, start) of the iterations of a loop whose workspace node ``p``'s record is
        asked at: one past the first; for a positional op (causal attention's mask rows reach
        more keys further on) the last full one and the remainder too."""
        iterations = [(chunk_units, chunk_units if 2 * chunk_units <= extent else 0)]
        if chunk is not None and self.record(p)[0][chunk.axis].positional and chunk_units < extent:
            iterations.append((chunk_units, (extent // chunk_units - 1) * chunk_units))
            if extent % chunk_units:
                iterations.append((extent % chunk_units, extent - extent % chunk_units))
        return iterations

    def loop_workspace_bytes(self, p: int, types_for: Callable[[int], tuple[list[TensorType], list[TensorType]]],
                             chunk: ChunkedValue | None, chunk_units: int, extent: int,
                             in_strides: Sequence[tuple[int, ...]] | None = None, border: bool = True,
                             freed: int = 0, autograd: bool | None = None) -> int:
        """The most workspace node ``p`` takes in one iteration of a loop over ``extent`` units
        in chunks of ``chunk_units``; ``types_for(n)`` gives its (input, output) types in an
        iteration of ``n`` units, at :meth:`loop_iterations` (``in_strides``: see
        :meth:`workspace_bytes`).
        ``border``: a window op's copy of its input rows padded at the image border counts
        (an iteration at the border; inner ones read a view); ``freed``: the bytes of the input
        chunk that copy replaces, dropped before the op runs (:meth:`_freed_by_copy`);
        ``autograd``: see :meth:`workspace_bytes`."""
        best = None
        for n, start in self.loop_iterations(p, chunk, chunk_units, extent):
            ins, outs = types_for(n)
            copy = self.border_copy_bytes(p, chunk, ins, outs) if border else 0
            strides = in_strides
            if copy:  # the rows are a dense copy at the border, a view elsewhere: a kernel that
                # copies a view that is not dense copies no more than the border copy holds
                k = self._window_input(p, chunk)
                if strides is None:
                    strides = [self.strides[u] for u in self.node_in[p]]
                strides = [contiguous_strides(ins[k].shape) if j == k else st for j, st in enumerate(strides)]
            here = self.workspace_bytes(p, ins, self.loop_attrs(p, chunk, n, extent, start), outs, strides,
                                       autograd) + copy
            here -= freed if copy else 0
            best = here if best is None else max(best, here)
        return best

    def _window_input(self, p: int, chunk: ChunkedValue | None) -> int | None:
        """The input position a window op in a halo loop reads padded rows of, else None
        (whether or not the op's kernel takes workspace of its own)."""
        if chunk is None:
            return None
        flow = self.record(p)[0][chunk.axis]
        if flow.kind != "window":
            return None
        w, k = flow.sources[0].window, flow.sources[0].input
        return k if (w.pad_lo or w.pad_hi) else None

    def _window_source(self, p: int, chunk: ChunkedValue | None) -> int | None:
        """The input position a window op reads its rows of along the chunk axis, else None."""
        if chunk is None:
            return None
        flow = self.record(p)[0][chunk.axis]
        return flow.sources[0].input if flow.kind == "window" else None

    def border_copy_bytes(self, p: int, chunk: ChunkedValue | None, in_types: list[TensorType],
                          out_types: list[TensorType]) -> int:
        """A window op in a halo loop reads its input rows padded at the image border: a copy
        (chunkc.passes.halo.take_rows) of the rows its output rows read, padding rows
        included, live while it runs."""
        k = self._window_input(p, chunk)
        if k is None:
            return 0
        x = in_types[k]
        have = int(evaluate(x.shape[self.record(p)[0][chunk.axis].sources[0].axis], self.sizes))
        rows = self._rows_read(p, chunk, out_types[0])
        return self.block(int(evaluate(x.nbytes(self.sizes), self.sizes)) // max(have, 1) * rows)

    def _rows_read(self, p: int, chunk: ChunkedValue, out: TensorType) -> int:
        """Rows of its window input a window op reads for the rows of ``out`` it computes."""
        window = self.record(p)[0][chunk.axis].sources[0].window
        return window.stride * (int(evaluate(out.shape[chunk.axis], self.sizes)) - 1) + window.extent

    def _chunk_attrs(self, p: int, reg: _Region) -> dict:
        o = self.node_out[p][0]
        axis_elems = reg.chunk_elems.get(o)
        c = reg.region.axis_of(self.values[o].name)
        if axis_elems is None or c is None:
            return concrete_attrs(self.nodes[p].attrs, self.sizes)
        units = reg.units or max(axis_elems[1] // c.unit, 1)
        return self.loop_attrs(p, c, units, evaluate(reg.region.extent, self.sizes))

    def _accumulator_attrs(self, p: int, reg: _Region, outer: _Region | None) -> list[dict]:
        """Node ``p``'s concrete attributes where its output is not chunked.  An accumulator whose
        record places its slice (``Accumulation.offset_attr``: causal keys) runs with the slice's
        start there, and in an inner loop with the outer chunk's position attributes too (its
        queries' rows), and its kernel's temporaries may depend on both (how many of its keys
        its queries see): the attributes of every (outer, inner) iteration, or of an even sample
        of the outer ones (at most MAX_PLACED_ITERATIONS in all)."""
        base = concrete_attrs(self.nodes[p].attrs, self.sizes)
        x = self.node_in[p][0] if self.node_in[p] else None
        c = reg.region.axis_of(self.values[x].name) if x is not None else None
        elems = reg.chunk_elems.get(x) if x is not None else None
        how = accumulating_end(self.nodes[p], c.axis) if c is not None and elems is not None else None
        if how is None or how.offset_attr is None:
            return [base]
        units = reg.units or max(elems[1] // c.unit, 1)
        extent = evaluate(reg.region.extent, self.sizes)
        placements: list[tuple[dict, int]] = [(base, extent)]  # (attributes, where the keys stop)
        out = self.node_out[p][0]
        oc = outer.region.axis_of(self.values[out].name) if outer is not None else None
        if oc is not None and outer.chunk_elems.get(out) is not None:
            o_units = outer.units or max(outer.chunk_elems[out][1] // oc.unit, 1)
            o_extent = evaluate(outer.region.extent, self.sizes)
            starts = list(range(0, o_extent, o_units))
            keys_per = max(1, -(-extent // units))
            step = max(1, len(starts) * keys_per // MAX_PLACED_ITERATIONS)
            placements = [(self.loop_attrs(p, oc, o_units, o_extent, s),
                           min(extent, s + o_units) if reg.region.stop_at is not None else extent)
                          for s in starts[::step]]
        out_attrs = []
        for attrs, stop in placements:
            for k in range(0, stop, units):
                placed = dict(attrs)
                placed[how.offset_attr] = placed[how.offset_attr] + c.unit * k
                out_attrs.append(placed)
        return out_attrs

    def _chunk_workspace(self, p: int, reg: _Region, cstrides: Mapping[int, tuple[int, ...]], freed: int = 0,
                         outer: _Region | None = None) -> int:
        """The node's workspace for the chunk shapes, the chunks' strides (``cstrides``: those
        of the values made in the loop; a value from before it keeps its full strides) and the
        loop's attributes (the record is asked again)."""
        ins, outs = self.node_in[p], self.node_out[p]
        whole = self._whole_positions(p, reg)
        shapes = tuple(self.shape[u] if k in whole else self._chunk_shape(u, reg) for k, u in enumerate(ins)) + \
            tuple(self._chunk_shape(u, reg) for u in outs)
        strides = tuple(self.strides[u] if k in whole else cstrides.get(u, self.strides[u]) for k, u in enumerate(ins))
        key = ("workspace", p, shapes, strides, self._pads_border(p, reg), freed, None if outer is None else outer.index)
        if key not in self._chunk_answers:
            types = [TensorType(self.values[u].dtype, s) for u, s in zip(ins + outs, shapes)]
            o = outs[0]
            axis_elems = reg.chunk_elems.get(o)
            c = reg.region.axis_of(self.values[o].name)
            if axis_elems is None or c is None:
                ws = max(self.workspace_bytes(p, types[:len(ins)], attrs, types[len(ins):], strides)
                         for attrs in self._accumulator_attrs(p, reg, outer))
            else:
                ws = self._iterations_workspace(p, reg, c, reg.units or max(axis_elems[1] // c.unit, 1),
                                                evaluate(reg.region.extent, self.sizes), strides, freed)
            self._chunk_answers[key] = ws
        return self._chunk_answers[key]

    def _whole_positions(self, p: int, reg: _Region) -> frozenset[int]:
        """Input positions at which node ``p`` reads a chunked value whole (ChunkRegion.whole_reads)."""
        name = self.nodes[p].name
        return frozenset(k for n, k in reg.region.whole_reads if n == name)

    def _iterations_workspace(self, p: int, reg: _Region, chunk: ChunkedValue, units: int, extent: int,
                              in_strides: Sequence[tuple[int, ...]], freed: int = 0) -> int:
        """The most workspace node ``p`` takes in one iteration of ``reg``'s loop."""
        ins, outs = self.node_in[p], self.node_out[p]
        whole = self._whole_positions(p, reg)

        def types_for(n: int) -> tuple[list[TensorType], list[TensorType]]:  # an iteration of n units
            out = []
            for k, u in enumerate(ins + outs):
                shape = list(self.shape[u] if k in whole else self._chunk_shape(u, reg))  # whole: read whole
                if u in reg.chunk_elems and k not in whole:
                    axis, elems = reg.chunk_elems[u]
                    if u in reg.halo and reg.border:  # this iteration's rows, short at the border
                        shape[axis] = elems
                    elif u in reg.halo:
                        unit, lo, hi = reg.halo[u]
                        shape[axis] = min(inner_held_length(n, unit, lo, hi, reg.widen.get(u, 1)), self.shape[u][axis])
                    else:
                        shape[axis] = elems // units * n
                out.append(TensorType(self.values[u].dtype, tuple(shape)))
            # the kernel reads as many rows as its output rows need: padded at the border (take_rows),
            # elsewhere a view of the rows held, not dense when they are more (a widened or wider halo)
            k = self._window_input(p, chunk) if reg.border else self._window_source(p, chunk)
            if k is not None:
                x = out[k]
                axis = self.record(p)[0][chunk.axis].sources[0].axis
                read = self._rows_read(p, chunk, out[len(ins)])
                if not reg.border:
                    read = min(read, x.shape[axis])
                out[k] = x.with_shape(x.shape[:axis] + (read,) + x.shape[axis + 1:])
            return out[:len(ins)], out[len(ins):]

        return self.loop_workspace_bytes(p, types_for, chunk, units, extent, in_strides,
                                         border=self._pads_border(p, reg), freed=freed)

    def _pads_border(self, p: int, reg: _Region) -> bool:
        """Whether node ``p``'s window input is read padded (a copy) in ``reg``'s iteration: in
        one at the border whose rows of that input are short (an inner iteration of a halo loop
        reads a view); always outside halo loops (the copy there is 0)."""
        if not reg.halo:
            return True
        if not reg.border:
            return False
        c = reg.region.axis_of(self.values[self.node_out[p][0]].name)
        k = self._window_input(p, c)
        return k is not None and self.node_in[p][k] in reg.clipped

    def _intervals(self, regions: list[_Region]) -> tuple[_Intervals, list[int]]:
        """Every storage of the plan as an interval, and the workspace bytes per step."""
        N = len(self.nodes)
        iv = _Intervals()
        region_at = [-1] * N
        end_of = list(range(N))
        inner_at: list[_Region | None] = [None] * N  # the inner loop running each step, if any
        for reg in regions:
            for p in range(reg.start, reg.end + 1):
                region_at[p] = reg.index
                end_of[p] = reg.end
            for q in reg.inner:
                for p in range(q.start, q.end + 1):
                    inner_at[p] = q
        by_index = {reg.index: reg for reg in regions}
        ws = list(self.ws)
        root = [EXTERNAL] * len(self.values)
        croot: dict[int, int] = {}  # chunk world: value -> storage (EXTERNAL for inputs and weights)
        # the chunks' strides, per region: a value made in one region's loop is a whole buffer
        # (its full strides) when a later region reads it
        region_strides: dict[int, dict[int, tuple[int, ...]]] = {reg.index: {} for reg in regions}
        prod, parent, last, is_out, nbytes = self.prod, self.parent, self.last, self.is_out, self.nbytes
        for v in range(len(self.values)):
            p = prod[v]
            if p < 0:
                continue
            r = region_at[p]
            lastpos = N if is_out[v] else end_of[last[v]]
            if r < 0:
                par = parent[v]
                if par >= 0:
                    rt = root[par]
                    if rt == INTERNAL:
                        self._leak(by_index[region_at[prod[par]]], par)
                    root[v] = rt
                    if rt >= 0 and iv.free[rt] < lastpos:
                        iv.free[rt] = lastpos
                else:
                    root[v] = iv.add(self.block(nbytes[v]), p, lastpos, v)
                continue
            reg = by_index[r]
            q = inner_at[p]  # the inner loop making v, whose chunks it has
            creg = q if q is not None else reg
            cstrides = region_strides[r]
            if (lastpos > reg.end or is_out[v]) and v not in reg.outputs:
                self._leak(reg, v)
            # inside the loop: a chunk of v, a view or a fresh chunk storage
            st = self._chunk_view(v, creg, cstrides)
            if st is not None:
                par = self.node_in[p][0]
                cstrides[v] = st
                if prod[par] >= 0 and region_at[prod[par]] == r:
                    crt = croot[par]
                else:  # a view of a value from before the loop (a slice of a region input) or of a graph input
                    crt = root[par]
                    if crt == INTERNAL:
                        self._leak(by_index[region_at[prod[par]]], par)
            else:
                crt = iv.add(self.block(self._chunk_bytes(v, creg)), p, p, v, "chunk")
                ins = self.node_in[p]
                cstrides[v] = self._fresh_strides(p, self._chunk_shape(v, creg), [self._chunk_shape(u, creg) for u in ins],
                                                  [cstrides.get(u, self.strides[u]) for u in ins])
            croot[v] = crt
            in_loop = last[v] if last[v] <= reg.end else self._last_before(v, reg.end)
            if q is None and inner_at[in_loop] is not None:  # read by an inner loop: through all of it
                in_loop = inner_at[in_loop].end
            read_until = in_loop
            if crt >= 0:
                if q is not None and v in q.outputs:  # an inner accumulator's partial: merged, then gone
                    in_loop = p
                if v in reg.reuse:  # written in place at the end of the iteration
                    in_loop = reg.end
                until = in_loop if iv.kind[crt] == "chunk" else reg.end  # a storage from before the loop lives through it
                if iv.free[crt] < until:
                    iv.free[crt] = until
            if v in reg.reuse:  # the buffer is the dying input's storage: nothing new
                taken = root[reg.reuse[v]]
                if taken < 0:
                    raise ChunkcError(f"plan region {reg.index} ({reg.region.describe()}): %{self.values[v].name} "
                                      f"cannot take the storage of %{self.values[reg.reuse[v]].name}, which it "
                                      "does not own")
                root[v] = taken
                iv.free[taken] = max(iv.free[taken], lastpos)
            elif v in reg.outputs:
                root[v] = iv.add(self.block(nbytes[v]), reg.start, lastpos, v, "buffer")
            elif q is not None and v in q.outputs:  # whole for the inner loop, a chunk of the outer one
                until = read_until if inner_at[read_until] is None else inner_at[read_until].end
                iv.add(self.block(self._chunk_bytes(v, reg)), q.start, max(until, q.end), v, "chunk")
                root[v] = INTERNAL
            else:
                root[v] = INTERNAL
        for reg in regions:
            for p in range(reg.start, reg.end + 1):
                if self.ws_fn[p] is not None or reg.halo:  # in a halo loop, a window op's padded copy
                    ws[p] = self._chunk_workspace(p, inner_at[p] or reg, region_strides[reg.index],
                                                  self._freed_by_copy(p, reg, iv, croot),
                                                  outer=reg if inner_at[p] is not None else None)
        return iv, ws

    def _freed_by_copy(self, p: int, reg: _Region, iv: _Intervals, croot: Mapping[int, int]) -> int:
        """Bytes of the loop chunk whose padded copy a window op reads at the image border when
        the op is its last reader in the loop: the generated code takes the padded rows, then
        drops the chunk before the op runs (chunkc.backends.halo_loop), so the copy replaces it
        (0 when the chunk is a view of another storage, an output, or read twice by the op)."""
        if not reg.halo:
            return 0
        k = self._window_input(p, reg.region.axis_of(self.values[self.node_out[p][0]].name))
        if k is None:
            return 0
        u = self.node_in[p][k]
        s = croot.get(u, -1)
        if s < 0 or iv.kind[s] != "chunk" or iv.owner[s] != u or iv.free[s] != p or u in reg.outputs \
                or self.node_in[p].count(u) > 1:
            return 0
        return iv.nbytes[s]

    def _last_before(self, v: int, end: int) -> int:
        users = self.users[v]
        k = bisect.bisect_right(users, end)
        return users[k - 1] if k else self.prod[v]

    def _leak(self, reg: _Region, v: int):
        raise ChunkcError(f"plan region {reg.index} ({reg.region.describe()}): value %{self.values[v].name} is produced "
                          "inside the loop and used after it, but is not one of the region's outputs")

    # -- results ----------------------------------------------------------------------------
    def _curves(self, iv: _Intervals, ws: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(peak during each step, live after each step)."""
        N = len(self.nodes)
        size = np.asarray(iv.nbytes, dtype=np.float64)
        alloc = np.asarray(iv.alloc, dtype=np.int64)
        free = np.asarray(iv.free, dtype=np.int64)
        delta = np.bincount(alloc, size, minlength=N + 2) - np.bincount(free + 1, size, minlength=N + 2)
        during = np.cumsum(delta)[:N]
        freed = np.bincount(free, size, minlength=N + 1)[:N]
        return (np.rint(during).astype(np.int64) + np.asarray(ws, dtype=np.int64),
                np.rint(during - freed).astype(np.int64))

    def peak(self, plan: Plan | None = None) -> int:
        """The estimated peak bytes of one call under ``plan`` (the fast path)."""
        return self.peak_step(plan)[0]

    def peak_step(self, plan: Plan | None = None) -> tuple[int, int]:
        """The estimated peak bytes and the schedule position of the node where it occurs
        (in ``plan.graph``'s schedule)."""
        model = self._model_for(plan)
        if not model.nodes:
            return 0, -1
        variants = [model._base] if not (plan and plan.regions) else model._variants(model._regions(plan))
        during = np.max([model._curves(iv, ws)[0] for iv, ws in variants], axis=0)
        i = int(np.argmax(during))
        return int(during[i]), i

    def _variants(self, regions: list[_Region]) -> list[tuple[_Intervals, list[int]]]:
        """The plan's storages and workspace with every halo loop at an inner iteration, then
        at each of its iterations that reach the border (fewer halo rows held, the window
        inputs' padded copies made): each step's peak is the largest of these."""
        out = [self._intervals(regions)]
        borders = [self._border_iterations(reg) if reg.halo else [] for reg in regions]
        for j in range(max(map(len, borders), default=0)):
            out.append(self._intervals([b[j] if j < len(b) else reg for reg, b in zip(regions, borders)]))
        return out

    def _border_iterations(self, reg: _Region) -> list[_Region]:
        """The iterations of a halo loop that reach the border: the first ones and the last
        ones (the last may be ragged, the one before it still short of rows at the end)."""
        extent = evaluate(reg.region.extent, self.sizes)
        chunk = max(reg.units, 1)
        starts = list(range(0, extent, chunk))
        full = {v: self.shape[v][axis] for v, (axis, _) in reg.chunk_elems.items()}
        reach = max(max(lo, hi) for _, lo, hi in reg.halo.values())
        near = [k for k in starts if k * min(u for u, _, _ in reg.halo.values()) < reach] + \
            [k for k in starts if extent - min(k + chunk, extent) <= reach]
        out = []
        for k in dict.fromkeys(near):
            it = reg.iteration(k, min(k + chunk, extent), full)
            if it is not None:
                out.append(it)
        return out

    def report(self, plan: Plan | None = None) -> MemoryReport:
        model = self._model_for(plan)
        if model is not self:
            return model.report(plan)
        regions = self._regions(plan)
        if not self.nodes:
            return MemoryReport(0, "", -1, [], {}, dict(self.sizes))
        variants = self._variants(regions) if regions else [self._base]
        curves = [self._curves(iv, ws) for iv, ws in variants]
        during = np.max([c[0] for c in curves], axis=0)
        after = np.max([c[1] for c in curves], axis=0)
        # what is live at the peak: in the variant (inner or border iteration) that makes it
        iv, ws = variants[int(np.argmax([c[0].max() for c in curves]))]
        region_at = {p: reg.index for reg in regions for p in range(reg.start, reg.end + 1)}
        timeline = [TimelineEntry(n.name, n.op.name, int(after[p]), int(during[p]), region_at.get(p))
                    for p, n in enumerate(self.nodes)]
        i = int(np.argmax(during))
        live: dict[str, int] = {}
        whole: dict[str, int] = {}
        for k in range(len(iv.nbytes)):
            if iv.alloc[k] <= i <= iv.free[k] and iv.nbytes[k]:
                value = self.values[iv.owner[k]].name
                name = value + (f" [{iv.kind[k]}]" if iv.kind[k] else "")
                live[name] = live.get(name, 0) + iv.nbytes[k]
                if iv.kind[k] != "chunk":
                    whole[value] = whole.get(value, 0) + iv.nbytes[k]
        if ws[i]:
            live[f"workspace of {self.nodes[i].name}"] = ws[i]
        live = dict(sorted(live.items(), key=lambda kv: -kv[1]))
        return MemoryReport(int(during[i]), self.nodes[i].name, i, timeline, live, dict(self.sizes),
                            tuple((reg.start, reg.end) for reg in regions),
                            dict(sorted(whole.items(), key=lambda kv: -kv[1])))


def _normalize_sizes(graph: Graph, sizes: Mapping | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in (sizes or {}).items():
        out[getattr(k, "name", str(k))] = int(v)
    missing = sorted(graph.symbols() - set(out))
    if missing:
        raise ChunkcError(f"estimate_memory: graph {graph.name} has symbolic sizes {', '.join(missing)}; "
                          f"pass sizes={{{', '.join(repr(m) + ': ...' for m in missing)}}} "
                          "(or graph.bind_sizes(inputs))")
    return out


__all__ = ["MemoryModel", "MemoryReport", "TimelineEntry", "estimate_memory", "format_bytes", "workspace_fn"]
