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

from dataclasses import dataclass
from typing import Mapping

from ..ir.graph import Graph, Value
from ..ir.sizes import evaluate
from .search import Candidate, GraphIndex


class ValueFacts:
    """Bytes, storage owner and death step of every value, at concrete sizes."""

    def __init__(self, graph: Graph, index: GraphIndex, sizes: Mapping[str, int]):
        from ..ir.ops.shape import contiguous_strides

        self.graph = graph
        self.sizes = dict(sizes)
        self.nbytes: dict[Value, int] = {}
        self.owner: dict[Value, Value] = {}  # the value whose storage this one uses
        strides: dict[Value, tuple] = {}
        for v in list(graph.inputs) + list(graph.constants):
            self.nbytes[v] = 0  # inputs and weights are not activation memory
            self.owner[v] = v
            strides[v] = contiguous_strides(v.shape)
        self.workspace: list[int] = []
        for node in graph.nodes:
            aliased = None
            if node.op.view_strides is not None and node.inputs:
                try:
                    aliased = node.op.view_strides([v.type for v in node.inputs], node.attrs, strides[node.inputs[0]])
                except Exception:  # a layout the rule cannot describe: assume a copy
                    aliased = None
            for k, o in enumerate(node.outputs):
                if aliased is not None:
                    self.nbytes[o] = 0
                    self.owner[o] = self.owner[node.inputs[0]]
                    strides[o] = tuple(aliased) if k == 0 else contiguous_strides(o.shape)
                else:
                    self.nbytes[o] = o.type.nbytes(sizes)
                    self.owner[o] = o
                    strides[o] = contiguous_strides(o.shape)
            ws = node.op.workspace([v.type for v in node.inputs], node.attrs, [o.type for o in node.outputs]) \
                if node.op.workspace is not None else 0
            self.workspace.append(evaluate(ws, sizes) * node.outputs[0].dtype.itemsize if ws else 0)
        # a storage dies after the last use of any value that aliases it
        n = len(graph.nodes)
        self.death: dict[Value, int] = {}
        for v, last in index.last_use.items():
            o = self.owner[v]
            birth = index.producer_index(v)
            self.death[o] = max(self.death.get(o, -1), last if last >= 0 else birth, birth)
        self.n = n
        self.symbolic = bool(graph.symbols())
        self._index = index
        self._born = None

    def live_before(self, step: int) -> list[Value]:
        """Storages produced before ``step`` and still live when it starts."""
        if self._born is None:
            self._born = sorted((self._index.producer_index(o), o.name, o) for o in self.death
                                if o.producer is not None and self.nbytes[o])
        return [o for b, _, o in self._born if b < step <= self.death[o]]

    def out_bytes(self, i: int) -> int:
        return sum(self.nbytes[o] for o in self.graph.nodes[i].outputs)


def baseline_timeline(facts: ValueFacts) -> tuple[list[int], list[int]]:
    """(live bytes before each step, peak bytes during each step) for the unchunked schedule."""
    dying: list[list[Value]] = [[] for _ in range(facts.n + 1)]
    for owner, d in facts.death.items():
        if owner.producer is not None and d < facts.n:
            dying[d].append(owner)
    before, during = [], []
    live = 0
    for i in range(facts.n):
        before.append(live)
        out = facts.out_bytes(i)
        during.append(live + out + facts.workspace[i])
        live += out
        live -= sum(facts.nbytes[v] for v in dying[i])
    return before, during


@dataclass(frozen=True)
class RegionMemory:
    """Peak bytes in a region's span as a function of the chunk size (in units)."""

    fixed_peak: int  # peak of the hoisted phase (does not depend on the chunk)
    steps: tuple[tuple[int, int, int], ...]  # (node index, A, B): bytes at that step = A + B * chunk / extent
    extent: int

    def peak(self, chunk: int) -> int:
        c = min(max(chunk, 1), self.extent)
        return max([self.fixed_peak] + [a + b * c // self.extent for _, a, b in self.steps])

    def step_bytes(self, chunk: int) -> dict[int, int]:
        c = min(max(chunk, 1), self.extent)
        return {i: a + b * c // self.extent for i, a, b in self.steps}

    def largest_chunk(self, budget: int) -> int | None:
        """The largest chunk whose peak is within ``budget``, or None."""
        if self.fixed_peak > budget:
            return None
        best = self.extent
        for _, a, b in self.steps:
            if a > budget:
                return None
            if b > 0:
                best = min(best, (budget - a) * self.extent // b)
        return best if best >= 1 else None


def region_memory(facts: ValueFacts, index: GraphIndex, cand: Candidate, before: list[int]) -> RegionMemory:
    """The affine peak model of ``cand`` given the live bytes before its span."""
    graph = facts.graph
    extent = evaluate(cand.extent, facts.sizes)
    running = before[cand.start]
    fixed_peak = running
    for i in cand.hoisted:
        out = facts.out_bytes(i)
        fixed_peak = max(fixed_peak, running + out + facts.workspace[i])
        running += out  # hoisted values are read by the loop: live until it ends
    running += sum(v.type.nbytes(facts.sizes) for v in cand.outputs)  # buffers are fresh, even for views
    fixed_peak = max(fixed_peak, running)
    loop_set = set(cand.loop)
    # last in-loop use of each storage produced in the loop
    last_in_loop: dict[Value, int] = {}
    for i in cand.loop:
        for v in graph.nodes[i].inputs:
            if index.producer_index(v) in loop_set:
                o = facts.owner[v]
                last_in_loop[o] = i
    steps = []
    chunk_live = 0
    for i in cand.loop:
        node = graph.nodes[i]
        out = facts.out_bytes(i)
        steps.append((i, running, chunk_live + out + facts.workspace[i]))
        chunk_live += out
        for o in node.outputs:
            if facts.owner[o] is o and o not in last_in_loop:
                chunk_live -= facts.nbytes[o]  # unused in the loop: written to its buffer, freed
        for v in set(node.inputs):
            owner = facts.owner[v]
            if last_in_loop.get(owner) == i:
                chunk_live -= facts.nbytes[owner]
    return RegionMemory(fixed_peak=fixed_peak, steps=tuple(steps), extent=max(extent, 1))


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
                     target: int, keep: int = 3):
    """The chunk size as an expression of the symbolic sizes, solved at run time.

    The affine model ``A_i + B_i * chunk / extent <= target`` is rebuilt with
    symbolic byte counts for the ``keep`` steps that bind at the planning sizes,
    so one compiled program picks, at every size, the largest chunk that keeps
    the region within ``target`` (at least 1, at most the extent).
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
    for v in cand.outputs:
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
    if not bounds:
        return None
    # evaluate=False: sympy's Min/Max simplification is slow and gains nothing here
    expr = sympy.Max(1, sympy.Min(extent, *bounds, evaluate=False), evaluate=False)
    expr = sympy.ceiling(extent / sympy.ceiling(extent / expr, evaluate=False), evaluate=False)  # balanced chunks
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
