"""Layout views emitted inside the chunk body that reads them (the torch backend's regions).

A view that only a region reads — a key's ``permute`` to ``[B, H, D, L]``, the
``reshape``/``permute`` that splits a projection into heads — is a step of the
schedule before the loop, so the chunk body, compiled by itself under
``torch.compile``, receives it already transposed: Inductor then no longer sees
``matmul(q, k.transpose(-2, -1))``, its attention patterns (matmul, scale, softmax,
matmul -> one fused attention kernel) do not match, and the compiled chunked program
runs the unfused attention while the compiled unchunked one runs the fused kernel.
Emitted inside the body instead, the views are part of each chunk's captured graph.

A view costs no memory and (nearly) no time, and its base stays alive through the
loop either way (the view shares its storage), so the estimator's peak is unchanged;
only the top-level ``del`` of the base moves to after the loop, where the view's was.
Whether a node's output is a view is the estimator's answer
(:meth:`chunkc.passes.memory.MemoryModel.makes_view`, on the backend's layouts): a
``reshape`` of an elementwise result over permuted heads copies, and moved into the loop
it would copy its whole input at every chunk while that input stays alive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Collection, Mapping

from ..errors import ChunkcError
from ..ir.graph import Node, Value
from ..ir.liveness import deaths
from ..passes.plan_index import PROBE_SIZE, PlanIndex, RegionView


@dataclass
class RegionViews:
    """Which views move into which region, and the top-level deaths that follow."""

    into: dict[int, list[Node]] = field(default_factory=dict)  # region index -> views, in schedule order
    moved: set[Node] = field(default_factory=set)

    @classmethod
    def choose(cls, index: PlanIndex, accepts: Callable[[RegionView], bool], backend: str,
               keep: Collection[Value] = (), sizes: Mapping[str, int] | None = None) -> "RegionViews":
        """For each region that ``accepts``, the views (nodes whose output is a view of their
        input 0 on ``backend``'s layouts at ``sizes``, the plan's by default) whose every reader
        is a node of the region or another such view, that the region reads whole (never
        sliced) and that are not in ``keep`` (graph outputs)."""
        from ..passes.memory import MemoryModel  # the estimator's layouts (it imports the backends)

        out = cls()
        plan = index.plan
        if plan is None or not any(accepts(view) for view in index.regions):
            return out
        graph = index.graph
        at = sizes if sizes is not None else {**{s: PROBE_SIZE for s in graph.symbols()}, **plan.sizes}
        try:
            model = MemoryModel(graph, at, backend=backend, device=plan.device)
        except ChunkcError:  # no layouts to follow at these sizes: every view stays before its loop
            return out
        keep = set(keep)
        for view in index.regions:
            if not accepts(view):
                continue
            inside = set(view.nodes)
            taken: list[Node] = []
            for n in reversed(graph.nodes[:view.start]):  # readers before producers: chains move whole
                if n in index.region_of or n in out.moved or len(n.outputs) != 1:
                    continue
                o = n.outputs[0]
                if (o in keep or o in view.chunk or not o.users or not model.makes_view(o, plan)
                        or any(v in view.chunk for v in n.inputs)
                        or not all(u in inside or u in taken for u in o.users)):
                    continue
                taken.append(n)
            if taken:
                out.into[view.index] = taken[::-1]
                out.moved.update(taken)
        return out

    def top_level_deaths(self, index: PlanIndex, keep: Collection[Value]) -> list[list[Value]]:
        """:meth:`PlanIndex.top_level_deaths` with the moved views emitted in their regions:
        a moved view is no step of its own, and a region reads the inputs of its views."""
        steps = []
        for step in index.steps:
            if isinstance(step, RegionView):
                views = self.into.get(step.index, [])
                local = {n.outputs[0] for n in views}
                reads = [v for v in step.inputs if v not in local]
                reads += [v for n in views for v in n.inputs if v not in local]
                steps.append((reads, step.outputs))
            elif step in self.moved:
                steps.append(((), ()))
            else:
                steps.append((step.inputs, step.outputs))
        return deaths(steps, keep=set(keep))
