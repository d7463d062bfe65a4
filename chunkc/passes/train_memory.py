"""The memory of a training step: the forward, what autograd keeps for the backward, the backward.

A training step runs the schedule forward, then every recorded step's backward in
reverse.  The model lays the step on ``2S`` slots (``S`` steps: nodes, and chunk
regions folded into one step each): slot ``k`` is step ``k``'s forward, slot
``2S-1-k`` its backward.  Every storage is an interval of slots:

* a value lives from the step that makes it to its last forward reader, or — when a
  recorded step's backward needs it (the op record's ``saves``, :mod:`chunkc.ir.grad`)
  — to the backward of the *first* step that saved it; graph outputs live to the end;
  views share their base's storage, as in the inference estimator
  (:mod:`chunkc.passes.memory`, whose per-value facts this model reads);
* a value's gradient lives from the backward of the last step that sends it one (the
  first to run) to the backward of the step that made it; each further contribution is
  a transient of the value's size while its step's backward runs (autograd adds it in),
  except from view ops, whose gradients are views; gradients of graph inputs and
  parameters are added into their existing ``.grad`` (a transient at each contribution);
  graph outputs' gradients are given (not counted);
* a chunk region (the training backend runs it as an autograd Function,
  :mod:`chunkc.backends.torch_train`) saves its inputs only; its forward adds one
  chunk's live values to the slot, and its backward one chunk's recomputation: that
  chunk's forward with autograd on and its backward, modelled by the same rules on
  the region's nodes with chunk-sized values (:func:`region_local`), plus the full-size
  gradient buffers of its inputs;
* kernels' workspace is asked of the op records as :mod:`chunkc.passes.memory` asks it,
  with autograd recording (a node outside regions, a region's backward recomputation) or
  not (a region's forward): in a region at the chunk's shapes and loop attributes
  (:meth:`GraphFacts.chunk_workspace`); the part of it autograd keeps to the node's backward
  (``TorchWorkspace.kept``) is held until then.

Graph inputs and weights cost nothing, as in the inference estimator; so do their
gradient buffers, which exist before the step (``chunkc.measure_step`` measures the
same thing).  The peak is over every slot.  :class:`TrainSearchModel` gives the
search the same numbers for a candidate region as changes to a base timeline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ChunkcError
from ..ir.grad import gradient_inputs, is_recorded, requires_grad, saved_values
from ..ir.graph import Graph, Node, Value
from ..ir.registry import concrete_attrs
from ..ir.sizes import evaluate
from ..ir.types import TensorType
from .memory import MemoryModel, MemoryReport, TimelineEntry, plan_defaults
from .plan import DEFAULT_BACKEND, ChunkedValue, Plan
from .plan_index import PlanIndex, RegionView

Pair = tuple[int, int]  # bytes (a, b): a + b * chunk / extent


@dataclass
class Step:
    """One step of a training schedule, as the liveness below sees it."""

    name: str
    op: str
    reads: tuple[Value, ...]
    writes: tuple[Value, ...]
    saves: tuple[Value, ...] = ()  # kept for its backward
    grads_to: tuple[Value, ...] = ()  # values its backward sends a gradient to
    alias_grads: bool = False  # those gradients are views of the incoming one (view ops)
    fwd: Pair = (0, 0)  # transient bytes while its forward runs
    bwd: Pair = (0, 0)  # transient bytes while its backward runs
    # bytes of its forward's workspace autograd keeps after it, to its backward, beyond the values
    # it saves (a kernel's own: ATen's float copy of a bool mask for the flash kernel's backward)
    kept: Pair = (0, 0)
    region: int | None = None


@dataclass
class Storage:
    owner: Value
    kind: str  # "" (a value) | "grad"
    alloc: int  # first slot
    free: int  # last slot
    size: Pair


@dataclass
class Liveness:
    """Storages and transients of a step list over its ``2S`` slots."""

    steps: list[Step]
    storages: list[Storage] = field(default_factory=list)
    transient: list[list[int]] = field(default_factory=list)  # per slot [a, b]

    @property
    def slots(self) -> int:
        return 2 * len(self.steps)

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) bytes during each slot: live storages plus the slot's transients."""
        n = self.slots
        a = np.zeros(n + 1, dtype=np.int64)
        b = np.zeros(n + 1, dtype=np.int64)
        for s in self.storages:
            a[s.alloc] += s.size[0]
            a[s.free + 1] -= s.size[0]
            b[s.alloc] += s.size[1]
            b[s.free + 1] -= s.size[1]
        t = np.asarray(self.transient, dtype=np.int64).reshape(n, 2) if n else np.zeros((0, 2), dtype=np.int64)
        return np.cumsum(a)[:n] + t[:, 0], np.cumsum(b)[:n] + t[:, 1]


@dataclass
class Events:
    """What the steps do with one value (step indices)."""

    made: int | None = None
    reads: list[int] = field(default_factory=list)
    saves: list[int] = field(default_factory=list)
    grads: list[tuple[int, bool]] = field(default_factory=list)  # (step, the gradient is a view)


@dataclass(frozen=True)
class Rules:
    """How values cost and live in one liveness problem."""

    size: Callable[[Value], Pair]
    grad_size: Callable[[Value], Pair]
    keep: frozenset[Value]  # live to the end, gradients given (outputs)
    held_leaves: frozenset[Value] = frozenset()  # external values whose gradients are held to the end
    backward: bool = True  # False: the forward only


def group_storages(root: Value, members: Sequence[tuple[Value, Events]], S: int, rules: Rules,
                   storages: list[Storage], transients: list[tuple[int, Pair]]) -> None:
    """The storages and transients of one storage group (``root`` and the views of it; a root
    no step makes is external): appended to ``storages`` and ``transients`` (slot, bytes)."""
    last = 2 * S - 1 if rules.backward else S - 1
    made = next((e.made for v, e in members if v is root and e.made is not None), None)
    kept = any(v in rules.keep for v, _ in members)
    if made is not None:
        free = last if kept else max([made] + [k for _, e in members for k in e.reads])
        saves = [k for _, e in members for k in e.saves] if rules.backward else []
        if saves:
            free = max(free, 2 * S - 1 - min(saves))
        storages.append(Storage(root, "", made, free, rules.size(root)))
    if not rules.backward:
        return
    grads = sorted(((k, v, aliased) for v, e in members for k, aliased in e.grads), key=lambda t: -t[0])
    held = (made is not None and not kept) or (made is None and root in rules.held_leaves)
    for n, (k, v, aliased) in enumerate(grads):
        slot = 2 * S - 1 - k
        if n == 0 and held:
            storages.append(Storage(root, "grad", slot, 2 * S - 1 - made if made is not None else last,
                                    rules.grad_size(root)))
        elif not aliased:
            transients.append((slot, rules.grad_size(v)))


def step_events(steps: Sequence[Step]) -> dict[Value, Events]:
    """Every value's events in ``steps``."""
    events: dict[Value, Events] = {}

    def of(v: Value) -> Events:
        e = events.get(v)
        if e is None:
            e = events[v] = Events()
        return e
    for k, st in enumerate(steps):
        for v in st.writes:
            of(v).made = k
        for v in st.reads:
            of(v).reads.append(k)
        for v in st.saves:
            of(v).saves.append(k)
        for v in st.grads_to:
            of(v).grads.append((k, st.alias_grads))
    return events


def groups(events: Mapping[Value, Events], root: Mapping[Value, Value]) -> dict[Value, list[tuple[Value, Events]]]:
    """Values by storage root (a value without a root is its own, external, group)."""
    out: dict[Value, list[tuple[Value, Events]]] = {}
    for v, e in events.items():
        out.setdefault(root.get(v, v), []).append((v, e))
    return out


def liveness(steps: list[Step], root: Mapping[Value, Value], size: Callable[[Value], Pair],
             grad_size: Callable[[Value], Pair], keep: set[Value], held_leaves: Iterable[Value] = (),
             backward: bool = True) -> Liveness:
    """The storages of ``steps`` (see the module docstring).

    ``root[v]``: the value whose storage ``v`` uses, for every value the steps write (a
    value no step writes, or whose root none writes, is external: it costs nothing).
    ``keep``: values live to the end (outputs).  ``held_leaves``: external values whose
    gradients are held to the end (a chunk's sliced inputs: their ``.grad`` is copied out
    after the chunk's backward) rather than added into a buffer at once.  ``backward=False``: the forward only.
    """
    S = len(steps)
    rules = Rules(size, grad_size, frozenset(keep), frozenset(held_leaves), backward)
    out = Liveness(steps, transient=[[0, 0] for _ in range(2 * S)])
    for k, st in enumerate(steps):
        out.transient[k][0] += st.fwd[0]
        out.transient[k][1] += st.fwd[1]
        if backward:
            out.transient[2 * S - 1 - k][0] += st.bwd[0]
            out.transient[2 * S - 1 - k][1] += st.bwd[1]
            if st.kept != (0, 0):
                for slot in range(k + 1, 2 * S - k):  # (during its forward: part of its workspace)
                    out.transient[slot][0] += st.kept[0]
                    out.transient[slot][1] += st.kept[1]
    extra: list[tuple[int, Pair]] = []
    for r, members in groups(step_events(steps), root).items():
        group_storages(r, members, S, rules, out.storages, extra)
    for slot, (a, b) in extra:
        out.transient[slot][0] += a
        out.transient[slot][1] += b
    return out


def peak_of(a: np.ndarray, b: np.ndarray, chunk: int, extent: int) -> int:
    """max over slots of ``a + b * chunk / extent``."""
    if not len(a):
        return 0
    return int(np.max(a + b * min(max(chunk, 1), extent) // max(extent, 1)))


class GraphFacts:
    """Per-value facts of one graph at given sizes (bytes, views, what needs gradients,
    what each node saves), read from the inference estimator's model."""

    def __init__(self, graph: Graph, sizes: Mapping[str, int] | None, backend: str = DEFAULT_BACKEND):
        self.graph = graph
        # every kernel of a training step outside a region's forward runs with autograd recording
        self.model = MemoryModel(graph, sizes, backend=backend, autograd=True)
        m = self.model
        self.position = {n: p for p, n in enumerate(m.nodes)}
        self._chunk_answers: dict[tuple, Pair] = {}
        self.sizes = m.sizes
        self.nbytes = {v: m.nbytes[i] for i, v in enumerate(m.values)}
        self.parent = {v: m.values[m.parent[i]] for i, v in enumerate(m.values) if m.parent[i] >= 0}
        self.requires = requires_grad(graph)
        self.workspace = {n: m.ws[p] for p, n in enumerate(m.nodes)}
        self.kept = {n: self._kept(p, n) for p, n in enumerate(m.nodes) if m.ws_fn[p] is not None}

    def _kept(self, p: int, node: Node) -> int:
        """What autograd keeps of the node's recorded call, at full size, beyond its saved values."""
        m = self.model
        if not is_recorded(node, self.requires):
            return 0
        types = [TensorType(m.values[u].dtype, m.shape[u]) for u in m.node_in[p] + m.node_out[p]]
        n = len(node.inputs)
        return m.kept_bytes(p, types[:n], concrete_attrs(node.attrs, self.sizes), types[n:])

    def node_step(self, node: Node) -> Step:
        grads = tuple(node.inputs[i] for i in dict.fromkeys(gradient_inputs(node, self.requires)))
        return Step(node.name, node.op.name, tuple(node.inputs), tuple(node.outputs),
                    tuple(saved_values(node, self.requires)), tuple(dict.fromkeys(grads)),
                    alias_grads=node.op.may_alias, fwd=(self.workspace.get(node, 0), 0),
                    kept=(self.kept.get(node, 0), 0))

    def chunk_workspace(self, node: Node, axes: Mapping[Value, tuple[int, int]], whole: set[Value], extent: int,
                        autograd: bool) -> Pair:
        """``node``'s workspace in one chunk of a loop over ``extent`` units, as bytes ``(a, b)``
        (``a + b * chunk / extent``), asked of its record at the chunk's shapes and attributes
        (a positional op's, such as causal attention's query rows, at every iteration the
        inference estimator asks) with autograd recording or not.  ``axes``: (axis, unit) of
        every value the loop slices; ``whole``: region inputs read whole."""
        m = self.model
        return self._chunk_pair(node, axes, whole, extent, ("workspace", autograd), self.workspace.get(node, 0),
                                lambda p, types_for, chunk, c: m.loop_workspace_bytes(p, types_for, chunk, c, extent,
                                                                                      autograd=autograd))

    def chunk_kept(self, node: Node, axes: Mapping[Value, tuple[int, int]], whole: set[Value], extent: int) -> Pair:
        """What autograd keeps of ``node``'s recorded call in one chunk beyond its saved values
        (:meth:`MemoryModel.kept_bytes`), as :meth:`chunk_workspace` gives its workspace."""
        m = self.model

        def ask(p, types_for, chunk, c):
            return max(m.kept_bytes(p, types_for(n)[0], m.loop_attrs(p, chunk, n, extent, start), types_for(n)[1])
                       for n, start in m.loop_iterations(p, chunk, c, extent))
        return self._chunk_pair(node, axes, whole, extent, ("kept",), self.kept.get(node, 0), ask)

    def _chunk_pair(self, node: Node, axes: Mapping[Value, tuple[int, int]], whole: set[Value], extent: int,
                    what: tuple, full: int, ask: Callable) -> Pair:
        """Bytes ``ask(p, types_for, chunk, units)`` gives for the node in a chunk of ``units``
        as ``(a, b)``: the line through chunks of an eighth and a half of the extent (the
        full-size answer ``full`` scaled, for a node the loop does not slice)."""
        p = self.position[node]
        m = self.model
        out = node.outputs[0] if node.outputs else None
        if m.ws_fn[p] is None or out not in axes:
            return (0, full)
        operands = list(node.inputs) + list(node.outputs)
        sliced = tuple(axes.get(v) if v not in whole else None for v in operands)
        key = (node, sliced, extent, what)
        if key in self._chunk_answers:
            return self._chunk_answers[key]
        values = [m.vid[v] for v in operands]
        n_in = len(node.inputs)

        def types_for(n: int) -> tuple[list[TensorType], list[TensorType]]:
            types = []
            for u, ax in zip(values, sliced):
                shape = list(m.shape[u])
                if ax is not None:
                    shape[ax[0]] = min(n * ax[1], shape[ax[0]])
                types.append(TensorType(m.values[u].dtype, tuple(shape)))
            return types[:n_in], types[n_in:]

        chunk = ChunkedValue(out.name, *axes[out])
        points = sorted({max(extent // 8, 1), max(extent // 2, 1)})
        got = [ask(p, types_for, chunk, c) for c in points]
        if len(points) == 1:
            pair = (0, got[0] * extent // points[0])
        else:
            (c1, c2), (w1, w2) = points, got
            b = (w2 - w1) * extent // (c2 - c1)
            a = w1 - b * c1 // extent
            pair = (max(w1, w2), 0) if b < 0 else (0, w2 * extent // c2) if a < 0 else (a, b)
        self._chunk_answers[key] = pair
        return pair

    def root(self, v: Value, stop: Callable[[Value], bool] = lambda v: False) -> Value:
        """The value whose storage ``v`` uses (following views up, stopping at ``stop``)."""
        while not stop(v) and v in self.parent:
            v = self.parent[v]
        return v


def region_gradients(facts: GraphFacts, inputs: Iterable[Value], stop: Callable[[Value], bool]) -> tuple[Value, ...]:
    """The values a region's backward returns gradients for (the training runtime's
    ``storage_bases``): inputs that are views of one value which they cover together (the
    query, key and value heads of one projection) send one gradient to that value, written
    in place; every other input that needs a gradient gets its own.  ``stop``: values whose
    storage is their own (earlier regions' outputs)."""
    needing = [v for v in dict.fromkeys(inputs) if not v.is_constant and v in facts.requires]
    by_root: dict[Value, list[Value]] = {}
    for v in needing:
        r = facts.root(v, stop)
        if r is not v and r in facts.requires:
            by_root.setdefault(r, []).append(v)
    covered = {r for r, views in by_root.items() if sum(facts.nbytes[v] for v in views) >= facts.nbytes[r]}
    out = [facts.root(v, stop) if facts.root(v, stop) in covered else v for v in needing]
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class RegionLocal:
    """A region's bytes per slot of one chunk, as ``(a, b)`` arrays (``a + b * chunk / extent``):
    its forward (no autograd) and its backward (the chunk recomputed with autograd, then
    back-propagated, plus the gradient buffers of its inputs)."""

    extent: int
    fwd_a: np.ndarray
    fwd_b: np.ndarray
    bwd_a: np.ndarray
    bwd_b: np.ndarray

    def forward(self, chunk: int) -> int:
        return peak_of(self.fwd_a, self.fwd_b, chunk, self.extent)

    def backward(self, chunk: int) -> int:
        return peak_of(self.bwd_a, self.bwd_b, chunk, self.extent)

    def largest_chunk(self, room_fwd: int, room_bwd: int) -> int | None:
        """The largest chunk whose forward and backward bytes fit ``room_fwd`` and ``room_bwd``."""
        best = self.extent
        for a, b, room in ((self.fwd_a, self.fwd_b, room_fwd), (self.bwd_a, self.bwd_b, room_bwd)):
            for ai, bi in zip(a.tolist(), b.tolist()):
                if ai > room:
                    return None
                if bi > 0:
                    best = min(best, (room - ai) * self.extent // bi)
        return best if best >= 1 else None


def region_local(facts: GraphFacts, nodes: Sequence[Node], whole: set[Value], extent: int,
                 axes: Mapping[Value, tuple[int, int]]) -> RegionLocal:
    """The chunk model of a region running ``nodes``: every value they make is chunked;
    region inputs in ``whole`` are read whole (their gradients are full size), the others
    are sliced; ``axes``: (axis, unit) of each sliced value.  The forward's kernels run
    without autograd, the backward's recomputation with it: each node's workspace is asked
    for both (:meth:`GraphFacts.chunk_workspace`)."""
    inside = set(nodes)
    made = {o for n in nodes for o in n.outputs}
    steps = [facts.node_step(n) for n in nodes]
    recorded = [dataclasses.replace(st) for st in steps]
    for n, st, again in zip(nodes, steps, recorded):
        st.fwd = facts.chunk_workspace(n, axes, whole, extent, autograd=False)
        again.fwd = facts.chunk_workspace(n, axes, whole, extent, autograd=True)
        again.kept = facts.chunk_kept(n, axes, whole, extent) if is_recorded(n, facts.requires) else (0, 0)
    root = {o: facts.root(o, stop=lambda v: v not in made or v.producer not in inside) for o in made}
    outputs = {o for o in made if any(u not in inside for u in o.users) or o in set(facts.graph.outputs)}

    def size(v: Value) -> Pair:
        return (0, facts.nbytes[v]) if v in made else (0, 0)

    def grad_size(v: Value) -> Pair:
        if v in made:
            return (0, facts.nbytes[v])
        # a sliced input's chunk of gradient: autograd may copy it once more into the leaf's
        # layout (the leaf is a strided slice), both live while it is stored
        return (facts.nbytes[v], 0) if v in whole else (0, 2 * facts.nbytes[v])

    # views of region inputs are external too: their storage is the (saved) input's
    ext_views = {o for o, r in root.items() if r not in made or r.producer not in inside}
    for o in ext_views:
        root.pop(o)
    fwd = liveness(steps, root, size, grad_size, outputs, backward=False)
    fa, fb = fwd.curves()
    # a whole input's gradient is added into its buffer as each contribution is made; a sliced
    # input's (one chunk of it) is held until the chunk's backward ends.  The buffers themselves
    # are the region step's gradients (train_region_gradients), counted on the step's timeline.
    inputs = {v for n in nodes for v in n.inputs if v.producer not in inside}
    bwd = liveness(recorded, root, size, grad_size, outputs, held_leaves=inputs - whole)
    ba, bb = bwd.curves()
    return RegionLocal(max(extent, 1), fa[:len(nodes)], fb[:len(nodes)], ba, bb)


def view_local(facts: GraphFacts, view: RegionView) -> RegionLocal:
    whole = {v for v in view.inputs if v not in view.chunk or
             any(u is v and not view.reads_slice(n, i) for n in view.nodes for i, u in enumerate(n.inputs))}
    return region_local(facts, view.nodes, whole, evaluate(view.region.extent, facts.sizes),
                        {v: (c.axis, c.unit) for v, c in view.chunk.items()})


class TrainMemoryModel:
    """The training-step estimator for one graph at given sizes; ``report(plan)``."""

    def __init__(self, graph: Graph, sizes: Mapping[str, int] | None = None, backend: str = DEFAULT_BACKEND):
        self.graph = graph
        self.backend = backend or DEFAULT_BACKEND
        self.facts = GraphFacts(graph, sizes, self.backend)
        self.sizes = self.facts.sizes
        self._others: dict[tuple[str, ...], TrainMemoryModel] = {}

    def _model_for(self, plan: Plan | None) -> "TrainMemoryModel":
        if plan is None or plan.graph is self.graph:
            return self
        order = tuple(n.name for n in plan.graph.nodes)
        if order == tuple(n.name for n in self.graph.nodes):
            return self
        if order not in self._others:
            self._others[order] = TrainMemoryModel(plan.graph, self.sizes, self.backend)
        return self._others[order]

    def liveness(self, plan: Plan | None = None) -> Liveness:
        """The step's storages under ``plan`` (over this model's graph)."""
        facts = self.facts
        index = PlanIndex.build(self.graph, plan)
        outputs = {o for view in index.regions for o in view.outputs}
        steps: list[Step] = []
        root: dict[Value, Value] = {}
        for step in index.steps:
            if isinstance(step, RegionView):
                steps.append(self._region_step(step, outputs))
                for o in step.outputs:
                    root[o] = o  # a fresh buffer
            else:
                steps.append(facts.node_step(step))
                for o in step.outputs:
                    root[o] = facts.root(o, stop=lambda v: v in outputs)
        root = {v: r for v, r in root.items() if r.producer is not None}
        return liveness(steps, root, lambda v: (facts.nbytes[v], 0), lambda v: (facts.nbytes[v], 0),
                        set(self.graph.outputs))

    def _region_step(self, view: RegionView, outputs: set[Value]) -> Step:
        facts = self.facts
        local = view_local(facts, view)
        try:
            chunk = evaluate(view.region.chunk_size, self.sizes)
        except (KeyError, ValueError) as exc:
            raise ChunkcError(f"plan region {view.index} ({view.region.describe()}): chunk size: {exc}") from None
        recorded = any(o in facts.requires for o in view.outputs)
        tensors = tuple(v for v in view.inputs if not v.is_constant)
        return Step(f"region {view.index}", "chunk region", tuple(view.inputs), tuple(view.outputs),
                    saves=tensors if recorded else (),
                    grads_to=region_gradients(facts, view.inputs, lambda v: v in outputs) if recorded else (),
                    fwd=(local.forward(chunk), 0), bwd=(local.backward(chunk), 0), region=view.index)

    def peak(self, plan: Plan | None = None) -> int:
        return self.report(plan).peak_bytes

    def report(self, plan: Plan | None = None) -> MemoryReport:
        model = self._model_for(plan)
        if model is not self:
            return model.report(plan)
        live = self.liveness(plan)
        a, _ = live.curves()
        steps = live.steps
        S = len(steps)
        if not S:
            return MemoryReport(0, "", -1, [], {}, dict(self.sizes))
        timeline = []
        after = _live_after(live)
        for slot in range(2 * S):
            k = slot if slot < S else 2 * S - 1 - slot
            st = steps[k]
            name = st.name if slot < S else f"{st.name} (backward)"
            timeline.append(TimelineEntry(name, st.op, int(after[slot]), int(a[slot]), st.region))
        i = int(np.argmax(a))
        held: dict[str, int] = {}
        for s in live.storages:
            if s.alloc <= i <= s.free and s.size[0]:
                label = f"gradient of {s.owner.name}" if s.kind == "grad" else s.owner.name
                held[label] = held.get(label, 0) + s.size[0]
        if live.transient[i][0]:
            held[f"temporaries of {timeline[i].node}"] = live.transient[i][0]
        held = dict(sorted(held.items(), key=lambda kv: -kv[1]))
        regions = tuple((k, k) for k, st in enumerate(steps) if st.region is not None)
        return MemoryReport(int(a[i]), timeline[i].node, i, timeline, held, dict(self.sizes), regions)


def _live_after(live: Liveness) -> np.ndarray:
    n = live.slots
    d = np.zeros(n + 1, dtype=np.int64)
    for s in live.storages:
        if s.free + 1 <= n:
            d[s.alloc] += s.size[0]
            d[s.free + 1] -= s.size[0]
    during = np.cumsum(d)[:n]
    ends = np.zeros(n, dtype=np.int64)
    for s in live.storages:
        if s.free < n:
            ends[s.free] += s.size[0]
    return during - ends


def estimate_step_memory(graph: Graph, plan: Plan | None = None, sizes: Mapping[str, int] | None = None,
                         backend: str | None = None) -> MemoryReport:
    """The estimated peak of one training step of ``graph`` (forward and backward) under
    ``plan``: ``.peak_bytes``, ``.peak_node`` (``"name (backward)"`` for a backward slot),
    ``.timeline`` (forward slots, then backward slots)."""
    graph, sizes, backend = plan_defaults(graph, plan, sizes, backend)
    return TrainMemoryModel(graph, sizes, backend).report(plan)


__all__ = ["TrainMemoryModel", "estimate_step_memory", "GraphFacts", "RegionLocal", "region_local", "Step",
           "Storage", "Liveness", "liveness", "peak_of", "region_gradients"]
