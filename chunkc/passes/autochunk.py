"""The AutoChunk driver: estimation -> search -> selection -> reorder, stage by stage.

Each stage takes the current peak step, searches the legal regions whose loop
contains it (:mod:`chunkc.passes.search`), gives each the largest chunk size
that brings its span under the budget (:mod:`chunkc.passes.region_memory`), and
ranks the choices by estimated slowdown (:mod:`chunkc.passes.cost`).  A beam of
the best partial plans is carried to the next stage (dynamic programming with
beam search, as in the paper) until a plan's peak is within the budget.  The
finished plan is re-checked with the full estimator; if it overshoots (the
fast model is an approximation), the search runs again with a tighter target —
the returned plan's estimated peak is never above the budget.
"""

from __future__ import annotations

import bisect
import sys
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ChunkcError, InfeasibleBudgetError
from ..ir.graph import Graph
from ..ir.sizes import evaluate
from ..ir.source import describe
from .cost import Machine, TimeModel
from .plan import DEFAULT_BACKEND, Plan, RegionStats
from .region_memory import ValueFacts, baseline_timeline, chunk_expression, region_memory
from .remat import RematOptions, rematerialize
from .reorder import apply_regions
from .search import Candidate, GraphIndex, candidate_axes, walk_regions


@dataclass(frozen=True)
class SearchOptions:
    beam: int = 3  # partial plans kept per stage
    per_state: int = 4  # children kept per partial plan
    ends_window: int = 48  # region ends tried after the peak step
    max_region_nodes: int = 320  # longest span walked
    max_stages: int = 512
    machine: Machine = Machine()
    progress: bool = True  # show a progress bar when the search runs longer than a second
    backend: str = DEFAULT_BACKEND  # whose kernels the plan's memory is estimated for
    remat: RematOptions | None = RematOptions()  # recompute cheap, large values at their readers (None: never)


@dataclass
class _State:
    chosen: list  # [(Candidate, chunk)]
    during: np.ndarray  # peak bytes per step under this partial plan
    spans: list  # sorted [(start, end)]
    cost: float = 0.0  # estimated extra seconds

    def __post_init__(self):
        self.peak_index = int(np.argmax(self.during))
        self.peak_bytes = int(self.during[self.peak_index])


def resolve_sizes(graph: Graph, sizes: Mapping[str, int] | None) -> dict[str, int]:
    sizes = dict(sizes or {})
    missing = sorted(graph.symbols() - set(sizes))
    if missing:
        raise ChunkcError(f"graph {graph.name} has symbolic sizes {', '.join(missing)}: "
                          f"give their values, e.g. sizes={{{', '.join(repr(m) + ': 1024' for m in missing)}}}")
    return sizes


def resolve_budget(budget, unchunked_peak: int) -> int:
    if isinstance(budget, str):
        text = budget.strip()
        budget = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
        raise ChunkcError(f"budget {budget!r} must be a positive number of bytes or a fraction in (0, 1]")
    if isinstance(budget, float) and budget <= 1.0:
        return int(budget * unchunked_peak)
    return int(budget)


class _Search:
    def __init__(self, graph: Graph, sizes: dict[str, int], options: SearchOptions):
        self.graph = graph
        self.sizes = sizes
        self.options = options
        self.index = GraphIndex(graph)
        self.facts = ValueFacts(graph, self.index, sizes, options.backend)
        self.before, self.during = baseline_timeline(self.facts)
        self.times = TimeModel(graph, sizes, options.machine)
        self._walk_cache: dict[tuple[int, int], list[Candidate]] = {}
        self._time_cache: dict[tuple[int, int], float] = {}
        self._tier: dict[tuple[int, int], int | None] = {}  # (candidate, chunk) -> cache tier it fits
        self._memory_cache: dict[int, object] = {}

    def candidates(self, p: int, spans: list[tuple[int, int]]):
        """Legal regions whose loop runs step ``p`` and that overlap no chosen span."""
        k = bisect.bisect(spans, (p, len(self.graph.nodes)))
        lo = spans[k - 1][1] + 1 if k > 0 else 0
        hi = spans[k][0] - 1 if k < len(spans) else len(self.graph.nodes) - 1
        for end in range(p, min(hi, p + self.options.ends_window) + 1):
            for axis in candidate_axes(self.graph.nodes[end]):
                for cand in self._walk(end, axis):
                    if cand.start < lo:
                        break  # walks yield growing spans
                    if cand.start <= p and _contains(cand.loop, p):
                        yield cand

    def _walk(self, end: int, axis: int) -> list[Candidate]:
        key = (end, axis)
        if key not in self._walk_cache:
            self._walk_cache[key] = list(walk_regions(self.index, end, axis, max_nodes=self.options.max_region_nodes))
        return self._walk_cache[key]

    def memory(self, cand: Candidate):
        rm = self._memory_cache.get(id(cand))  # candidates live in the walk cache
        if rm is None:
            rm = self._memory_cache[id(cand)] = region_memory(self.facts, self.index, cand, self.before)
        return rm

    def best_chunk(self, cand: Candidate, largest: int) -> tuple[int, float]:
        """The cheapest chunk no larger than ``largest`` (balanced: equal iterations)."""
        extent = evaluate(cand.extent, self.sizes)
        best = None
        for chunk, tier in self.times.chunk_options(cand, largest):
            chunk = -(-extent // -(-extent // chunk))
            cost = self.overhead(cand, chunk)
            if best is None or cost < best[1]:
                best = (chunk, cost, tier)
        self._tier[(id(cand), best[0])] = best[2]
        return best[0], best[1]

    def overhead(self, cand: Candidate, chunk: int) -> float:
        key = (id(cand), chunk)
        t = self._time_cache.get(key)
        if t is None:
            t = self._time_cache[key] = self.times.region_overhead(cand, chunk)
        return t

    def expand(self, state: _State, target: int) -> list[_State]:
        """The best children of ``state``: one more region, over its peak step."""
        during = state.during
        prefix = np.maximum.accumulate(during)
        suffix = np.maximum.accumulate(during[::-1])[::-1]
        scored = []
        for cand in self.candidates(state.peak_index, state.spans):
            rm = self.memory(cand)
            largest = rm.largest_chunk(target)
            if largest is None:
                continue
            chunk, cost = self.best_chunk(cand, largest)
            outside = max(prefix[cand.start - 1] if cand.start > 0 else 0,
                          suffix[cand.end + 1] if cand.end + 1 < len(during) else 0)
            peak = max(int(outside), rm.peak(chunk))
            scored.append((state.cost + cost, peak, len(scored), cand, chunk))
        scored.sort(key=lambda t: t[:3])
        return [self._child(state, cand, chunk, cost) for cost, _, _, cand, chunk in scored[: self.options.per_state]]

    def _child(self, state: _State, cand: Candidate, chunk: int, cost: float) -> _State:
        rm = self.memory(cand)
        during = state.during.copy()
        during[list(cand.hoisted)] = rm.fixed_peak
        for i, b in rm.step_bytes(chunk).items():
            during[i] = b
        return _State(state.chosen + [(cand, chunk)], during, sorted(state.spans + [(cand.start, cand.end)]), cost)

    def stats(self, chosen) -> tuple[RegionStats, ...]:
        out = []
        for cand, chunk in chosen:
            rm = self.memory(cand)
            out.append(RegionStats(
                peak_before=max(self.during[cand.start: cand.end + 1]), peak_after=rm.peak(chunk),
                iterations=-(-rm.extent // chunk), extra_seconds=self.times.region_overhead(cand, chunk),
                hoisted=tuple(self.graph.nodes[i].name for i in cand.hoisted)))
        return tuple(out)

    def symbolic_chunks(self, chosen, regions, target: int):
        """Regions whose chunk sizes are expressions of the symbolic sizes (see chunk_expression)."""
        out = []
        for (cand, chunk), region in zip(chosen, regions):
            expr = chunk_expression(self.facts, self.index, cand, self.memory(cand), target,
                                    tier_bytes=self._tier.get((id(cand), chunk)))
            ok = expr is not None and evaluate(expr, self.sizes) <= chunk
            out.append(region.with_chunk_size(expr) if ok else region)
        return tuple(out)

    def lowest_reachable(self) -> tuple[int, int]:
        """Greedy: the lowest peak reachable with the smallest chunks (for the error message)."""
        state = _State([], np.array(self.during, dtype=np.int64), [])
        for _ in range(self.options.max_stages):
            best = min(self.candidates(state.peak_index, state.spans), key=lambda c: self.memory(c).peak(1), default=None)
            if best is None or self.memory(best).peak(1) >= state.peak_bytes:
                break
            state = self._child(state, best, 1, 0.0)
        return state.peak_bytes, state.peak_index

    def run(self, target: int) -> _State | None:
        beam = [_State([], np.array(self.during, dtype=np.int64), [])]
        bar = _progress(self.options.progress, self.during, target)
        try:
            for _ in range(self.options.max_stages):
                done = [s for s in beam if s.peak_bytes <= target]
                if done:
                    return min(done, key=lambda s: s.cost)
                children = [c for s in beam for c in self.expand(s, target)]
                if not children:
                    return None
                children.sort(key=lambda s: (s.cost, s.peak_bytes))
                beam = children[: self.options.beam]
                if bar is not None:
                    bar.update(min(s.peak_bytes for s in beam))
        finally:
            if bar is not None:
                bar.close()
        return None


def _contains(sorted_indices: tuple[int, ...], i: int) -> bool:
    k = bisect.bisect_left(sorted_indices, i)
    return k < len(sorted_indices) and sorted_indices[k] == i


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


def autochunk(graph: Graph, budget, sizes: Mapping[str, int] | None = None, **options) -> Plan:
    """A plan whose estimated peak activation memory is at most ``budget``.

    ``budget``: bytes (int), or a float in (0, 1]: a fraction of the unchunked
    estimated peak (a string "30%" works too).  ``sizes`` binds every symbolic
    size.  Options: see :class:`SearchOptions`.  Raises
    :class:`~chunkc.errors.InfeasibleBudgetError` with the lowest reachable peak
    and the node that holds it when no plan meets the budget.
    """
    from .memory import estimate_memory

    opts = SearchOptions(**options)
    sizes = resolve_sizes(graph, sizes)
    started = time.perf_counter()
    unchunked = estimate_memory(graph, sizes=sizes, backend=opts.backend)
    budget_bytes = resolve_budget(budget, unchunked.peak_bytes)
    plan = Plan(graph=graph, sizes=sizes, budget_bytes=budget_bytes, backend=opts.backend,
                estimated_peak_bytes=unchunked.peak_bytes, unchunked_peak_bytes=unchunked.peak_bytes)
    if unchunked.peak_bytes <= budget_bytes:
        plan.notes.append("the unchunked graph already meets the budget")
        return plan
    notes: list[str] = []
    if opts.remat is not None:
        remat = rematerialize(graph, sizes, unchunked.peak_bytes, opts.remat)
        graph = remat.graph
        notes += remat.describe()
    search = _Search(graph, sizes, opts)
    target = budget_bytes
    for attempt in range(4):
        state = search.run(target)
        if state is None:
            break
        chosen = sorted(state.chosen, key=lambda c: c[0].start)
        new_graph, regions = apply_regions(graph, chosen)
        candidate = Plan(graph=new_graph, regions=regions, sizes=sizes, budget_bytes=budget_bytes,
                         unchunked_peak_bytes=unchunked.peak_bytes, stats=search.stats(chosen),
                         backend=opts.backend, notes=list(notes))
        report = estimate_memory(new_graph, plan=candidate, sizes=sizes, backend=opts.backend)
        candidate.estimated_peak_bytes = report.peak_bytes
        if report.peak_bytes <= budget_bytes:
            symbolic = search.symbolic_chunks(chosen, regions, target)
            if symbolic != regions:  # run-time chunks (never larger at these sizes): estimate again
                candidate.regions = symbolic
                report = estimate_memory(new_graph, plan=candidate, sizes=sizes, backend=opts.backend)
                candidate.estimated_peak_bytes = report.peak_bytes
            slowdown = search.times.slowdown(state.cost)
            candidate.notes.append(f"{len(regions)} region(s); estimated peak {report.peak_bytes} B "
                                   f"<= budget {budget_bytes} B; estimated time x{slowdown:.3f}; "
                                   f"search {time.perf_counter() - started:.2f} s")
            candidate.estimated_slowdown = slowdown
            return candidate
        # the fast model was optimistic here: aim lower and search again
        target = int(target * budget_bytes / report.peak_bytes * 0.98)
    peak, p = search.lowest_reachable()
    node = graph.nodes[p].name
    raise InfeasibleBudgetError(
        f"graph {graph.name}: no chunk plan reaches the budget of {budget_bytes} bytes "
        f"({budget_bytes / max(unchunked.peak_bytes, 1):.1%} of the unchunked peak {unchunked.peak_bytes} B); "
        f"the lowest peak reachable is about {peak} B, held at {describe(graph.nodes[p])}. "
        "Raise the budget, or make that node chunkable (its dimension record carries no axis that the "
        "surrounding ops share).", lowest_peak_bytes=peak, peak_node=node)
