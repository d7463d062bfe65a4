"""The AutoChunk driver: rematerialize -> search -> select -> reorder -> check, with a budget it keeps.

The graph's cheap large values (masks, position biases) are first recomputed
at their readers (:mod:`chunkc.passes.remat`).  A selection strategy
(:mod:`chunkc.passes.selection`; by default the paper's dynamic programming with
beam search) then picks legal regions (:mod:`chunkc.passes.search`) and chunk
sizes until the fast memory model says the peak is within the budget; the
plan is reordered so that each loop's nodes stand together
(:mod:`chunkc.passes.reorder`) and re-checked with the full estimator
(:mod:`chunkc.passes.memory`), aiming lower when the fast model was optimistic.
The returned plan's estimated peak is never above the budget.

When the beam finds nothing, a wider beam tries, then the floor search
(:class:`~chunkc.passes.selection.FloorSelector`): if the lowest peak the regions
can reach is within the budget, that plan is used with its chunks relaxed to the
budget — so a budget above the floor always gets a plan — and otherwise the
:class:`~chunkc.errors.InfeasibleBudgetError` reports exactly that floor, where
it is held, and how wide the search looked.  Without rematerialization the graph
is searched again before giving up.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Mapping

from ..collector import collector_paused
from ..errors import ChunkcError, InfeasibleBudgetError
from ..ir.graph import Graph
from ..ir.source import describe
from .budget_text import parse_budget
from .cost import Kernels, TimeModel, check_compiler, plan_seconds
from .memory import MemoryReport, estimate_memory, format_bytes
from .options import SearchKnobs
from .nest import nested_plan, row_reading
from .written_attention import rewrite_written_attention
from .plan import Plan
from .remat import RematOptions, recompute_chain, rematerialize
from .reorder import apply_regions
from .cse import eliminate_common_subexpressions
from .fold_split import fold_splits
from .split_statistics import StatisticsSplit, fuse_unused_splits, split_statistics
from .schedule import whole_inputs_first
from .selection import BeamSelector, FloorSelector, Selector, SpaceOptions, State, search_space


@dataclass(frozen=True)
class AutochunkOptions(SearchKnobs):
    """Every option of ``autochunk``: the knobs, and the objects a program can pass."""

    machine: Kernels | None = None  # the cost model's kernels; None: the measured table, else constants
    remat_options: RematOptions = RematOptions()
    selector: Selector | None = None  # the selection strategy; None: BeamSelector(beam, per_state, max_stages)


def _as_compiled(graph: Graph, opts: AutochunkOptions) -> tuple[Graph, list[str]]:
    """The graph to plan for the compiler in ``opts.compiled``, and notes saying what changed:
    under Inductor, written-out attention as ``scaled_dot_product_attention``
    (chunkc.passes.written_attention), the fused kernel Inductor's attention fusion calls where
    its patterns match, which holds no score matrix.  The generated program then calls SDPA
    itself, so the compiled program runs it wherever Inductor's patterns would not have matched."""
    if opts.compiled != "inductor":
        return graph, []
    rewritten, names = rewrite_written_attention(graph)
    if not names:
        return graph, []
    return rewritten, [f"compiled for Inductor: written-out attention at {', '.join(names)} planned as "
                       "scaled_dot_product_attention, the fused kernel Inductor's attention fusion calls"]


def resolve_sizes(graph: Graph, sizes: Mapping[str, int] | None) -> dict[str, int]:
    sizes = dict(sizes or {})
    missing = sorted(graph.symbols() - set(sizes))
    if missing:
        raise ChunkcError(f"graph {graph.name} has symbolic sizes {', '.join(missing)}: "
                          f"give their values, e.g. sizes={{{', '.join(repr(m) + ': 1024' for m in missing)}}}")
    return sizes


def resolve_budget(budget, unchunked_peak: int) -> int:
    """``budget`` in bytes: a fraction of ``unchunked_peak`` (a float in (0, 1], "30%"), or bytes
    (an int, "64MiB"); read as the command line reads it (chunkc.passes.budget_text)."""
    value = parse_budget(budget)
    return int(value * unchunked_peak) if isinstance(value, float) else int(value)


@dataclass
class _Floor:
    """The lowest peak one graph variant reaches (full estimate) and where it is held."""

    peak_bytes: int
    node: str
    description: str
    held: dict[str, int]  # values held in full there (a recomputed copy under its original), largest first
    held_text: str  # the largest of them, with the node that makes each
    held_here: Mapping[str, int]  # the same by their names in the planned graph (what recompute_chain takes)


RELAX_TRIES = 6  # relaxations of the floor plan aimed lower when the full estimator finds one over budget
HELD_SHOWN = 4  # whole values an InfeasibleBudgetError's message names (all are in its ``held``)


class _Planner:
    """Plans one graph variant (rematerialized or not) against the budget."""

    def __init__(self, graph: Graph, sizes: dict[str, int], opts: AutochunkOptions, budget_bytes: int,
                 unchunked: MemoryReport, notes: list[str], started: float, copies: Mapping[str, str] = {},
                 start_regions=(), rounds: int = 2, reference_seconds: float | None = None):
        self.graph, self.sizes, self.opts, self.copies = graph, sizes, opts, copies
        self.reference_seconds = reference_seconds  # the user's graph's estimated time (slowdowns are against it)
        self.budget_bytes, self.unchunked, self.notes, self.started = budget_bytes, unchunked, notes, started
        self.space = search_space(graph, sizes, SpaceOptions(opts.ends_window, opts.max_region_nodes, opts.machine,
                                                             opts.backend, opts.device, opts.compiled))
        self.graph = self.space.graph  # an equal graph planned before (space_cache): its candidates index it
        self.start = self.space.state_of(start_regions) if start_regions else None
        self.rounds = rounds
        self.widths: list[int] = []
        self.floor: _Floor | None = None
        self.recomputed: tuple[str, ...] = ()  # the values recompute rounds copied to their readers, in order

    def plan(self) -> Plan | None:
        """A plan within the budget, or None (``self.floor`` then says how low it got).

        When even the floor is above the budget, the floor's regions are applied (their
        hoisted work now stands before each loop) and the search goes on from them in the
        reordered schedule, where new regions can chunk that work too — the paper's
        "repeat with the chunk applied"."""
        plan, floor_state = self._plan_here()
        if plan is not None or self.rounds <= 0 or not floor_state.chosen:
            return plan
        chosen = sorted(floor_state.chosen, key=lambda c: c[0].start)
        if not any(cand.hoisted for cand, _ in chosen):
            return None  # reordering would change nothing
        graph, regions = apply_regions(self.graph, chosen, reuse=lambda cand: self.space.memory(cand).reuse,
                                       sizes=self.sizes)
        deeper = _Planner(graph, self.sizes, self.opts, self.budget_bytes, self.unchunked, self.notes, self.started,
                          self.copies, start_regions=regions, rounds=self.rounds - 1,
                          reference_seconds=self.reference_seconds)
        if deeper.start is None:
            return None
        plan = deeper.plan()
        if deeper.floor is not None and deeper.floor.peak_bytes < self.floor.peak_bytes:
            self.floor, self.widths = deeper.floor, deeper.widths
        return plan

    def _plan_here(self) -> tuple[Plan | None, State]:
        opts = self.opts
        selectors: list[Selector] = [opts.selector] if opts.selector is not None else \
            [BeamSelector(opts.beam, opts.per_state, opts.max_stages)]
        if opts.selector is None and opts.widen > 1:
            selectors.append(BeamSelector(opts.beam * opts.widen, opts.per_state * opts.widen, opts.max_stages))
        for selector in selectors:
            self.widths.append(getattr(selector, "beam", 0))
            plan = self._verified(selector)
            if plan is not None:
                return plan, self.space.initial()
        # the floor: the lowest peak the regions reach, whatever the cost; then the beam tries to
        # go below it (its cost-ranked stages sometimes find spans the floor search passes by)
        wide = max(opts.widen, 1)
        floor_state = FloorSelector(opts.beam * wide, opts.per_state * wide, opts.max_stages).floor(
            self.space, start=self.start)
        beam = BeamSelector(opts.beam * wide, opts.per_state * wide, opts.max_stages, gain=None)
        low = 0
        for _ in range(10):  # bisection: the beam at a target between what failed and the floor
            target = (low + floor_state.peak_bytes) // 2
            lower = beam.select(self.space, target, start=self.start)
            if lower is None:
                low = target
            elif lower.peak_bytes < floor_state.peak_bytes:
                floor_state = lower
            if floor_state.peak_bytes - low <= floor_state.peak_bytes // 256:
                break
        floor_plan, report = self._build(floor_state)
        node = floor_plan.graph.node(report.peak_node)
        where = describe(node) + (" (recomputed at its reader)" if node.name in self.copies else "")
        self.floor = _Floor(report.peak_bytes, self.copies.get(node.name, node.name), where,
                            *self._held(floor_plan.graph, report), report.whole_at_peak)
        if report.peak_bytes > self.budget_bytes:
            return None, floor_state
        relaxed = self._relaxed(floor_state)
        if relaxed is not None:
            return relaxed
        return self._finish(floor_plan, floor_state, self.budget_bytes), floor_state

    def _relaxed(self, floor_state: State, tries: int = RELAX_TRIES) -> tuple[Plan, State] | None:
        """The floor's regions with their chunks relaxed to the budget (SearchSpace.relaxed), re-checked
        with the full estimator; when the fast model was optimistic, relaxed to a lower target, as
        _verified aims lower.  The floor plan runs every region at its smallest chunk (one row of a
        UNet's feature map), so a relaxation that misses the budget by a little must not fall back
        to it: a UNet at 20% ran 3x its unchunked time on the floor's chunks."""
        target = self.budget_bytes
        for _ in range(tries):
            relaxed = self.space.relaxed(floor_state, target)
            plan, report = self._build(relaxed)
            if report.peak_bytes <= self.budget_bytes:
                return self._finish(plan, relaxed, target), relaxed
            target = int(target * self.budget_bytes / report.peak_bytes * 0.98)
            if target < floor_state.peak_bytes:
                break
        return None

    def _held(self, graph: Graph, report: MemoryReport) -> tuple[dict[str, int], str]:
        """The values held in full at the report's peak (a recomputed copy under the value it
        recomputes), and a line naming the largest with the node (and model code) that makes each."""
        held: dict[str, int] = {}
        for name, nbytes in report.whole_at_peak.items():
            user = self.copies.get(name, name)
            held[user] = held.get(user, 0) + nbytes
        parts = []
        for name, nbytes in list(report.whole_at_peak.items())[:HELD_SHOWN]:
            producer = graph.value(name).producer
            made = f", {describe(producer, code=False)}" if producer is not None else " (a graph input)"
            parts.append(f"%{name} {format_bytes(nbytes)}{made}")
        more = len(report.whole_at_peak) - HELD_SHOWN
        return dict(sorted(held.items(), key=lambda kv: -kv[1])), "; ".join(parts) + (
            f"; and {more} more" if more > 0 else "")

    def _verified(self, selector: Selector) -> Plan | None:
        """The selector's plan, re-checked with the full estimator; when the fast model was
        optimistic, aim lower (never below what the full estimator accepts) and select again."""
        target = self.budget_bytes
        for _ in range(4):
            bar = _progress(self.opts.progress, self.space.during, target)
            try:
                state = selector.select(self.space, target, bar.update if bar is not None else None, self.start)
            finally:
                if bar is not None:
                    bar.close()
            if state is None:
                return None
            plan, report = self._build(state)
            if report.peak_bytes <= self.budget_bytes:
                return self._finish(plan, state, target)
            target = int(target * self.budget_bytes / report.peak_bytes * 0.98)
        return None

    def _build(self, state: State) -> tuple[Plan, MemoryReport]:
        chosen = sorted(state.chosen, key=lambda c: c[0].start)
        new_graph, regions = apply_regions(self.graph, chosen, reuse=lambda cand: self.space.memory(cand).reuse,
                                       sizes=self.sizes)
        plan = Plan(graph=new_graph, regions=regions, sizes=self.sizes, budget_bytes=self.budget_bytes,
                    unchunked_peak_bytes=self.unchunked.peak_bytes, stats=self.space.stats(chosen),
                    backend=self.opts.backend, device=self.opts.device, notes=list(self.notes))
        report = estimate_memory(new_graph, plan=plan, sizes=self.sizes, backend=self.opts.backend)
        plan.estimated_peak_bytes = report.peak_bytes
        return plan, report

    def _finish(self, plan: Plan, state: State, target: int) -> Plan:
        """Run-time chunk sizes (expressions of the symbolic sizes, never larger here), the report."""
        chosen = sorted(state.chosen, key=lambda c: c[0].start)
        symbolic = self.space.symbolic_chunks(chosen, plan.regions, target)
        if symbolic != plan.regions:
            trial = dataclasses.replace(plan, regions=symbolic)
            report = estimate_memory(plan.graph, plan=trial, sizes=self.sizes, backend=self.opts.backend)
            if report.peak_bytes <= self.budget_bytes:
                plan, plan.estimated_peak_bytes = trial, report.peak_bytes
        times = self.space.times
        reference = self.reference_seconds or times.total
        slowdown = (times.total + state.cost) / reference  # recomputed copies count against the user's graph
        plan.estimated_slowdown = slowdown
        plan.notes.append(f"{len(plan.regions)} region(s); estimated peak {plan.estimated_peak_bytes} B "
                          f"<= budget {self.budget_bytes} B; estimated time x{slowdown:.3f}; "
                          f"search {time.perf_counter() - self.started:.2f} s")
        return plan


class _Progress:
    """Peak bytes shrinking towards the target, shown after one second."""

    def __init__(self, start_peak: int, target: int):
        from tqdm import tqdm
        self.start, self.target = start_peak, target
        self.bar = tqdm(total=max(start_peak - target, 1), delay=1.0, unit="B", unit_scale=True,
                        desc="chunkc search", leave=False)
        self.done = 0

    def update(self, peak: int) -> None:
        now = min(max(self.start - peak, 0), self.bar.total)
        if now > self.done:
            self.bar.update(now - self.done)
            self.done = now

    def close(self) -> None:
        self.bar.close()


def _progress(enabled: bool, during: list[int], target: int):
    """The bar, shown after a second, and only on an interactive terminal: never in a log,
    a pipe or a notebook's captured stream."""
    isatty = getattr(sys.stderr, "isatty", None)
    if not enabled or not (callable(isatty) and isatty()):
        return None
    try:
        return _Progress(max(during), target)
    except ImportError:
        return None


@dataclass(frozen=True)
class _Variant:
    """A graph the search plans: the user's, or one rewritten (rematerialized copies, splits)."""

    graph: Graph
    notes: list[str]
    copies: Mapping[str, str]  # rematerialized copy -> the value it recomputes
    fallback: bool = False  # planned only when no other variant meets the budget


def _variants(graph: Graph, sizes: dict[str, int], opts: AutochunkOptions, peak_bytes: int,
              budget_bytes: int) -> tuple[list[_Variant], tuple[StatisticsSplit, ...]]:
    """The graphs the search plans: fused projections split, cheap large values rematerialized
    (large against the unchunked peak; and, as fallbacks for budgets that no other variant
    meets, against lower references, see ``RematOptions.lower_references``), wholly-read work
    scheduled first; and the user's graph as it is.  Each is planned; the fastest plan (or the
    lowest floor) wins.  Also the statistics splits made (chunkc.passes.split_statistics), to
    fuse back those no region runs."""
    folded, splits, merged = graph, (), []
    if opts.rewrite:  # duplicates merged first (one value, not two, for the search); then splits:
        # a folded projection's parts are readers of their own
        common = eliminate_common_subexpressions(graph, sizes, opts.backend, opts.device)
        folded, splits = split_statistics(fold_splits(common.graph))
        merged = common.describe()
    finish = whole_inputs_first if opts.rewrite else (lambda g: g)
    variants: list[_Variant] = []
    if opts.remat:
        references = dict.fromkeys([peak_bytes] + [min(peak_bytes, max(budget_bytes, int(peak_bytes * f)))
                                                   for f in opts.remat_options.lower_references])
        seen: set[tuple] = set()
        for reference in references:
            remat = rematerialize(folded, sizes, reference, opts.remat_options)
            key = tuple(sorted(remat.copies.items()))
            if key not in seen:
                seen.add(key)
                # copies judged against a lower reference lower the floor, at the price of more
                # recomputation: worth planning only when the budget is below what the others reach
                variants.append(_Variant(finish(remat.graph), merged + remat.describe(), remat.copies,
                                         fallback=reference < peak_bytes))
    else:
        variants.append(_Variant(finish(folded), list(merged), {}))
    if all(v.graph is not graph for v in variants):
        variants.append(_Variant(graph, [], {}))
    if opts.rewrite:  # splits that cost time (attention's scores twice): only where the budget needs them
        base = variants[0]
        costly, more = split_statistics(base.graph, "split_accumulating")
        if more:
            variants.append(_Variant(finish(costly), base.notes + [
                f"split {len(more)} op(s) over an axis they mix into two passes that accumulate over it (the "
                f"budget needs loops over it): {', '.join(s.name for s in more)}"], base.copies, fallback=True))
            splits = splits + more
    return variants, splits


def _nested(variants: list[_Variant], sizes: dict[str, int], opts: AutochunkOptions, budget_bytes: int,
            unchunked: MemoryReport, flat_floor: int, started: float, reference_seconds: float) -> Plan | _Floor | None:
    """When no flat plan meets the budget: nested loops (chunkc.passes.nest) on the first variant
    with nodes that accumulate over a value a row loop reads whole (attention split over its keys).
    The plan when it meets the budget; else its floor when lower than the flat one; else None."""
    variant = _written_attention_variant(variants[0], opts)
    if variant is None:
        variant = next((v for v in variants if any(row_reading(n) for n in v.graph.nodes)), None)
    if variant is None:
        return None
    made = _nested_once(variant.graph, sizes, opts, budget_bytes)
    if made is None:
        return None
    variant, made = _nested_recomputed(variant, made, sizes, opts, budget_bytes)
    plan, peak = made
    if peak > budget_bytes:
        if peak >= flat_floor:
            return None
        report = estimate_memory(plan.graph, plan=plan, sizes=sizes, backend=opts.backend)
        node = plan.graph.node(report.peak_node)
        held = dict(report.whole_at_peak)
        text = "; ".join(f"%{k} {format_bytes(b)}" for k, b in list(held.items())[:HELD_SHOWN])
        return _Floor(peak, variant.copies.get(node.name, node.name), describe(node) + " (in nested loops)", held,
                      text, held)
    plan.estimated_peak_bytes, plan.unchunked_peak_bytes, plan.device = peak, unchunked.peak_bytes, opts.device
    model = TimeModel(plan.graph, sizes, opts.machine, opts.backend, opts.device, opts.compiled)
    plan.estimated_slowdown = plan_seconds(model, plan) / reference_seconds
    plan.notes = variant.notes + [
        f"no flat plan meets the budget: {len(plan.regions)} region(s), "
        f"{sum(len(r.inner) for r in plan.regions)} inner loop(s) over values read whole (recomputed a chunk at a "
        f"time); estimated peak {peak} B <= budget {budget_bytes} B; estimated time x{plan.estimated_slowdown:.3f}; "
        f"search {time.perf_counter() - started:.2f} s"]
    return plan


NESTED_RECOMPUTE_ROUNDS = 4


def _nested_once(graph: Graph, sizes: dict[str, int], opts: AutochunkOptions,
                 budget_bytes: int) -> tuple[Plan, int] | None:
    """chunkc.passes.nest.nested_plan of ``graph``; None where it has nothing to nest or a loop
    the estimator or the plan analysis refuses."""
    try:
        return nested_plan(graph, sizes, budget_bytes, opts.backend,
                           time_model=lambda g: TimeModel(g, sizes, opts.machine, opts.backend, opts.device,
                                                          opts.compiled))
    except ChunkcError:
        return None


def _nested_recomputed(variant: _Variant, made: tuple[Plan, int], sizes: dict[str, int], opts: AutochunkOptions,
                       budget_bytes: int) -> tuple[_Variant, tuple[Plan, int]]:
    """Where the nested plan misses the budget: recompute a value it holds whole at its peak
    (chunkc.passes.remat.recompute_chain, at each reader, where the nested loops pull each copy
    into their chains: a rotary LM's positions times frequencies [L, head/2], made once and read
    by every layer's queries and keys) and nest again, as :func:`_recompute_held` does for flat
    plans; each of the largest ``tries`` held values in turn, kept when the floor falls, for at
    most ``NESTED_RECOMPUTE_ROUNDS`` rounds (each try plans the nested loops anew, tens of seconds
    on a 2-layer model; the flat rounds' ``recompute_rounds`` would allow 16).  (The variant
    planned, its nested plan and peak.)"""
    tries, rounds = 3, min(opts.recompute_rounds, NESTED_RECOMPUTE_ROUNDS)
    while made[1] > budget_bytes and rounds > 0:
        rounds -= 1
        plan, peak = made
        report = estimate_memory(plan.graph, plan=plan, sizes=sizes, backend=opts.backend)
        held = list(report.whole_at_peak)[:tries]
        for name in held:
            chain = recompute_chain(variant.graph, sizes, name, opts.recompute_nodes)
            if not chain:
                continue
            remat = rematerialize(variant.graph, sizes, peak, members=chain)
            again = _nested_once(remat.graph, sizes, opts, budget_bytes) if remat.copies else None
            if again is not None and again[1] < peak:
                copies = {**variant.copies, **{c: variant.copies.get(o, o) for c, o in remat.copies.items()}}
                variant = dataclasses.replace(variant, graph=remat.graph, copies=copies, notes=variant.notes + [
                    f"recomputed %{name} ({len(chain)} node(s)) at each of its readers: the lowest nested plan held "
                    f"it whole ({report.whole_at_peak[name]} B)"])
                made = again
                break
        else:
            break
    return variant, made


def _written_attention_variant(base: _Variant, opts: AutochunkOptions) -> _Variant | None:
    """``base`` with its written-out attention as SDPA (chunkc.passes.written_attention), split
    over its keys; None when it has none.  Only for nested loops: flat plans gain nothing."""
    rewritten, names = rewrite_written_attention(base.graph)
    if not names:
        return None
    split, more = split_statistics(rewritten, "split_accumulating")
    if not more:
        return None
    finish = whole_inputs_first if opts.rewrite else (lambda g: g)
    return _Variant(finish(split), base.notes + [
        f"written-out attention as scaled_dot_product_attention, split over its keys: {', '.join(names)}"],
        base.copies, fallback=True)


def _recompute_held(planner: _Planner, rounds: int, max_nodes: int, tries: int = 3,
                    cheapest: bool = False) -> tuple[Plan | None, _Planner, int]:
    """When no plan meets the budget: recompute a value the lowest plan holds whole at its peak
    (chunkc.passes.remat.recompute_chain, at most ``max_nodes`` nodes) at each of its readers,
    where the search can pull each copy into its reader's loop (a convolution's row loop that
    accumulates statistics, for one), and plan that graph.  Of the first ``tries`` values held
    there, largest first, the first whose round makes progress is kept (a lower floor, or a level
    one that holds other values: the next of a stack of alike blocks, whose twin the round just
    took out of the floor); repeated at most ``rounds`` times.  A value whose round raised the
    floor (its copies, at every reader, hold more than it did) is not tried again in later rounds:
    on a UNet such a round is the longest of all (a deep chain copied into every full-resolution
    loop) and it raised the floor each time it was retried.  ``cheapest``: of the values tried,
    those alike in size cheapest first (:func:`_cheapest_first`).  (A plan that meets the budget,
    or None; the planner with the lowest floor; the rounds tried.)"""
    raised: set[str] = set()  # values whose round raised the floor
    used = 0
    while used < rounds:
        floor = planner.floor
        if floor is None:
            break
        used += 1
        names = [n for n in floor.held_here if n not in raised][:tries]
        if cheapest:
            names = _cheapest_first(names, floor.held_here, lambda n: _recompute_price(planner, n, max_nodes))
        for name in names:
            plan, deeper = _recompute_one(planner, name, max_nodes)
            if plan is not None:
                return plan, deeper, used
            if deeper is not None and deeper.floor is not None:
                if _lower(deeper.floor, floor):
                    planner = deeper
                    break
                if deeper.floor.peak_bytes > floor.peak_bytes:
                    raised.add(name)
        else:
            break
    return None, planner, used


def _cheapest_first(names: list[str], held: Mapping[str, int], price) -> list[str]:
    """``names`` (largest held first) with those holding at least half as much as the largest
    ordered by ``price``, cheapest first; the smaller ones after them, as they were.  A round
    frees what its value held: much smaller values lower the floor less, and the rounds are
    bounded (recompute_rounds)."""
    if not names:
        return names
    large = [n for n in names if 2 * held[n] >= held[names[0]]]
    return sorted(large, key=price) + [n for n in names if n not in large]


def _recompute_price(planner: _Planner, name: str, max_nodes: int) -> float:
    """Seconds the cost model gives recomputing %name at each of its readers, per byte it held
    (infinite without a chain).  When the rounds reach the budget, autochunk runs them again
    with the largest held values tried cheapest first: on a UNet the largest are alike in bytes
    (8 MiB feature maps), and largest first tried the deepest of them (a chain of 38 nodes,
    20 GFLOP a copy, copied at each of 3 readers) before a single convolution of the input that
    freed as much."""
    chain = recompute_chain(planner.graph, planner.sizes, name, max_nodes)
    if not chain:
        return float("inf")
    times = planner.space.times
    value = planner.graph.value(name)
    readers = sum(1 for n in value.users if n not in chain)
    seconds = sum(times.times[times.position[n]] for n in chain) * max(readers, 1)
    return seconds / max(value.type.nbytes(planner.sizes), 1)


def _recompute_one(planner: _Planner, name: str, max_nodes: int) -> tuple[Plan | None, _Planner | None]:
    """Plan the graph where %name (held whole at the planner's floor) is recomputed at each reader:
    (a plan that meets the budget or None, the planner; None when it has no chain to recompute)."""
    chain = recompute_chain(planner.graph, planner.sizes, name, max_nodes)
    if not chain:
        return None, None
    remat = rematerialize(planner.graph, planner.sizes, planner.floor.peak_bytes, members=chain)
    if not remat.copies:
        return None, None
    copies = {**planner.copies, **{c: planner.copies.get(o, o) for c, o in remat.copies.items()}}
    notes = planner.notes + [f"recomputed %{name} ({len(chain)} node(s)) at each of its readers: the lowest "
                             f"plan held it whole ({planner.floor.held_here[name]} B)"]
    deeper = _Planner(remat.graph, planner.sizes, planner.opts, planner.budget_bytes, planner.unchunked, notes,
                      planner.started, copies, reference_seconds=planner.reference_seconds)
    deeper.recomputed = planner.recomputed + (name,)
    return deeper.plan(), deeper


def _replayed(start: _Planner, names: list[str], max_nodes: int) -> _Planner:
    """A planner of ``start``'s graph with %name recomputed at each of its readers for each of ``names``,
    in order, as recompute rounds did (a value left without a chain stays held)."""
    planner = start
    for name in names:
        chain = recompute_chain(planner.graph, planner.sizes, name, max_nodes)
        remat = rematerialize(planner.graph, planner.sizes, 0, members=chain) if chain else None
        if remat is None or not remat.copies:
            continue
        copies = {**planner.copies, **{c: planner.copies.get(o, o) for c, o in remat.copies.items()}}
        deeper = _Planner(remat.graph, planner.sizes, planner.opts, planner.budget_bytes, planner.unchunked,
                          planner.notes + [f"recomputed %{name} ({len(chain)} node(s)) at each of its readers"],
                          planner.started, copies, reference_seconds=planner.reference_seconds)
        deeper.recomputed = planner.recomputed + (name,)
        planner = deeper
    return planner


def _fewer_copies(start: _Planner, kept: _Planner, plan: Plan, max_nodes: int, tries: int) -> Plan:
    """``plan`` (made by ``kept``, after recompute rounds from ``start``) with rounds left out where
    the budget is still met without them and the plan is predicted faster: a round recomputes what
    the lowest plan of its graph held, but the budget may sit above that floor, where holding the
    value costs less than copying its chain into every reader (a UNet's skip connection: a
    resnet block at full resolution copied into each up-block loop).  The dearest copies (time
    per byte held, _recompute_price) are tried first, at most ``tries`` of them."""
    names = list(kept.recomputed)
    if not names or tries <= 0:
        return plan
    known = {v.name for n in start.graph.nodes for v in n.outputs}
    dearest = sorted(names, key=lambda n: -_recompute_price(start, n, max_nodes) if n in known else 0.0)
    for name in dearest[:tries]:
        trial = [n for n in names if n != name]
        candidate = _replayed(start, trial, max_nodes).plan()
        if candidate is not None and candidate.estimated_slowdown < plan.estimated_slowdown:
            plan, names = candidate, trial
            plan.notes.append(f"kept %{name} whole: the budget holds it, and recomputing it cost more")
    return plan


def _lower(new: _Floor, old: _Floor) -> bool:
    """Whether a recompute round made progress: a lower floor, or a level one that holds other
    values whole there (``recompute_rounds`` bounds the rounds that stay level)."""
    return new.peak_bytes < old.peak_bytes or (new.peak_bytes == old.peak_bytes and
                                               new.held_here.keys() != old.held_here.keys())


def autochunk(graph: Graph, budget, sizes: Mapping[str, int] | None = None,
              options: AutochunkOptions | None = None, **knobs) -> Plan:
    """A plan whose estimated peak activation memory is at most ``budget``.

    ``budget``: bytes (int), or a float in (0, 1]: a fraction of the unchunked
    estimated peak (a string "30%" works too).  ``sizes`` binds every symbolic
    size.  Options: an :class:`AutochunkOptions`, or its fields as keywords
    (``beam=8``, ``backend="numpy"``, ``selector=...``).  Raises
    :class:`~chunkc.errors.InfeasibleBudgetError` with the lowest peak the search
    reaches and the node that holds it when no plan meets the budget.
    """
    with collector_paused():
        return _autochunk(graph, budget, sizes, options, **knobs)


def _autochunk(graph: Graph, budget, sizes: Mapping[str, int] | None,
               options: AutochunkOptions | None, **knobs) -> Plan:
    try:
        opts = dataclasses.replace(options or AutochunkOptions(), **knobs)
    except TypeError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(AutochunkOptions))
        raise ChunkcError(f"autochunk: {exc}; its options are {known}") from None
    check_compiler(opts.compiled)
    if opts.compiled and opts.mode == "train":
        raise ChunkcError(f"autochunk: compiled={opts.compiled!r} prices an inference program; a training "
                          "step's cost model is eager PyTorch's (leave compiled=None with mode='train')")
    if opts.mode == "train":  # a training step's memory: chunkc.passes.train_select
        from .train_select import autochunk_train
        return autochunk_train(graph, lambda peak: resolve_budget(budget, peak), resolve_sizes(graph, sizes), opts)
    if opts.mode != "inference":
        raise ChunkcError(f"autochunk: mode must be 'inference' or 'train', got {opts.mode!r}")
    sizes = resolve_sizes(graph, sizes)
    started = time.perf_counter()
    graph, fused_attention = _as_compiled(graph, opts)
    unchunked = estimate_memory(graph, sizes=sizes, backend=opts.backend, device=opts.device)
    budget_bytes = resolve_budget(budget, unchunked.peak_bytes)
    if unchunked.peak_bytes <= budget_bytes:
        plan = Plan(graph=graph, sizes=sizes, budget_bytes=budget_bytes, backend=opts.backend, device=opts.device,
                    estimated_peak_bytes=unchunked.peak_bytes, unchunked_peak_bytes=unchunked.peak_bytes)
        plan.notes.append("the unchunked graph already meets the budget")
        plan.notes += fused_attention
        return plan
    variants, splits = _variants(graph, sizes, opts, unchunked.peak_bytes, budget_bytes)
    variants = [dataclasses.replace(v, notes=fused_attention + v.notes) for v in variants]
    # every variant is planned (the fallbacks only when no other meets the budget); the plan
    # predicted fastest is kept (rematerialized copies cost time: the user's graph may win)
    reference = TimeModel(graph, sizes, opts.machine, opts.backend, opts.device, opts.compiled).total
    planners, plans = [], []
    for fallback in (False, True):
        if plans:
            break
        for v in variants:
            if v.fallback != fallback:
                continue
            planner = _Planner(v.graph, sizes, opts, budget_bytes, unchunked, v.notes, started, v.copies,
                               reference_seconds=reference)
            plan = planner.plan()
            if plan is not None:
                plans.append(plan)
            planners.append(planner)
    if plans:
        best = min(plans, key=lambda p: p.estimated_slowdown)
        return fuse_unused_splits(best, splits, lambda g, p: estimate_memory(
            g, plan=p, sizes=sizes, backend=opts.backend).peak_bytes)
    # recompute what the floors hold, lowest floor first (another variant's floor may fall
    # further once its held values are recomputed: attention split over its keys);
    # recompute_rounds bounds the rounds of all variants together
    floors = sorted((p for p in planners if p.floor is not None), key=lambda p: p.floor.peak_bytes)
    best, rounds = floors[0], opts.recompute_rounds
    for start in floors:
        if rounds <= 0:
            break
        plan, deeper, used = _recompute_held(start, rounds, opts.recompute_nodes)
        if plan is not None:
            # the rounds again, alike values cheapest first: largest first reaches the lowest floors
            # in the fewest rounds, but where both reach the budget the cheaper copies may win
            cheap, cheap_planner, _ = _recompute_held(start, rounds, opts.recompute_nodes, cheapest=True)
            if cheap is not None and cheap.estimated_slowdown < plan.estimated_slowdown:
                plan, deeper = cheap, cheap_planner
            plan = _fewer_copies(start, deeper, plan, opts.recompute_nodes, opts.recompute_keep_tries)
            return fuse_unused_splits(plan, splits, lambda g, p: estimate_memory(
                g, plan=p, sizes=sizes, backend=opts.backend).peak_bytes)
        rounds -= used
        if deeper.floor.peak_bytes < best.floor.peak_bytes:
            best = deeper
    floor = best.floor
    if opts.nested:
        nested = _nested(variants, sizes, opts, budget_bytes, unchunked, floor.peak_bytes, started, reference)
        if isinstance(nested, Plan):
            return nested
        if nested is not None:
            floor = nested
    widths = " and ".join(str(w) for w in best.widths if w)
    raise InfeasibleBudgetError(
        f"graph {graph.name}: no chunk plan reaches the budget of {budget_bytes} bytes "
        f"({budget_bytes / max(unchunked.peak_bytes, 1):.1%} of the unchunked peak {unchunked.peak_bytes} B); "
        f"the lowest peak the search reaches is {floor.peak_bytes} B "
        f"({floor.peak_bytes / max(unchunked.peak_bytes, 1):.1%}), held at {floor.description} "
        f"(searched {len(best.space.regions_seen)} legal regions, beam widths {widths}, and the floor). "
        + (f"Held in full there: {floor.held_text}. Raise the budget, or make those values chunkable: a loop "
           "holds a value whole when it is the loop's input or output, or when a node in the loop reads it "
           "whole (its dimension record carries no axis the loop slices, as attention's keys and values "
           "along the query rows)." if floor.held_text else
           "Raise the budget, or make that node chunkable (its dimension record carries no axis that the "
           "surrounding ops share)."),
        lowest_peak_bytes=floor.peak_bytes, peak_node=floor.node, held=floor.held)
