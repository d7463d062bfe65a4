"""Selection: which legal regions to chunk, and with which chunk sizes, to meet a target.

A :class:`SearchSpace` is everything a strategy needs, computed once for a
graph at given sizes: the legal regions over any step (chunk-flow search,
:mod:`chunkc.passes.search`), each region's peak as a function of its chunk
size (:mod:`chunkc.passes.region_memory`), and its cost (:mod:`chunkc.passes.cost`).
A partial plan is a :class:`State`; :meth:`SearchSpace.child` adds one region.

A strategy is a :class:`Selector`: ``select(space, target)`` returns a state
whose peak is at most ``target``, or None.  Two come with chunkc:

* :class:`BeamSelector` — the paper's dynamic programming with beam search:
  stage by stage, every legal region over the current peak step gets the
  cheapest chunk that brings its span under the target, and the ``beam``
  cheapest partial plans go on;
* :class:`FloorSelector` — the lowest peak the regions can reach, whatever the
  cost: the same stages, each region at its smallest chunk, ranked by peak.
  ``autochunk`` uses it when the beam finds nothing, both to rescue budgets
  between the beam's reach and the floor and to report the floor truthfully.

A researcher swaps the strategy with ``autochunk(..., selector=MySelector())``
(docs/passes.md shows one); nothing else changes.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import numpy as np

from ..ir.graph import Graph
from ..ir.sizes import evaluate
from .cost import Kernels, TimeModel, aligned_chunk
from .plan import DEFAULT_BACKEND, RegionStats
from .region_memory import RegionMemory, ValueFacts, baseline_timeline, chunk_expression, region_memory
from .accumulate import accumulating_axes
from .search import Candidate, GraphIndex, candidate_axes, walk_regions


@dataclass(frozen=True)
class SpaceOptions:
    """How far the chunk-flow search looks."""

    ends_window: int = 48  # region ends tried after the peak step
    max_region_nodes: int = 320  # longest span walked
    machine: Kernels | None = None  # the cost model's kernels; None: the measured table, else constants
    backend: str = DEFAULT_BACKEND  # whose kernels the memory is estimated for
    device: str = "cpu"  # where they run (allocator, kernel workspace, kernel costs)
    compiled: str | None = None  # the compiler the program runs under (cost.TimeModel)


@dataclass
class State:
    """A partial plan: the regions chosen so far and the peak bytes of every step under them."""

    chosen: list[tuple[Candidate, int]]  # (region, chunk size)
    during: np.ndarray  # peak bytes per step
    spans: list[tuple[int, int]]  # sorted (start, end) of the chosen regions
    cost: float = 0.0  # estimated extra seconds
    peak_index: int = field(init=False)
    peak_bytes: int = field(init=False)

    def __post_init__(self):
        self.peak_index = int(np.argmax(self.during)) if len(self.during) else 0
        self.peak_bytes = int(self.during[self.peak_index]) if len(self.during) else 0
        self._outside = None

    def outside(self, start: int, end: int) -> int:
        """The highest step before ``start`` or after ``end`` (0 where there is none), from the
        running maxima made once per state: the selection asks it of every candidate."""
        if self._outside is None:
            self._outside = (np.maximum.accumulate(self.during).tolist(),
                             np.maximum.accumulate(self.during[::-1])[::-1].tolist())
        left, right = self._outside
        return max(left[start - 1] if start > 0 else 0, right[end + 1] if end + 1 < len(right) else 0)


class SearchSpace:
    """Legal regions, their memory and their cost for ``graph`` at ``sizes``, cached."""

    def __init__(self, graph: Graph, sizes: dict[str, int], options: SpaceOptions = SpaceOptions()):
        self.graph = graph
        self.sizes = sizes
        self.options = options
        self.index = GraphIndex(graph)
        self.facts = ValueFacts(graph, self.index, sizes, options.backend, options.device)
        self.before, self.during = baseline_timeline(self.facts)
        self.times = TimeModel(graph, sizes, options.machine, options.backend, options.device, options.compiled)
        self._walk_cache: dict[tuple[int, int, bool], list[Candidate]] = {}
        self._time_cache: dict[tuple[int, int], float] = {}
        self._best_cache: dict[tuple[int, int], tuple[int, float]] = {}  # (id(cand), largest) -> best_chunk
        self._tier: dict[tuple[int, int], int | None] = {}  # (candidate, chunk) -> cache tier it fits
        self._memory_cache: dict[int, RegionMemory] = {}
        self.regions_seen: set[int] = set()  # candidates priced (to say how wide a search was)
        self._asked: set[tuple[int, int]] = set()  # best_chunk questions asked in this search (see fresh)

    def fresh(self) -> "SearchSpace":
        """This space for a new search: the analysis (walks, region memories, costs, best chunks)
        shared, the search's own records (regions seen, cache tiers of the chunks chosen) empty."""
        out = copy.copy(self)
        out.regions_seen, out._tier, out._asked = set(), {}, set()
        return out

    def initial(self) -> State:
        """No region chosen: the unchunked schedule."""
        return State([], np.array(self.during, dtype=np.int64), [])

    def state_of(self, regions) -> State | None:
        """The state made of ``regions`` (ChunkRegions over this graph, their loops contiguous),
        or None when one of them is not a region this space knows."""
        position = {n.name: i for i, n in enumerate(self.graph.nodes)}
        state = self.initial()
        for region in regions:
            end = position[region.nodes[-1]]
            out = self.graph.nodes[end].outputs[0]
            accumulate = out.name in region.accumulators
            c = region.axis_of(self.graph.nodes[end].inputs[0].name if accumulate else out.name)
            if c is None:
                return None
            match = next((cand for cand in self._walk(end, c.axis, accumulate)
                          if tuple(self.graph.nodes[i].name for i in cand.loop) == tuple(region.nodes)
                          and not cand.hoisted), None)
            if match is None:
                return None
            chunk = evaluate(region.chunk_size, self.sizes)
            state = self.child(state, match, chunk, state.cost + self.overhead(match, chunk))
        return state

    def candidates(self, p: int, spans: list[tuple[int, int]]) -> Iterator[Candidate]:
        """Legal regions whose loop runs step ``p`` and that overlap no chosen span."""
        k = bisect.bisect(spans, (p, len(self.graph.nodes)))
        lo = spans[k - 1][1] + 1 if k > 0 else 0
        hi = spans[k][0] - 1 if k < len(spans) else len(self.graph.nodes) - 1
        for end in range(p, min(hi, p + self.options.ends_window) + 1):
            ends = [(axis, False) for axis in candidate_axes(self.graph.nodes[end])] + \
                [(axis, True) for axis in accumulating_axes(self.graph.nodes[end])]
            for axis, accumulate in ends:
                for cand in self._walk(end, axis, accumulate):
                    if cand.start < lo:
                        break  # walks yield growing spans
                    if cand.start <= p and _contains(cand.loop, p):
                        self.regions_seen.add(id(cand))
                        yield cand

    def _walk(self, end: int, axis: int, accumulate: bool = False) -> list[Candidate]:
        key = (end, axis, accumulate)
        if key not in self._walk_cache:
            self._walk_cache[key] = list(walk_regions(self.index, end, axis, max_nodes=self.options.max_region_nodes,
                                                      accumulate=accumulate))
        return self._walk_cache[key]

    def memory(self, cand: Candidate) -> RegionMemory:
        rm = self._memory_cache.get(id(cand))  # candidates live in the walk cache
        if rm is None:
            rm = self._memory_cache[id(cand)] = region_memory(self.facts, self.index, cand, self.before)
        return rm

    def largest_chunk(self, cand: Candidate, target: int) -> int | None:
        """The largest chunk of ``cand`` whose span stays within ``target`` (RegionMemory.largest_chunk),
        or None; without building the region's model when the bytes live before its span
        already exceed ``target`` (its hoisted phase starts from them: no chunk fits)."""
        if self.before[cand.start] > target:
            return None
        return self.memory(cand).largest_chunk(target)

    def best_chunk(self, cand: Candidate, largest: int) -> tuple[int, float]:
        """The cheapest chunk no larger than ``largest`` (balanced: equal iterations), and its cost."""
        key = (id(cand), largest)
        known = self._best_cache.get(key)  # asked again in every stage that reaches cand
        if known is not None:
            if key not in self._asked:  # first asked in this search: its tier is recorded as when found
                self._asked.add(key)
                self._tier[(id(cand), known[0])] = known[2]
            return known[:2]
        self._asked.add(key)
        extent = evaluate(cand.extent, self.sizes)
        best = None
        for cap, tier in self.times.chunk_options(cand, largest):
            chunk = aligned_chunk(-(-extent // -(-extent // cap)), cap, self.times.machine.chunk_multiple)
            cost = self.overhead(cand, chunk)
            if best is None or cost < best[1]:
                best = (chunk, cost, tier)
        self._tier[(id(cand), best[0])] = best[2]
        self._best_cache[key] = best
        return best[:2]

    def overhead(self, cand: Candidate, chunk: int) -> float:
        key = (id(cand), chunk)
        t = self._time_cache.get(key)
        if t is None:
            t = self._time_cache[key] = self.times.region_overhead(cand, chunk)
        return t

    def outside_peak(self, state: State, cand: Candidate) -> int:
        """The highest step of ``state`` outside ``cand``'s span."""
        return state.outside(cand.start, cand.end)

    def child(self, state: State, cand: Candidate, chunk: int, cost: float) -> State:
        """``state`` with ``cand`` chunked by ``chunk`` (its total extra seconds ``cost``)."""
        rm = self.memory(cand)
        during = state.during.copy()
        during[list(cand.hoisted)] = rm.fixed_peak
        for i, b in rm.step_bytes(chunk).items():
            during[i] = b
        return State(state.chosen + [(cand, chunk)], during, sorted(state.spans + [(cand.start, cand.end)]), cost)

    def relaxed(self, state: State, target: int) -> State:
        """``state``'s regions, each with the cheapest chunk that keeps its span within
        ``target`` (regions change memory only inside their own spans)."""
        out = self.initial()
        cost = 0.0
        for cand, chunk in sorted(state.chosen, key=lambda c: c[0].start):
            largest = self.largest_chunk(cand, target)
            if largest is not None and largest > chunk:
                chunk, extra = self.best_chunk(cand, largest)
            else:
                extra = self.overhead(cand, chunk)
            cost += extra
            out = self.child(out, cand, chunk, cost)
        return out

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
                                    tier_bytes=self._tier.get((id(cand), chunk)),
                                    multiple=self.times.machine.chunk_multiple)
            ok = expr is not None and evaluate(expr, self.sizes) <= chunk
            out.append(region.with_chunk_size(expr) if ok else region)
        return tuple(out)


SPACES_KEPT = 16  # search spaces a space_cache keeps (least recently used dropped first)
_cache: "OrderedDict[tuple, SearchSpace] | None" = None  # set inside space_cache()


@contextlib.contextmanager
def space_cache():
    """Inside, :func:`search_space` reuses the space of a graph already planned at the same sizes
    and options: planning one graph at many budgets (the fuzzer's cases, a budget sweep) then
    walks, prices and models each region once.  Nested uses share the outer cache."""
    global _cache
    if _cache is not None:
        yield
        return
    _cache = OrderedDict()
    try:
        yield
    finally:
        _cache = None


def search_space(graph: Graph, sizes: dict[str, int], options: SpaceOptions = SpaceOptions()) -> SearchSpace:
    """A fresh :class:`SearchSpace` for ``graph`` at ``sizes``; inside :func:`space_cache`, the
    analysis of an earlier graph with the same text (and constant arrays) is reused, and the
    space's ``graph`` is that earlier graph, so the search must go on with ``space.graph``."""
    if _cache is None:
        return SearchSpace(graph, sizes, options)
    from ..ir.printer import print_graph
    try:
        text = print_graph(graph)
    except Exception:  # no text form (a node without outputs): not cached
        return SearchSpace(graph, sizes, options)
    # the text names every op, attribute, type and name; large constants print no data: their arrays count
    key = (text, tuple(id(c.data) for c in graph.constants), tuple(sorted(sizes.items())), options.ends_window,
           options.max_region_nodes, id(options.machine), options.backend, options.device, options.compiled)
    space = _cache.get(key)
    if space is None:
        space = _cache[key] = SearchSpace(graph, sizes, options)  # it holds the graph: the ids stay valid
        if len(_cache) > SPACES_KEPT:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return space.fresh()


Progress = Callable[[int], None]  # told the best peak so far, after each stage


class Selector(Protocol):
    """A selection strategy."""

    def select(self, space: SearchSpace, target: int, progress: Progress | None = None,
               start: State | None = None) -> State | None:
        """A state whose peak is at most ``target`` (extending ``start``, by default the
        unchunked schedule), or None."""


@dataclass(frozen=True)
class BeamSelector:
    """Dynamic programming with beam search, ranked by the cost model (see the module docstring)."""

    beam: int = 3  # partial plans kept per stage
    per_state: int = 4  # children kept per partial plan
    max_stages: int = 512
    # once the target is met, one more region over the peak step is added while it saves more than
    # this share of the unchunked program's predicted time (None: stop at the target; see gainful)
    gain: float | None = 0.005

    def select(self, space: SearchSpace, target: int, progress: Progress | None = None,
               start: State | None = None) -> State | None:
        beam = [start or space.initial()]
        for _ in range(self.max_stages):
            done = [s for s in beam if s.peak_bytes <= target]
            if done:
                return self.gainful(space, min(done, key=lambda s: s.cost), target)
            children = [c for s in beam for c in self._expand(space, s, target)]
            if not children:
                return None
            children.sort(key=lambda s: (s.cost, s.peak_bytes))
            beam = children[: self.beam]
            if progress is not None:
                progress(min(s.peak_bytes for s in beam))
        return None

    def gainful(self, space: SearchSpace, state: State, target: int) -> State:
        """``state`` (within ``target``) with more regions over its peak step, the cheapest child
        at each stage, while each saves more than ``gain`` of the program's time: on a CPU a chunk
        loop over large tensors often runs faster than the whole call (caches, page faults), and
        a plan that only meets the budget leaves such loops out (the Evoformer's: 6–12% slower
        measured than the plan with its attention and triangle updates chunked too).  The margin
        keeps out loops whose predicted gain is within the cost model's error."""
        if self.gain is None:
            return state
        least = self.gain * space.times.total
        for _ in range(self.max_stages):
            children = [c for c in self._expand(space, state, target) if c.cost < state.cost - least]
            if not children:
                break
            state = min(children, key=lambda c: c.cost)
        return state

    def _expand(self, space: SearchSpace, state: State, target: int) -> list[State]:
        """The cheapest children of ``state``: one more region, over its peak step, within ``target``."""
        scored = []
        for cand in space.candidates(state.peak_index, state.spans):
            largest = space.largest_chunk(cand, target)
            if largest is None:
                continue
            chunk, cost = space.best_chunk(cand, largest)
            peak = max(space.outside_peak(state, cand), space.memory(cand).peak(chunk))
            scored.append((state.cost + cost, peak, len(scored), cand, chunk))
        scored.sort(key=lambda t: t[:3])
        return [space.child(state, cand, chunk, cost) for cost, _, _, cand, chunk in scored[: self.per_state]]


@dataclass(frozen=True)
class FloorSelector:
    """The lowest peak reachable: regions at their smallest chunk, ranked by the peak they
    leave (then cost); stops when no region lowers the peak.  ``select`` returns the
    lowest state found when it is within ``target`` (its chunks relaxed to the target)."""

    beam: int = 3
    per_state: int = 4
    max_stages: int = 512

    def floor(self, space: SearchSpace, progress: Progress | None = None, start: State | None = None) -> State:
        """The lowest state of two greedy searches that rank regions differently (see
        :func:`_by_inside` and :func:`_by_profile`): each one's failure is the other's strength."""
        best = None
        for rank in (_by_inside, _by_profile):
            state = self._floor(space, rank, progress, start)
            for _ in range(self.max_stages):
                # repairs of the greedy choice: merge neighbours; else give the region that holds
                # the peak a shorter span; then go on greedily from there
                repaired = _merge_neighbours(space, state)
                if repaired is None:
                    repaired = self._shorter_peak_region(space, state, rank, progress, start)
                    if repaired is None:
                        break
                state = self._floor(space, rank, progress, repaired)
            if best is None or (state.peak_bytes, state.cost) < (best.peak_bytes, best.cost):
                best = state
        return best

    def _shorter_peak_region(self, space: SearchSpace, state: State, rank, progress, start) -> State | None:
        """``state`` with the region over its peak step replaced by a shorter legal region over
        that step (the ``per_state`` best, each completed greedily), when one then reaches a
        lower peak; else None.  A long region can hold the peak because it also writes a
        later value whole (a region from one layer's attention into the next layer's values
        projection); a shorter one leaves that to another region."""
        p = state.peak_index
        holder = next((c for c, _ in state.chosen if c.start <= p <= c.end), None)
        if holder is None or (start is not None and any(c is holder for c, _ in start.chosen)):
            return None
        rest = [ck for ck in state.chosen if ck[0] is not holder]
        base = space.initial()
        for cand, chunk in rest:
            base = space.child(base, cand, chunk, base.cost + space.overhead(cand, chunk))
        trials = []
        for cand in space.candidates(p, base.spans):
            if cand is holder or cand.start < holder.start or cand.end > holder.end:
                continue
            if space.memory(cand).peak(1) >= state.peak_bytes:
                continue
            child = space.child(base, cand, 1, base.cost + space.overhead(cand, 1))
            trials.append((rank(child, space.memory(cand).peak(1)), child.cost, len(trials), child))
        trials.sort(key=lambda t: t[:3])
        for *_, child in trials[: self.per_state]:
            done = self._floor(space, rank, progress, child)
            if done.peak_bytes < state.peak_bytes:
                return done
        return None

    def _floor(self, space: SearchSpace, rank, progress: Progress | None, start: State | None) -> State:
        best = start or space.initial()
        beam = [best]
        for _ in range(self.max_stages):
            children = []
            for state in beam:
                scored = []
                for cand in space.candidates(state.peak_index, state.spans):
                    inside = space.memory(cand).peak(1)
                    if inside >= state.peak_bytes:
                        continue  # it does not lower this peak step (other steps may tie)
                    child = space.child(state, cand, 1, state.cost + space.overhead(cand, 1))
                    scored.append((rank(child, inside), child.cost, len(scored), child))
                scored.sort(key=lambda t: t[:3])
                children += [child for *_, child in scored[: self.per_state]]
            if not children:
                break
            children.sort(key=lambda s: (rank(s, None), s.cost))
            beam = children[: self.beam]
            if beam[0].peak_bytes < best.peak_bytes:
                best = beam[0]
            if progress is not None:
                progress(best.peak_bytes)
        return best

    def select(self, space: SearchSpace, target: int, progress: Progress | None = None,
               start: State | None = None) -> State | None:
        floor = self.floor(space, progress, start)
        return space.relaxed(floor, target) if floor.peak_bytes <= target else None


def _by_inside(state: State, inside: int | None) -> tuple:
    """Rank by the peak, then by the peak inside the newest region's own span.

    Early in the floor search the peak usually lies outside the regions compared, so the
    second key decides: the region whose own span is lowest.  It fails when a short region
    wins by a few bytes over a longer one covering the same step that would also lower its
    neighbours (a key projection chunked alone, then its rotary embedding in another region,
    with the projection written whole in between); the longer one is then blocked for good."""
    return (state.peak_bytes, inside if inside is not None else 0)


def _by_profile(state: State, inside: int | None) -> bytes:
    """Rank by the highest step, then the next highest, and so on (the whole sorted profile).

    It prefers the region that leaves less memory held across the schedule, which repairs
    the failure of :func:`_by_inside`; its own failure is the opposite one: a long region
    whose span is moderately low beats a shorter one whose span is lower, because it also
    lowers far-away steps that a later region could have lowered further.
    (Big-endian bytes of non-negative integers compare as the integers do.)"""
    return np.sort(state.during)[::-1].astype(">i8").tobytes()


def _merge_neighbours(space: SearchSpace, state: State, reach: int = 3) -> State | None:
    """``state`` with up to ``reach`` neighbouring regions replaced by one legal region over
    all their spans (at a chunk of one), when that lowers the sorted profile; else None.

    A greedy search chooses regions one peak step at a time, so it may chunk a key
    projection alone and its rotary embedding in a second region, writing the projection
    whole in between; one region over both holds neither.  The merged region must overlap
    no other chosen region."""
    chosen = sorted(state.chosen, key=lambda c: c[0].start)
    n = len(space.graph.nodes)
    here = _by_profile(state, None)
    for i in range(len(chosen)):
        for j in range(i + 1, min(i + reach, len(chosen))):
            first, last = chosen[i][0].start, chosen[j][0].end
            lo = chosen[i - 1][0].end + 1 if i > 0 else 0
            hi = chosen[j + 1][0].start - 1 if j + 1 < len(chosen) else n - 1
            base = None  # the state without regions i..j, built when a candidate needs it
            for end in range(last, min(hi, last + space.options.ends_window) + 1):
                for axis in candidate_axes(space.graph.nodes[end]):
                    for cand in space._walk(end, axis):
                        if cand.start < lo:
                            break
                        if cand.start > first:
                            continue
                        if base is None:
                            base = space.initial()
                            for other, chunk in chosen[:i] + chosen[j + 1:]:
                                base = space.child(base, other, chunk, base.cost + space.overhead(other, chunk))
                        trial = space.child(base, cand, 1, base.cost + space.overhead(cand, 1))
                        if _by_profile(trial, None) < here:
                            return trial
    return None


def _contains(sorted_indices: tuple[int, ...], i: int) -> bool:
    k = bisect.bisect_left(sorted_indices, i)
    return k < len(sorted_indices) and sorted_indices[k] == i


__all__ = ["SearchSpace", "SpaceOptions", "search_space", "space_cache", "State", "Selector", "BeamSelector", "FloorSelector", "Progress"]
