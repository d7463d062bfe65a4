"""What the speed-model sections (cost-model, regret, inductor) run on: a graph with its
inputs, sizes and, for zoo models, the eager module.  The benchmark models of the
memory-speed section at its sizes by default; tests pass small graphs of their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from . import common as C


@dataclass
class Subject:
    key: str
    label: str  # for tables: the model and its size
    graph: Any  # chunkc.Graph, symbolic sizes
    args: tuple  # torch tensors
    sizes: Mapping[str, int]
    module: Any = None  # the eager torch module, for zoo models

    def budget_label(self, fraction: float) -> str:
        return f"{self.label}, {C.pct(fraction)}"


def zoo_subjects(settings: C.Settings, models: list[str] | None = None) -> list[Subject]:
    """The memory-speed section's models at its sizes (quick: its quick sizes)."""
    from .memory_speed import SIZES
    out = []
    for key, model in C.bench_models().items():
        if models and key not in models:
            continue
        size = SIZES[key][1 if settings.quick else 0]
        case = model.case()
        graph = C.import_case(case)
        args = tuple(case.make_inputs(size))
        out.append(Subject(key, f"{model.label}, {model.size_name} = {size}", graph, args,
                           graph.bind_sizes(args), case.module))
        C.log(f"[{key}] imported {len(graph.nodes)} nodes at {model.size_name} = {size}")
    return out


def plan_key(plan) -> tuple:
    """What makes two plans the same program: their regions' nodes and chunk sizes."""
    from chunkc.ir.sizes import evaluate
    return tuple((tuple(r.nodes), evaluate(r.chunk_size, plan.sizes)) for r in plan.regions) + (
        len(plan.graph.nodes),)
