"""Fast memory arithmetic for the search: a baseline timeline and a region's local peak.

The selection pass tries hundreds of (region, chunk size) pairs per stage, so it
cannot re-run the full estimator for each.  A region changes memory only inside
its span: before the loop its hoisted nodes run and its output buffers are
allocated; during an iteration, every chunked value costs ``chunk / extent`` of
its full size.  So the peak inside a region is ``max_i (A_i + B_i * chunk)`` —
affine per step — and the largest chunk that meets a budget is solved directly.
Outside the span the timeline is unchanged.  The full estimator
(:mod:`chunkc.passes.memory`) checks the final plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..ir.graph import Graph, Value
from ..ir.sizes import evaluate
from .search import Candidate, GraphIndex


class ValueFacts:
    """Bytes, storage owner and death step of every value, at concrete sizes.

    Built on the full estimator's model (:class:`chunkc.passes.memory.MemoryModel`),
    so views, strides and workspace are judged exactly as the final check judges them.
    """

    def __init__(self, graph: Graph, index: GraphIndex, sizes: Mapping[str, int], backend: str | None = None,
                 device: str | None = None):
        from .memory import MemoryModel

        self.graph = graph
        self.sizes = dict(sizes)
        self.model = MemoryModel(graph, sizes, backend=backend, device=device)
        m = self.model
        self.nbytes: dict[Value, int] = {}
        self.owner: dict[Value, Value] = {}  # the value whose storage this one uses
        for k, v in enumerate(m.values):
            root = k
            while m.parent[root] != -1:
                root = m.parent[root]
            self.owner[v] = m.values[root]
            self.nbytes[v] = 0 if (v.producer is None or root != k) else m.nbytes[k]
        self.workspace: list[int] = list(m.ws)
        self.has_workspace: list[bool] = [fn is not None for fn in m.ws_fn]
        # a storage dies after the last use of any value that aliases it
        self.n = len(graph.nodes)
        self.death: dict[Value, int] = {}
        for v, last in index.last_use.items():
            o = self.owner[v]
            birth = index.producer_index(v)
            self.death[o] = max(self.death.get(o, -1), last if last >= 0 else birth, birth)
        self.symbolic = bool(graph.symbols())
        self._index = index
        self._born = None
        self._sharers: dict[Value, list[Value]] | None = None
        self._out_bytes = None
        self._ws_cache: dict = {}
        self._concrete_types: dict = {}  # value -> its type at these sizes (see concrete_type)
        self._rows_types: dict = {}  # (value, axis, rows) -> chunk type (see rows_type)
        self._ws_fns: dict = {}  # (node, its slicing) -> _ChunkWorkspace (see _ChunkWorkspace.of)
        self._overlapping: dict[Value, str] = {}  # see overlapping_view
        self._groups: dict[Value, tuple] = {}  # see storage_group
        self._same_layout: dict[tuple[Value, Value], bool] = {}  # see same_layout

    def same_layout(self, a: Value, b: Value) -> bool:
        """Whether the estimator's model lays ``a`` and ``b`` (one shape) out alike (size-1
        axes aside)."""
        key = (a, b)
        same = self._same_layout.get(key)
        if same is None:
            m = self.model
            i, j = m.vid[a], m.vid[b]
            same = self._same_layout[key] = all(n == 1 or x == y for n, x, y in
                                                zip(m.shape[i], m.strides[i], m.strides[j]))
        return same

    def sharers(self, owner: Value) -> list[Value]:
        """The values whose storage is ``owner``'s (itself and its views)."""
        if self._sharers is None:
            self._sharers = {}
            for v, o in self.owner.items():
                self._sharers.setdefault(o, []).append(v)
        return self._sharers.get(owner, [owner])

    def live_before(self, step: int) -> list[Value]:
        """Storages produced before ``step`` and still live when it starts."""
        if self._born is None:
            self._born = sorted((self._index.producer_index(o), o.name, o) for o in self.death
                                if o.producer is not None and self.nbytes[o])
        return [o for b, _, o in self._born if b < step <= self.death[o]]

    def out_bytes(self, i: int) -> int:
        if self._out_bytes is None:
            self._out_bytes = [sum(self.nbytes[o] for o in n.outputs) for n in self.graph.nodes]
        return self._out_bytes[i]

    def storage_group(self, v: Value) -> tuple[Value, set[Value]]:
        """:func:`chunkc.passes.loop_buffers.storage_group` of ``v``, found once (the graph does
        not change while the search runs)."""
        group = self._groups.get(v)
        if group is None:
            from .loop_buffers import storage_group
            group = self._groups[v] = storage_group(v)
        return group

    def overlapping_view(self, v: Value) -> str:
        """:func:`chunkc.passes.plan_index.overlapping_view` at these sizes, followed once per value
        (every region that could write an output over ``v`` asks)."""
        why = self._overlapping.get(v)
        if why is None:
            from .plan_index import overlapping_view
            why = self._overlapping[v] = overlapping_view(v, self.sizes)
        return why

    def concrete_type(self, v: Value):
        """``v``'s type at these sizes, made once (a loop node's workspace is asked at many chunks)."""
        from ..ir.types import TensorType

        t = self._concrete_types.get(v)
        if t is None:
            t = self._concrete_types[v] = TensorType(v.dtype, v.type.concrete_shape(self.sizes))
        return t

    def rows_type(self, v: Value, axis: int, rows: int):
        """``v``'s concrete type with at most ``rows`` along ``axis`` (a chunk's type), made once
        per (value, axis, rows): the value's producer and readers ask for the same chunks."""
        from ..ir.types import TensorType

        key = (v, axis, rows)
        t = self._rows_types.get(key)
        if t is None:
            shape = list(self.concrete_type(v).shape)
            shape[axis] = min(rows, shape[axis])
            t = self._rows_types[key] = TensorType(v.dtype, tuple(shape))
        return t

    def chunk_workspace(self, i: int, axes: Mapping[Value, tuple[int, int]], extent: int, units: int = 1,
                        whole: frozenset[int] = frozenset(),
                        halos: Mapping[Value, tuple[int, int]] | None = None) -> int:
        """Bytes of workspace node ``i`` takes for a chunk of ``units`` units, its chunked values
        having ``axes`` (value -> (axis, elements per unit)) and the inputs at positions
        ``whole`` read whole (asked of the estimator's model, with the attributes the node has
        in its costliest iteration; ``halos``: rows beyond the chunk, chunkc.passes.halo)."""
        from .plan import ChunkedValue

        node = self.graph.nodes[i]
        values = list(node.inputs) + list(node.outputs)
        halos = halos or {}
        key = (i, tuple(axes.get(v) for v in values), units, whole, tuple(halos.get(v) for v in values))
        if key not in self._ws_cache:
            def chunk_type(v, n: int, read_whole=False):
                if v not in axes or read_whole:
                    return self.concrete_type(v)
                axis, unit = axes[v]
                lo, hi = halos.get(v, (0, 0))
                return self.rows_type(v, axis, unit * n + lo + hi)

            def types_for(n: int):
                return ([chunk_type(v, n, k in whole) for k, v in enumerate(node.inputs)],
                        [chunk_type(o, n) for o in node.outputs])
            out = node.outputs[0] if node.outputs else None
            chunk = ChunkedValue(out.name, *axes[out]) if out in axes else None
            self._ws_cache[key] = self.model.loop_workspace_bytes(i, types_for, chunk, units, extent)
        return self._ws_cache[key]


def baseline_timeline(facts: ValueFacts) -> tuple[list[int], list[int]]:
    """(live bytes before each step, peak bytes during each step) of the unchunked schedule."""
    timeline = facts.model.report(None).timeline
    during = [e.peak_bytes for e in timeline]
    before = [0] + [e.live_bytes for e in timeline[:-1]]
    return before, during


@dataclass(frozen=True)
class _ChunkWorkspace:
    """A loop node's workspace as a function of the chunk (in units), asked of its record.

    Workspace need not scale with the chunk: a convolution's input-channel part does not, and a
    blocked kernel's tiles grow in steps (PyTorch's CPU flash attention takes 32, 64 or 256 query
    rows per tile by the rows it gets), so it is not part of the affine model."""

    facts: "ValueFacts"
    node: int
    axes: tuple[tuple[Value, tuple[int, int]], ...]  # the node's chunked values: (value, (axis, elements per unit))
    extent: int
    whole: frozenset[int] = frozenset()  # input positions the node reads whole
    halos: tuple[tuple[Value, tuple[int, int]], ...] = ()  # rows beyond the chunk (chunkc.passes.halo)
    _at: dict = field(default_factory=dict, compare=False, repr=False)  # chunk -> bytes, asked once

    @staticmethod
    def of(facts: "ValueFacts", i: int, axes: Mapping[Value, tuple[int, int]], extent: int,
           whole: frozenset[int], halos: Mapping[Value, tuple[int, int]]) -> "_ChunkWorkspace":
        """Node ``i``'s workspace in a region whose chunked values have ``axes`` (only the
        node's own values are kept).  One object per distinct (node, its slicing): the many
        candidate regions that run a node sliced alike share it, and with it the chunks
        already asked (the selection probes each region at many chunks)."""
        node = facts.graph.nodes[i]
        values = (*node.inputs, *node.outputs)
        own_axes = tuple([(v, axes[v]) for v in values if v in axes])
        own_halos = tuple([(v, halos[v]) for v in values if v in halos]) if halos else ()
        key = (i, own_axes, extent, whole, own_halos)
        shared = facts._ws_fns.get(key)
        if shared is None:
            shared = facts._ws_fns[key] = _ChunkWorkspace(facts, i, own_axes, extent, whole, own_halos)
        return shared

    def __call__(self, chunk: int) -> int:
        out = self._at.get(chunk)
        if out is None:
            out = self._at[chunk] = self.facts.chunk_workspace(self.node, dict(self.axes), self.extent, chunk,
                                                               self.whole, dict(self.halos))
        return out


@dataclass(frozen=True)
class RegionMemory:
    """Peak bytes in a region's span as a function of the chunk size (in units)."""

    fixed_peak: int  # peak of the hoisted phase (does not depend on the chunk)
    steps: tuple[tuple[int, int, int], ...]  # (node index, A, B): bytes at that step = A + B * chunk / extent + workspace
    extent: int
    reuse: tuple[tuple[Value, Value], ...] = ()  # (output, region input) storage pairs (see reusable)
    workspace: tuple[tuple[int, _ChunkWorkspace], ...] = ()  # (node index, its workspace at a chunk)
    # answers already given: the selection asks the same region again in every state and stage
    _peaks: dict = field(default_factory=dict, compare=False, repr=False)  # chunk -> peak
    _largest: dict = field(default_factory=dict, compare=False, repr=False)  # budget -> largest chunk

    def step_bytes(self, chunk: int) -> dict[int, int]:
        c = min(max(chunk, 1), self.extent)
        out = {i: a + b * c // self.extent for i, a, b in self.steps}
        for i, ws in self.workspace:
            out[i] += ws(c)
        return out

    def peak(self, chunk: int) -> int:
        out = self._peaks.get(chunk)
        if out is None:
            if self.workspace:
                out = max([self.fixed_peak, *self.step_bytes(chunk).values()])
            else:  # the affine steps alone (step_bytes without its dictionary)
                c, extent = min(max(chunk, 1), self.extent), self.extent
                out = max([self.fixed_peak, *[a + b * c // extent for _, a, b in self.steps]])
            self._peaks[chunk] = out
        return out

    def largest_chunk(self, budget: int) -> int | None:
        """The largest chunk whose peak is within ``budget``, or None (the peak grows with the chunk)."""
        if budget not in self._largest:
            self._largest[budget] = self._solve_largest(budget)
        return self._largest[budget]

    def _solve_largest(self, budget: int) -> int | None:
        if self.fixed_peak > budget:
            return None
        best = self.extent
        for _, a, b in self.steps:
            if a > budget:
                return None
            if b > 0:
                best = min(best, (budget - a) * self.extent // b)
        if best < 1:
            return None
        if not self.workspace or self.peak(best) <= budget:
            return best
        if self.peak(1) > budget:
            return None
        lo, hi = 1, best  # peak(lo) fits, peak(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.peak(mid) <= budget else (lo, mid)
        return lo


def reusable(facts: ValueFacts, index: GraphIndex, cand: Candidate) -> tuple[tuple[Value, Value], ...]:
    """(output, region input) pairs where the output's buffer can be the input's storage: the
    rule is chunkc.passes.loop_buffers.host_problem (a residual stream updated in place).  The
    planner asks two things more: the input is made before the loop (not by a hoisted node of
    the candidate, which runs in the same span), and the estimator lays it out as it lays out
    the output (else the readers after the loop would see other strides: a reshape that
    copies).  Cheap tests first; the storage tests (graph walks) last, remembered per value.
    """
    from .loop_buffers import host_problem
    from .plan import ChunkedValue

    chunked = cand.axes
    loop_set = set(cand.loop)
    loop_nodes = None  # made when a pair passes the cheap tests
    whole = {v for _, _, v in cand._whole}
    taken: set[Value] = set()
    pairs = []
    by_spec: dict[tuple[int, int], list[Value]] = {}  # sliced values by (axis, unit), in order
    for r, spec in chunked.items():
        by_spec.setdefault(spec, []).append(r)
    for o in cand.outputs:
        spec_o = chunked.get(o)
        if spec_o is None:
            continue  # an accumulator: no input is sliced as it is
        for r in by_spec[spec_o]:
            if r in taken or r in whole or r.type != o.type or cand.halo(r) != (0, 0) \
                    or index.producer_index(r) in loop_set or facts.owner[r] in taken \
                    or not facts.same_layout(r, o):
                continue
            if loop_nodes is None:
                loop_nodes = {facts.graph.nodes[i] for i in cand.loop}
            if host_problem(facts.graph, o, r, output_slice=ChunkedValue(o.name, *spec_o),
                            host_slice=ChunkedValue(r.name, *chunked[r], *cand.halo(r)), read_whole=False,
                            loop_nodes=loop_nodes, position=index.position, end=cand.end,
                            overlapping=facts.overlapping_view, group=facts.storage_group(r)):
                continue
            pairs.append((o, r))
            taken.update((r, facts.owner[r]))
            break
    return tuple(pairs)


def _hoisted_deaths(facts: ValueFacts, index: GraphIndex, cand: Candidate) -> dict[int, list[Value]]:
    """For each hoisted node, the storages whose last reader it is once the span is reordered
    (hoisted nodes first, then the loop): read by no loop node and by nothing after the span."""
    if not cand.hoisted:
        return {}
    hoisted = set(cand.hoisted)
    last: dict[Value, int] = {}  # storage -> its last hoisted reader; -1: kept (loop or later reads)
    for i in cand.hoisted:
        for v in facts.graph.nodes[i].inputs:
            o = facts.owner[v]
            if o.producer is None or not facts.nbytes[o]:
                continue
            if last.get(o) == -1:
                continue
            last[o] = -1 if facts.death[o] > cand.end or any(
                r not in hoisted and cand.start <= r <= cand.end for r, _ in _storage_uses(facts, index, o)) else i
    out: dict[int, list[Value]] = {}
    for o, i in last.items():
        if i >= 0:
            out.setdefault(i, []).append(o)
    return out


def _storage_uses(facts: ValueFacts, index: GraphIndex, owner: Value) -> list[tuple[int, int]]:
    """Uses of every value that shares ``owner``'s storage."""
    return [u for v in facts.sharers(owner) for u in index.uses[v]]


def region_memory(facts: ValueFacts, index: GraphIndex, cand: Candidate, before: list[int]) -> RegionMemory:
    """The affine peak model of ``cand`` given the live bytes before its span."""
    graph = facts.graph
    extent = evaluate(cand.extent, facts.sizes)
    reuse = reusable(facts, index, cand)
    reused = {o for o, _ in reuse}
    running = before[cand.start]
    fixed_peak = running
    # the hoisted phase: each hoisted node in turn; a storage whose last reader is a hoisted
    # node (none in the loop, none after the span) is freed after it, the rest stay
    last_hoisted = _hoisted_deaths(facts, index, cand)
    for i in cand.hoisted:
        out = facts.out_bytes(i)
        fixed_peak = max(fixed_peak, running + out + facts.workspace[i])
        running += out
        running -= sum(facts.nbytes[o] for o in last_hoisted.get(i, ()))
    # output buffers are fresh, even for views, unless they take a dying input's storage
    running += sum(v.type.nbytes(facts.sizes) for v in cand.outputs if v not in reused)
    fixed_peak = max(fixed_peak, running)
    loop_set = set(cand.loop)
    # last in-loop use of each storage produced in the loop (a chunk written in place into a
    # reused input lives to the end of the iteration)
    last_in_loop: dict[Value, int] = {o: cand.loop[-1] for o in reused}
    for i in cand.loop:
        for v in graph.nodes[i].inputs:
            if index.producer_index(v) in loop_set:
                o = facts.owner[v]
                last_in_loop[o] = max(last_in_loop.get(o, i), i)
    steps = []
    workspace = []
    chunk_live = 0
    halo_live = 0  # bytes of the halo rows of the live loop values (they do not scale with the chunk)
    axes = cand.axes
    accumulators = set(getattr(cand, "accumulators", ()))
    halos = getattr(cand, "halos", None) or {}

    def halo_bytes(v: Value) -> int:
        if v not in halos:
            return 0
        lo, hi = halos[v]
        rows = v.type.concrete_shape(facts.sizes)[axes[v][0]]
        return facts.nbytes[v] // max(rows, 1) * (lo + hi)
    whole_at: dict[int, set[int]] = {}  # loop node -> input positions it reads whole
    for j, pos, _ in cand._whole:
        whole_at.setdefault(j, set()).add(pos)
    owner, nbytes = facts.owner, facts.nbytes
    for i in cand.loop:
        node = graph.nodes[i]
        outputs = node.outputs
        out = facts.out_bytes(i)
        # an accumulator's partial is whole whatever the chunk (chunkc.passes.accumulate)
        partial = sum(nbytes[o] for o in outputs if o in accumulators) if accumulators else 0
        out_halo = sum(halo_bytes(o) for o in outputs if owner[o] is o) if halos else 0
        steps.append((i, running + halo_live + out_halo + partial, chunk_live + out - partial))
        if facts.has_workspace[i]:
            whole = frozenset(whole_at.get(i, ()))
            workspace.append((i, _ChunkWorkspace.of(facts, i, axes, extent, whole, halos)))
        chunk_live += out - partial
        halo_live += out_halo
        for o in outputs:
            if owner[o] is o and o not in last_in_loop and o not in accumulators:
                chunk_live -= nbytes[o]  # unused in the loop: written to its buffer, freed
                if halos:
                    halo_live -= halo_bytes(o)
        read = set(node.inputs)
        if i == cand.loop[-1]:
            read |= reused
        for v in read:
            o = owner[v]
            if last_in_loop.get(o) == i and index.producer_index(o) in loop_set:
                chunk_live -= nbytes[o]
                if halos:
                    halo_live -= halo_bytes(o)
    return RegionMemory(fixed_peak=fixed_peak, steps=tuple(steps), extent=max(extent, 1), reuse=reuse,
                        workspace=tuple(workspace))


class _Poly:
    """Symbolic byte counts as {monomial: coefficient}: sums stay cheap, sympy is built once."""

    def __init__(self):
        self.terms: dict = {}
        self._cache: dict = {}

    def add_value(self, v: Value, times: int = 1) -> None:
        key = (v.type.shape, v.dtype.itemsize)
        parts = self._cache.get(key)
        if parts is None:
            import sympy
            parts = self._cache[key] = sympy.expand(sympy.sympify(v.type.numel()) * v.dtype.itemsize).as_coefficients_dict()
        for mono, coeff in parts.items():
            self.terms[mono] = self.terms.get(mono, 0) + coeff * times

    def add_number(self, n: int) -> None:
        import sympy
        self.terms[sympy.Integer(1)] = self.terms.get(sympy.Integer(1), 0) + n

    def expr(self):
        import sympy
        return sympy.Add(*[c * m for m, c in self.terms.items() if c])

    def copy(self) -> "_Poly":
        p = _Poly()
        p.terms, p._cache = dict(self.terms), self._cache
        return p


def chunk_expression(facts: ValueFacts, index: GraphIndex, cand: Candidate, rm: RegionMemory,
                     target: int, keep: int = 3, tier_bytes: int | None = None, multiple: int = 1):
    """The chunk size as an expression of the symbolic sizes, solved at run time.

    The affine model ``A_i + B_i * chunk / extent <= target`` is rebuilt with
    symbolic byte counts for the ``keep`` steps that bind at the planning sizes,
    so one compiled program picks, at every size, the largest chunk that keeps
    the region within ``target`` (at least 1, at most the extent).  With
    ``tier_bytes`` (the selection chose a chunk that keeps every loop tensor in
    a cache tier), the largest loop tensor's chunk is also kept within it.  With
    ``multiple`` > 1, the balanced chunk is rounded up to a multiple of it where the largest
    chunk allows (:func:`chunkc.passes.cost.aligned_chunk`).
    """
    import sympy

    if not facts.symbolic:
        return None
    chunk_now = rm.largest_chunk(target)
    binding = sorted(((target - a) * rm.extent / b if b else float("inf"), i) for i, a, b in rm.steps)[:keep]
    graph = facts.graph
    fixed = _Poly()
    # live bytes before the span: storages born before it and dying at or after its start
    for o in facts.live_before(cand.start):
        fixed.add_value(o)
    for i in cand.hoisted:
        for o in graph.nodes[i].outputs:
            if facts.nbytes[o]:
                fixed.add_value(o)
    reused = {o for o, _ in rm.reuse}
    for v in cand.outputs:
        if v not in reused:
            fixed.add_value(v)
    fixed_expr = fixed.expr()
    extent = sympy.sympify(cand.extent)
    bounds = []
    steps = {i for i, _, _ in rm.steps}
    for _, i in binding:
        if i not in steps:
            continue
        variable = _symbolic_chunk_live(facts, index, cand, i, fixed)
        variable.add_number(facts.workspace[i])
        var_expr = variable.expr()
        if var_expr == 0:
            continue
        bounds.append(sympy.floor((target - fixed_expr) * extent / var_expr, evaluate=False))
    if tier_bytes is not None:
        biggest = max((o for i in cand.loop for o in graph.nodes[i].outputs), key=lambda o: facts.nbytes[o])
        one = _Poly()
        one.add_value(biggest)
        bounds.append(sympy.floor(tier_bytes * extent / one.expr(), evaluate=False))
    if not bounds:
        return None
    # evaluate=False: sympy's Min/Max simplification is slow and gains nothing here
    largest = sympy.Max(1, sympy.Min(extent, *bounds, evaluate=False), evaluate=False)
    expr = sympy.ceiling(extent / sympy.ceiling(extent / largest, evaluate=False), evaluate=False)  # balanced chunks
    if multiple > 1:  # rounded up to the multiple when that stays within the largest (else kept)
        up = multiple * sympy.ceiling(expr / multiple, evaluate=False)
        expr = sympy.Max(expr, sympy.Min(multiple * sympy.floor(largest / multiple, evaluate=False), up,
                                         evaluate=False), evaluate=False)
    if chunk_now is not None and evaluate(expr, facts.sizes) > chunk_now:
        return None  # the symbolic model disagrees with the numeric one: keep the number
    return expr


def _symbolic_chunk_live(facts: ValueFacts, index: GraphIndex, cand: Candidate, step: int, like: _Poly) -> _Poly:
    """Full bytes of the loop values live while ``step`` runs (scaled by chunk/extent at run time)."""
    graph = facts.graph
    loop_set = set(cand.loop)
    last_in_loop: dict[Value, int] = {}
    for i in cand.loop:
        for v in graph.nodes[i].inputs:
            if index.producer_index(v) in loop_set:
                last_in_loop[facts.owner[v]] = i
    total = like.copy()
    total.terms = {}
    for i in cand.loop:
        if i > step:
            break
        for o in graph.nodes[i].outputs:
            if facts.owner[o] is not o or not facts.nbytes[o]:
                continue
            if i == step or last_in_loop.get(o, -1) >= step:
                total.add_value(o)
    return total
