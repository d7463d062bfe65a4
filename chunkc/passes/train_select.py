"""``autochunk(..., mode="train")``: chunk regions chosen for the memory of a whole training step.

In a training step the peak is not where the forward holds the most: autograd keeps
what every step's backward needs until that backward runs, so the memory that matters
is held from a step's forward across the rest of the forward and back — at the turn
from forward to backward, every layer's saved activations are live at once.  A chunk
region changes that far beyond its own span (its intermediates are no longer kept, its
inputs are kept until its backward), so the inference selection, which looks at the
regions over the peak step, does not fit.

The training selection works on the step's timeline (:mod:`chunkc.passes.train_memory`):

* every legal region the chunk-flow search finds (:func:`chunkc.passes.search.walk_regions`,
  any end, any axis) is a candidate; :class:`TrainSearchModel` gives its effect as a
  change of the base timeline (the storage groups it touches, recomputed with the region
  as one step) and its local bytes per chunk (:func:`~chunkc.passes.train_memory.region_local`);
* greedily, the region that removes the most memory above the target (summed over the
  timeline's slots) per second of recomputation is added, with the largest chunk that
  keeps its own forward and backward within the target; a region whose own chunk holds
  the peak gets a smaller chunk; a candidate containing regions chosen before replaces
  them (regions grow into their neighbours);
* the plan is checked with the full estimator and planned again lower when the fast
  model was optimistic.  No plan within the budget raises
  :class:`~chunkc.errors.InfeasibleBudgetError` with the lowest peak found (every useful
  region at chunk 1).

Plans have integer chunk sizes (those chosen at the planning sizes) and reuse no storage
in place (autograd may hold any region input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from ..errors import InfeasibleBudgetError
from ..ir.graph import Graph, Value
from ..ir.sizes import evaluate
from .cost import Kernels, TimeModel
from .fold_split import fold_splits
from .remat import rematerialize
from .schedule import whole_inputs_first
from .memory import MemoryReport, estimate_memory
from .plan import Plan
from .reorder import apply_regions
from .search import Candidate, GraphIndex, candidate_axes, walk_regions
from .train_memory import (Events, GraphFacts, RegionLocal, Rules, TrainMemoryModel, group_storages, groups,
                           region_gradients, region_local, step_events)

if TYPE_CHECKING:  # the options class lives with autochunk, which calls this module
    from .autochunk import AutochunkOptions

# The percentage of a budget plans aim at: the rest is left for what autograd keeps that the
# step model does not count (a norm's per-row statistics, index tensors).
AIM_PERCENT = 99
AUTOGRAD_OVERHEAD_S = 40e-6  # per chunk of a region's backward: leaves, autograd.grad, accumulation


@dataclass
class Applied:
    """A region made part of the step: where its backward sends gradients."""

    first: int  # its first node's index (its step on the timeline)
    outputs: tuple[Value, ...]
    inputs: tuple[Value, ...]
    targets: tuple[Value, ...]  # the values its backward returns gradients for (region_gradients)


@dataclass
class Effect:
    """What choosing one candidate region changes (at the planning sizes)."""

    cand: Candidate
    delta: np.ndarray  # change of the live bytes per slot (the groups it touches, its nodes' workspace)
    fwd_slots: np.ndarray
    bwd_slots: np.ndarray
    local: RegionLocal  # its own bytes per chunk (forward, and backward recomputation)
    saved_removed: int  # bytes no longer kept for the backward
    touched: set  # storage groups it recomputes
    new_groups: dict  # those groups (and the region's output buffers) with the region
    applied: Applied  # the region, as the step will know it
    retargeted: dict[int, tuple[Value, ...]]  # regions applied before whose gradients now go elsewhere
    absorbed: tuple[int, ...]  # regions applied before that this one contains (it replaces them)


class TrainSearchModel:
    """The training step of ``graph`` with the regions chosen so far, and the effect of one more.

    The step is kept as every value's events (chunkc.passes.train_memory.Events) grouped by
    storage, with its live bytes per slot; a candidate's effect recomputes only the groups
    it touches (its values, its inputs' groups), and :meth:`apply` makes it part of the step.
    """

    def __init__(self, graph: Graph, sizes: Mapping[str, int], backend: str):
        self.graph = graph
        self.facts = facts = GraphFacts(graph, sizes, backend)
        self.index = GraphIndex(graph)
        self.N = N = len(graph.nodes)
        self.steps = [facts.node_step(n) for n in graph.nodes]
        self.rules = Rules(lambda v: (facts.nbytes[v], 0), lambda v: (facts.nbytes[v], 0),
                           frozenset(graph.outputs))
        self.ws = np.array([facts.workspace.get(n, 0) for n in graph.nodes] + [0] * N, dtype=np.int64)
        # what autograd keeps of a node's workspace beyond its saved values: after its forward, to its backward
        self.kept = {k: st.kept[0] for k, st in enumerate(self.steps) if st.kept[0]}
        self._locals: dict[int, RegionLocal] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the step without regions."""
        facts = self.facts
        root = {o: facts.root(o) for n in self.graph.nodes for o in n.outputs}
        root = {v: r for v, r in root.items() if r.producer is not None}
        self.events = step_events(self.steps)
        self.fresh: set[Value] = set()  # outputs of the regions applied: buffers of their own
        self.applied: list[Applied] = []  # the regions applied, in order
        self.groups = groups(self.events, root)
        self.group_of = {v: g for g, members in self.groups.items() for v, _ in members}
        self.live = self.ws.copy()
        for k, kept in self.kept.items():
            self.live[k + 1:2 * self.N - k] += kept
        for r, members in self.groups.items():
            self.live += self._curve(r, members)

    def _curve(self, root: Value, members) -> np.ndarray:
        storages, transients = [], []
        group_storages(root, members, self.N, self.rules, storages, transients)
        d = np.zeros(2 * self.N + 1, dtype=np.int64)
        for st in storages:
            d[st.alloc] += st.size[0]
            d[st.free + 1] -= st.size[0]
        out = np.cumsum(d)[:2 * self.N]
        for slot, (a, _) in transients:
            out[slot] += a
        return out

    def local(self, cand: Candidate) -> RegionLocal:
        """The candidate's own bytes per chunk (forward, backward recomputation)."""
        key = id(cand)
        if key not in self._locals:
            facts = self.facts
            nodes = [self.graph.nodes[i] for i in cand.loop]
            made = {o for n in nodes for o in n.outputs}
            sliced = {v for v, _, _ in cand.chunked}
            inputs = {v for n in nodes for v in n.inputs if v not in made}
            whole = {v for v in inputs if v not in sliced} | {v for _, _, v in cand._whole if v in sliced}
            self._locals[key] = region_local(facts, nodes, whole, evaluate(cand.extent, facts.sizes),
                                             {v: (axis, unit) for v, axis, unit in cand.chunked})
        return self._locals[key]

    def effect(self, cand: Candidate) -> Effect:
        """What adding ``cand`` to the current step changes."""
        facts, N = self.facts, self.N
        loop = list(cand.loop)
        loop_set = set(loop)
        nodes = [self.graph.nodes[i] for i in loop]
        first, last = loop[0], loop[-1]
        made = {o for n in nodes for o in n.outputs}
        outputs = set(cand.outputs)
        inputs = list(dict.fromkeys(v for n in nodes for v in n.inputs if v not in made))
        touched = {self.group_of[v] for v in made | set(inputs) if v in self.group_of}
        delta = np.zeros(2 * N, dtype=np.int64)
        kept = []
        saved_removed = 0
        for g in touched:
            members = self.groups.get(g, [])
            delta -= self._curve(g, members)
            for v, e in members:
                if v in made and v not in outputs:
                    if v is g and any(k in loop_set for k in e.saves):
                        saved_removed += facts.nbytes[v]
                    continue  # an intermediate: one chunk at a time, inside the region
                kept.append((v, e))
        recorded = any(o in facts.requires for o in outputs)
        targets = region_gradients(facts, inputs, lambda w: w in self.fresh) if recorded else ()
        # A region applied before sends its gradients to the storage its inputs view; when that
        # storage is made here, the region's outputs become buffers of their own and take them
        fresh = self.fresh | outputs
        values = {v for g in touched for v, _ in self.groups.get(g, [])}
        absorbed = tuple(k for k, r in enumerate(self.applied) if r.first in loop_set)
        retargeted = {}
        for k, r in enumerate(self.applied):
            if k not in absorbed and r.targets and values.intersection(r.inputs):
                now = region_gradients(facts, r.inputs, lambda w: w in fresh)
                if now != r.targets:
                    retargeted[k] = now
        moved = {self.applied[k].first for k in retargeted}
        sends = {}  # value -> the steps sending it a gradient anew
        for v in targets:
            sends.setdefault(v, []).append(first)
        for k, now in retargeted.items():
            for v in now:
                sends.setdefault(v, []).append(self.applied[k].first)
        new_events = {}
        for v, e in kept:
            reads = [k for k in e.reads if k not in loop_set]
            saves = [k for k in e.saves if k not in loop_set]
            grads = [(k, a) for k, a in e.grads if k not in loop_set and k not in moved]
            if v in inputs:
                reads.append(last)
                if recorded and not v.is_constant:
                    saves.append(first)
            grads += [(k, False) for k in sends.get(v, ())]
            new_events[v] = Events(first if v in outputs else e.made, reads, saves, grads)
        new_root = {}
        for v in new_events:
            r = facts.root(v, stop=lambda w: w in outputs or w in self.fresh) if v.producer is not None else v
            if r.producer is not None:
                new_root[v] = r
        new_groups = groups(new_events, new_root)
        for r, members in new_groups.items():
            delta += self._curve(r, members)
        delta[loop] -= self.ws[loop]
        for k in loop:
            if k in self.kept:
                delta[k + 1:2 * N - k] -= self.kept[k]
        applied = Applied(first, tuple(cand.outputs), tuple(inputs), targets)
        return Effect(cand, delta, np.array(loop), 2 * N - 1 - np.array(loop), self.local(cand), saved_removed,
                      touched, new_groups, applied, retargeted, absorbed)

    def apply(self, eff: Effect) -> None:
        """Make ``eff``'s region part of the step."""
        for g in eff.touched:
            for v, _ in self.groups.pop(g, []):
                self.group_of.pop(v, None)
        for r, members in eff.new_groups.items():
            self.groups[r] = members
            for v, e in members:
                self.group_of[v] = r
                self.events[v] = e
        for k, now in eff.retargeted.items():
            self.applied[k].targets = now
        for k in sorted(eff.absorbed, reverse=True):
            self.fresh.difference_update(self.applied.pop(k).outputs)
        self.fresh.update(eff.cand.outputs)
        a = eff.applied
        self.applied.append(Applied(a.first, a.outputs, a.inputs, a.targets))
        self.live = self.live + eff.delta


@dataclass
class _State:
    live: np.ndarray
    extra: np.ndarray  # regions' own bytes on their slots
    chosen: list[tuple[Effect, int]] = field(default_factory=list)
    cost: float = 0.0

    @property
    def during(self) -> np.ndarray:
        return self.live + self.extra

    @property
    def peak(self) -> int:
        return int(self.during.max()) if len(self.live) else 0


class TrainSelector:
    """Greedy selection over every legal region (see the module docstring)."""

    def __init__(self, graph: Graph, sizes: Mapping[str, int], backend: str, machine: Kernels | None = None,
                 max_region_nodes: int = 320, shortlist: int = 24):
        self.graph = graph
        self.model = TrainSearchModel(graph, sizes, backend)
        self.times = TimeModel(graph, sizes, machine, backend)
        self.sizes = sizes
        self.shortlist = shortlist
        self.candidates = self._candidates(max_region_nodes)

    def _candidates(self, max_nodes: int) -> list[Candidate]:
        """Every legal region with a loop that makes values the backward keeps, ranked by those
        values' bytes per second of work."""
        index, facts, nodes = self.model.index, self.model.facts, self.graph.nodes
        saved = {facts.root(v) for st in self.model.steps for v in st.saves}
        ranked = []
        for end, node in enumerate(nodes):
            for axis in candidate_axes(node):
                for cand in walk_regions(index, end, axis, max_nodes=max_nodes):
                    if not cand.loop or cand.accumulators or cand.halos:  # (no backward for these loops yet)
                        continue
                    outs = set(cand.outputs)
                    made = {o for i in cand.loop for o in nodes[i].outputs}
                    gain = sum(facts.nbytes[o] for o in made if o in saved and o not in outs)
                    # inputs the region keeps for its backward that nothing kept before
                    kept = {facts.root(v) for i in cand.loop for v in nodes[i].inputs if v not in made}
                    gain -= sum(facts.nbytes[r] for r in kept if r.producer is not None and r not in saved)
                    if gain > 0:
                        ranked.append((gain / max(self._work(cand), 1e-9), cand))
        ranked.sort(key=lambda t: -t[0])
        return [c for _, c in ranked]

    def _work(self, cand: Candidate) -> float:
        return sum(self.times.times[i] for i in cand.loop)

    def cost(self, cand: Candidate, chunk: int) -> float:
        """Extra seconds of a training step: the loop recomputed in the backward, both loops' overheads."""
        extent = evaluate(cand.extent, self.sizes)
        iterations = -(-extent // max(chunk, 1))
        return self._work(cand) + 2 * self.times.region_overhead(cand, chunk) + iterations * AUTOGRAD_OVERHEAD_S

    def select(self, target: int, max_stages: int = 256, max_bans: int = 8) -> _State:
        """Regions added greedily until the peak is within ``target`` or nothing lowers it: the
        lowest state found, whatever its peak.

        A region whose own chunk of one unit still holds the peak (attention chunked over its
        few heads rather than its queries) cannot shrink further; the selection starts again
        without it, up to ``max_bans`` times."""
        banned: set[int] = set()
        best: _State | None = None
        for _ in range(max_bans + 1):
            state, blocker = self._select(target, max_stages, banned)
            if best is None or state.peak < best.peak:
                best = state
            if state.peak <= target or blocker is None:
                break
            banned |= self._as_heavy(blocker)
        return best

    def _as_heavy(self, blocker: Effect) -> set[int]:
        """``blocker`` and every candidate over some of its nodes whose chunk of one unit holds as
        many bytes (the same region ending elsewhere, chunked along the same few units)."""
        nodes = set(blocker.cand.loop)
        fwd, bwd = blocker.local.forward(1), blocker.local.backward(1)
        out = {id(blocker.cand)}
        for cand in self.candidates:
            if nodes.intersection(cand.loop):
                local = self.model.local(cand)
                if local.forward(1) >= fwd and local.backward(1) >= bwd:
                    out.add(id(cand))
        return out

    def _select(self, target: int, max_stages: int, banned: set[int]) -> tuple[_State, Effect | None]:
        """One greedy run; with the region that blocked it, if one did."""
        self.model.reset()
        state = _State(self.model.live.copy(), np.zeros_like(self.model.live))
        for _ in range(max_stages):
            if state.peak <= target:
                return self.relax(state, target), None
            moved = self._shrink(state, target) or self._grow(state, target, banned)
            if moved is None:
                return state, self._holder(state)
            state = moved
        return state, None

    def relax(self, state: _State, target: int) -> _State:
        """Each region's chunk as large as the final step allows: a chunk chosen while other
        regions were still to come was sized for a fuller timeline (fewer iterations, less
        loop overhead, the same peak bound)."""
        for k, (eff, chunk) in enumerate(state.chosen):
            larger = self._chunk(eff, state.live, target)
            if larger is not None and larger > chunk:
                state = self._with(state, k, eff, larger)
        return state

    @staticmethod
    def _holder(state: _State) -> Effect | None:
        """The chosen region whose own bytes are on the peak slot, if any."""
        slot = int(np.argmax(state.during))
        for eff, _ in state.chosen:
            if slot in eff.fwd_slots or slot in eff.bwd_slots:
                return eff
        return None

    @staticmethod
    def _excess(during: np.ndarray, target: int) -> int:
        return int(np.maximum(during - target, 0).sum())

    def _shrink(self, state: _State, target: int) -> _State | None:
        """A smaller chunk for the region whose own bytes hold the peak."""
        slot = int(np.argmax(state.during))
        for k, (eff, chunk) in enumerate(state.chosen):
            if slot in eff.fwd_slots or slot in eff.bwd_slots:
                smaller = self._chunk(eff, state.live, target)
                if smaller is None or smaller >= chunk:
                    smaller = chunk // 2
                if smaller < 1:
                    return None
                return self._with(state, k, eff, smaller)
        return None

    def _grow(self, state: _State, target: int, banned: set[int] = frozenset()) -> _State | None:
        """One more region: a new one, or one containing regions chosen before (it replaces them,
        so that a region chosen early can still grow into its neighbours)."""
        excess = self._excess(state.during, target)
        best = None
        looked = 0
        for cand in self.candidates:
            inside = None if id(cand) in banned else _contained(cand, state.chosen)
            if inside is None:
                continue
            eff = self.model.effect(cand)
            live = state.live + eff.delta
            fits = self._chunk(eff, live, target)
            chunk = fits or 1
            extra = state.extra.copy()
            extra[eff.fwd_slots] = eff.local.forward(chunk)
            extra[eff.bwd_slots] = eff.local.backward(chunk)
            gain = excess - self._excess(live + extra, target)
            looked += 1
            if gain > 0:
                cost = self.cost(cand, chunk) - sum(self.cost(state.chosen[k][0].cand, state.chosen[k][1])
                                                    for k in inside)
                # a region whose own chunk fits the target first; among them, the most excess per
                # second (the floor, target 0: the most excess, whatever it costs)
                key = (fits is not None, gain if target <= 0 else gain / max(cost, 1e-7))
                if best is None or key > best[0]:
                    best = (key, eff, chunk, live, extra, cost, inside)
            # enough looked at: a region that fits among the best ranked, or none after four times as many
            if looked >= self.shortlist and best is not None and (best[0][0] or looked >= 4 * self.shortlist):
                break
        if best is None:
            return None
        _, eff, chunk, live, extra, cost, inside = best
        self.model.apply(eff)
        kept = [c for k, c in enumerate(state.chosen) if k not in inside]
        return _State(live, extra, kept + [(eff, chunk)], state.cost + cost)

    def _chunk(self, eff: Effect, live: np.ndarray, target: int) -> int | None:
        room_fwd = target - int(live[eff.fwd_slots].max())
        room_bwd = target - int(live[eff.bwd_slots].max())
        return eff.local.largest_chunk(room_fwd, room_bwd)

    def _with(self, state: _State, k: int, eff: Effect, chunk: int) -> _State:
        extra = state.extra.copy()
        extra[eff.fwd_slots] = eff.local.forward(chunk)
        extra[eff.bwd_slots] = eff.local.backward(chunk)
        chosen = list(state.chosen)
        old = chosen[k][1]
        chosen[k] = (eff, chunk)
        cost = state.cost - self.cost(eff.cand, old) + self.cost(eff.cand, chunk)
        return _State(state.live, extra, chosen, cost)


def _contained(cand: Candidate, chosen: list[tuple[Effect, int]]) -> list[int] | None:
    """The positions in ``chosen`` of the regions ``cand`` contains (their loops inside its loop),
    or None when it overlaps one without containing it."""
    loop = None
    inside = []
    for k, (eff, _) in enumerate(chosen):
        other = eff.cand
        if other.end < cand.start or other.start > cand.end:
            continue
        loop = set(cand.loop) if loop is None else loop
        if not (cand.start <= other.start and other.end <= cand.end and loop.issuperset(other.loop)) or \
                len(loop) == len(other.loop):
            return None
        inside.append(k)
    return inside


class _TrainPlanner:
    def __init__(self, graph: Graph, sizes: dict[str, int], budget_bytes: int, unchunked: MemoryReport, opts):
        self.graph, self.sizes, self.budget_bytes, self.unchunked, self.opts = graph, sizes, budget_bytes, unchunked, opts
        self.selector = TrainSelector(graph, sizes, opts.backend, opts.machine, opts.max_region_nodes)
        self.limit = budget_bytes * AIM_PERCENT // 100  # what the estimate may reach
        self.floor: tuple[int, str] | None = None  # the lowest budget met (the floor's estimate, with the margin)

    def plan(self, started: float) -> Plan | None:
        target = self.limit
        for _ in range(4):
            state = self.selector.select(target)
            plan, report = self._build(state)
            if report.peak_bytes <= self.limit:
                return self._finish(plan, state, started)
            if state.peak > target:
                break  # the fast model cannot reach it either
            target = int(target * self.limit / report.peak_bytes * 0.98)
        floor_state = self.selector.select(0)
        floor_plan, floor_report = self._build(floor_state)
        self.floor = (-(-floor_report.peak_bytes * 100 // AIM_PERCENT), floor_report.peak_node)
        if floor_report.peak_bytes > self.limit:
            return None
        # the floor's smallest chunks, grown as far as the budget allows
        relaxed = self.selector.relax(floor_state, self.limit)
        plan, report = self._build(relaxed)
        if report.peak_bytes <= self.limit:
            return self._finish(plan, relaxed, started)
        return self._finish(floor_plan, floor_state, started)

    def _build(self, state: _State) -> tuple[Plan, MemoryReport]:
        chosen = sorted(((eff.cand, chunk) for eff, chunk in state.chosen), key=lambda c: c[0].start)
        graph, regions = apply_regions(self.graph, chosen)
        plan = Plan(graph=graph, regions=regions, sizes=self.sizes, budget_bytes=self.budget_bytes,
                    unchunked_peak_bytes=self.unchunked.peak_bytes, backend=self.opts.backend)
        report = TrainMemoryModel(graph, self.sizes, self.opts.backend).report(plan)
        plan.estimated_peak_bytes = report.peak_bytes
        return plan, report

    def _finish(self, plan: Plan, state: _State, started: float) -> Plan:
        forward = self.selector.times.total
        plan.estimated_slowdown = 1.0 + state.cost / (3 * forward)  # a step is about three forwards
        plan.notes.append(f"training step: {len(plan.regions)} region(s); estimated peak {plan.estimated_peak_bytes} B "
                          f"<= budget {self.budget_bytes} B (forward and backward); estimated time "
                          f"x{plan.estimated_slowdown:.3f}; search {time.perf_counter() - started:.2f} s")
        return plan


def _keeping_parameters(new: Graph, old: Graph) -> Graph:
    """``new`` (a rewrite of ``old`` with the same inputs in order) with ``old``'s parameters."""
    if new is not old and old.parameters and not new.parameters:
        new.parameters = {n: old.parameters[o] for n, o in zip(new.inputs, old.inputs) if o in old.parameters}
    return new


def prepare_train_graph(graph: Graph, sizes: Mapping[str, int], opts: "AutochunkOptions") -> Graph:
    """``graph`` as the training planner searches it first: masks and other cheap large values
    recomputed at each reader (``opts.remat``), fused projections split and values read whole
    computed first (``opts.rewrite``); parameters kept."""
    first = graph
    if opts.remat:  # masks recomputed at each reader, so that a region makes its own slice
        # "large" against the forward's peak: the step's own is many times larger (every layer's
        # saved values), which would leave a mask of a few percent of it held by every layer
        forward = estimate_memory(graph, sizes=sizes, backend=opts.backend).peak_bytes
        first = _keeping_parameters(rematerialize(graph, sizes, forward, opts.remat_options).graph, graph)
    if opts.rewrite:
        first = whole_inputs_first(fold_splits(first))
    return first


def autochunk_train(graph: Graph, budget_of: Callable[[int], int], sizes: dict[str, int], opts: "AutochunkOptions") -> Plan:
    """A plan whose estimated training-step peak (forward and backward) is at most the budget:
    ``budget_of(unchunked step peak)`` in bytes (``chunkc.autochunk(..., mode="train")`` reads
    the user's budget, bytes or a fraction, into it).  ``sizes``: every symbol's value.
    ``opts``: the autochunk options (rewrite, remat, backend, machine, max_region_nodes)."""
    started = time.perf_counter()
    unchunked = TrainMemoryModel(graph, sizes, opts.backend).report(None)
    budget_bytes = budget_of(unchunked.peak_bytes)
    if unchunked.peak_bytes <= budget_bytes:
        plan = Plan(graph=graph, sizes=sizes, budget_bytes=budget_bytes, backend=opts.backend,
                    estimated_peak_bytes=unchunked.peak_bytes, unchunked_peak_bytes=unchunked.peak_bytes)
        plan.notes.append("the unchunked training step already meets the budget")
        return plan
    first = prepare_train_graph(graph, sizes, opts)
    variants = [first] if first is not graph else []
    variants.append(graph)
    floors = []
    for variant in variants:
        planner = _TrainPlanner(variant, sizes, budget_bytes, unchunked, opts)
        plan = planner.plan(started)
        if plan is not None:
            return plan
        floors.append(planner.floor)
    low, node = min(f for f in floors if f is not None)
    if low > unchunked.peak_bytes:  # the margin above the floor: the unchunked step meets its own peak
        low, node = unchunked.peak_bytes, unchunked.peak_node
    raise InfeasibleBudgetError(
        f"graph {graph.name}: no chunk plan brings a training step within the budget of {budget_bytes} bytes "
        f"({budget_bytes / max(unchunked.peak_bytes, 1):.1%} of the unchunked step's peak {unchunked.peak_bytes} B); "
        f"the lowest peak the search reaches is {low} B ({low / max(unchunked.peak_bytes, 1):.1%}), during {node}. "
        "Raise the budget, or make the values held there chunkable.", lowest_peak_bytes=low, peak_node=node)


__all__ = ["TrainSearchModel", "TrainSelector", "Effect", "Applied", "autochunk_train", "prepare_train_graph"]
