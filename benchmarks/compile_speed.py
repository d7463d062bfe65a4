"""Compiler speed: chunkc's search time against the number of GPT-2 layers, 1 to 48.

GPT-2 with GPT-2 small's width (n_embd 768, 12 heads) is imported at each depth (import time
reported on its own, beside ``torch.export.export`` alone on the same module), then
``chunkc.autochunk`` plans a 20% budget at L = 1024 (search and selection, including its own
estimate and final check; median of a few runs).  Targets: the 48-layer search at most 2.2
times the 24-layer one (linear growth), 24 layers under 5 s, and the 24-layer import at most
1.5 times torch.export alone.

    python -m benchmarks compile-speed
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

from . import common as C

NAME = "compile-speed"
LAYERS = (1, 2, 4, 8, 12, 24, 48)
QUICK_LAYERS = (1, 2, 4)
LENGTH = 1024
BUDGET = 0.2
REPEATS = 3


@dataclass
class Row:
    layers: int
    nodes: int = 0
    import_s: float = 0.0
    export_s: float = 0.0  # torch.export.export alone, timed just before the import
    search_s: list[float] | None = None
    regions: int = 0
    estimate: str = ""
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.search_s) if self.search_s else None


def measure(layers: int, repeats: int) -> Row:
    import chunkc
    from chunkc.zoo import gpt2
    row = Row(layers)
    case = gpt2(n_layer=layers, n_embd=768, n_head=12)
    row.export_s = export_seconds(case)
    t0 = time.perf_counter()
    graph = C.import_case(case)
    row.import_s = time.perf_counter() - t0
    row.nodes = len(graph.nodes)
    del case
    gc.collect()
    sizes = {next(iter(graph.symbols())): LENGTH}
    row.search_s = []
    for _ in range(repeats):
        t0 = time.process_time()  # the search is one Python thread: its CPU time is its time on an idle machine
        plan = chunkc.autochunk(graph, BUDGET, sizes=sizes, backend="torch", progress=False)
        row.search_s.append(time.process_time() - t0)
    row.regions = len(plan.regions)
    row.estimate = (f"{C.mib(plan.unchunked_peak_bytes)} → {C.mib(plan.estimated_peak_bytes)} "
                    f"(budget {C.mib(plan.budget_bytes)})")
    return row


def export_seconds(case) -> float:
    """Seconds of ``torch.export.export`` alone on the case, as ``chunkc.from_torch`` calls it."""
    import torch
    t0 = time.perf_counter()
    torch.export.export(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes(), strict=False)
    seconds = time.perf_counter() - t0
    gc.collect()
    return seconds


def _plot(rows: list[Row], settings: C.Settings) -> str | None:
    done = [r for r in rows if r.median]
    if len(done) < 2:
        return None
    fig, ax = C.new_figure(6.0, 3.8)
    xs = [r.layers for r in done]
    ax.plot(xs, [r.median for r in done], "o-", label="autochunk (search + selection)")
    ax.plot(xs, [r.import_s for r in done], "s--", color="tab:grey", label="import (torch.export + frontend)")
    anchor = next((r for r in done if r.layers == 24), done[-1])
    ax.plot(xs, [anchor.median * x / anchor.layers for x in xs], ":", color="tab:green",
            label=f"linear in layers (through {anchor.layers})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_xlabel("GPT-2 layers (n_embd 768, 12 heads)")
    ax.set_ylabel("seconds")
    ax.set_title(f"Compiler speed, L = {LENGTH}, {BUDGET:.0%} budget")
    ax.legend(fontsize=7)
    return C.save_figure(fig, "compile_speed", settings)


def render(rows: list[Row], repeats: int, plot: str | None) -> str:
    lines = ["## Compiler speed", "",
             f"GPT-2 at GPT-2 small's width (transformers GPT2Model, n_embd 768, 12 heads, vocabulary 1000), "
             f"imported with a symbolic length, planned by `chunkc.autochunk(graph, {BUDGET}, "
             f"sizes={{L: {LENGTH}}}, backend='torch')` — a budget of {BUDGET:.0%} of the estimated unchunked "
             f"peak.  *search*: CPU time of `autochunk` (its estimate, search, selection, reorder and final "
             f"check; one Python thread, so its wall time on an idle machine, and not inflated when other jobs "
             f"share the cores), median of {repeats} runs (all runs in brackets); *import*: `chunkc.from_torch` "
             "(torch.export and the frontend), one run; *export*: `torch.export.export` alone on the same module, "
             "run just before it.  These are absolute seconds on the machine below.", ""]
    if plot:
        lines += [f"![compiler speed]({plot})", ""]
    table = []
    for r in rows:
        if r.error:
            table.append([r.layers, "–", "–", "–", "–", r.error, "–", "–"])
            continue
        runs = ", ".join(f"{s:.2f}" for s in r.search_s)
        table.append([r.layers, r.nodes, f"{r.export_s:.1f}", f"{r.import_s:.1f}", f"{r.import_s / r.export_s:.2f}",
                      f"**{r.median:.2f}** ({runs})", r.regions, r.estimate])
    lines += C.table(["layers", "nodes", "export s", "import s", "import / export", "search s", "regions",
                      "estimated peak MiB"], table)
    by = {r.layers: r for r in rows if r.median}
    checks = []
    if 24 in by and 48 in by:
        q = by[48].median / by[24].median
        checks.append(f"48 / 24 layers: {q:.2f} (target ≤ 2.2: {'met' if q <= 2.2 else '**not met**'})")
    if 24 in by:
        checks.append(f"24 layers: {by[24].median:.2f} s (target < 5 s: {'met' if by[24].median < 5 else '**not met**'})")
    if 24 in by:
        q = by[24].import_s / by[24].export_s
        checks.append(f"24-layer import / torch.export: {q:.2f} (target ≤ 1.5: {'met' if q <= 1.5 else '**not met**'})")
    if checks:
        lines += ["", "Targets: " + "; ".join(checks) + "."]
    return "\n".join(lines + [""])


def run(settings: C.Settings) -> C.SectionResult:
    layers = QUICK_LAYERS if settings.quick else LAYERS
    repeats = 1 if settings.quick else REPEATS
    rows, failures = [], []
    for n in layers:
        try:
            row = measure(n, repeats)
            C.log(f"[{NAME}] {n} layers: {row.nodes} nodes, import {row.import_s:.1f} s, search {row.median:.2f} s")
        except Exception as exc:
            import traceback
            traceback.print_exc()
            row = Row(n, error=C.short_error(exc))
            failures.append(f"{NAME} {n} layers: {row.error}")
        rows.append(row)
        gc.collect()
    return C.SectionResult(render(rows, repeats, _plot(rows, settings)), failures)
