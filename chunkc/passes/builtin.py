"""The built-in passes, available by name in pipelines and ``chunkc opt``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ChunkcError
from ..ir.graph import Graph
from ..ir.verifier import verify
from .options import SearchKnobs
from .manager import Pass, PassContext, register_pass


@register_pass
@dataclass(frozen=True)
class Verify(Pass):
    """Check the graph's invariants (chunkc.verify); raise naming the first node at fault."""

    name = "verify"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        verify(graph)
        return graph


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Drop nodes none of whose outputs reach a graph output, and constants nothing reads
    (:meth:`Graph.dce` on a copy; the input graph is returned when nothing is dead)."""

    name = "dce"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        result = graph.copy()
        return result if result.dce() else graph


@register_pass
@dataclass(frozen=True)
class EstimateMemory(Pass):
    """Store the memory report in ``ctx.analyses['memory']`` (the graph is unchanged)."""

    name = "estimate-memory"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        from .memory import estimate_memory
        ctx.analyses["memory"] = estimate_memory(graph, plan=ctx.plan if ctx.plan and ctx.plan.graph is graph else None,
                                                 sizes=ctx.sizes)
        return graph


@dataclass(frozen=True)
class _Budget:
    budget: str | float | int = 0.5  # 30%, 0.3, 64MiB, 1.5GB, or a number (chunkc.passes.budget_text)


@register_pass
@dataclass(frozen=True)
class AutoChunk(Pass, SearchKnobs, _Budget):
    """Choose chunk regions under ``budget`` (bytes, or a fraction of the unchunked peak); the
    other options are autochunk's (chunkc.passes.autochunk.SearchKnobs)."""

    name = "autochunk"
    progress: bool = False

    def __post_init__(self):  # the text read once, here: a fraction (float) or bytes (int) from then on
        from .budget_text import parse_budget
        try:
            object.__setattr__(self, "budget", parse_budget(self.budget))
        except ChunkcError as exc:
            raise ChunkcError(f"pass autochunk: {exc}") from None

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        from .autochunk import autochunk
        knobs = {f.name: getattr(self, f.name) for f in dataclasses.fields(SearchKnobs)}
        plan = autochunk(graph, self.budget, sizes=ctx.sizes, **knobs)
        ctx.plan = plan
        return plan.graph
