"""The memory timeline as a picture: live bytes per schedule step, before and
after chunking, with each peak marked and each chunk region shaded.

Drawn with Matplotlib's object API on an Agg canvas, so it needs no display and
leaves pyplot's global state alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..ir.graph import Graph
from ..passes.memory import MemoryReport, estimate_memory
from ..passes.plan import Plan

_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("B", 1))
_BEFORE, _AFTER, _REGION, _BUDGET = "#7f7f7f", "#1f77b4", "#ffbf7f", "#d62728"


def plot_memory(graph: Graph, plan: Plan | None = None, sizes: Mapping[str, int] | None = None,
                path: str | Path = "memory.png", title: str | None = None, dpi: int = 120,
                backend: str | None = None) -> Path:
    """Write the memory timeline of ``graph`` (and of ``plan``, when given) as a PNG; return its path.

    The curves are the bytes live during each node (its outputs and workspace
    included); the shaded area under each is what stays live after the node.
    ``backend`` is passed to :func:`~chunkc.passes.memory.estimate_memory`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if sizes is None and plan is not None:
        sizes = plan.sizes
    before = estimate_memory(graph, sizes=sizes, backend=backend)
    after = estimate_memory(plan.graph, plan, sizes=sizes, backend=backend) if plan is not None else None
    top = max(before.peak_bytes, after.peak_bytes if after else 0, (plan.budget_bytes or 0) if plan else 0)
    unit, scale = next((u, s) for u, s in _UNITS if top >= s or s == 1)

    fig = Figure(figsize=(11, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _curve(ax, before, scale, unit, _BEFORE, "unchunked")
    if after is not None:
        for k, (start, end) in enumerate(after.regions):
            ax.axvspan(start - 0.5, end + 0.5, color=_REGION, alpha=0.35, lw=0,
                       label="chunk region" if k == 0 else None)
        _curve(ax, after, scale, unit, _AFTER, f"chunked ({len(after.regions)} region{'s' if len(after.regions) != 1 else ''})")
        if plan.budget_bytes:
            ax.axhline(plan.budget_bytes / scale, color=_BUDGET, ls="--", lw=1,
                       label=f"budget {plan.budget_bytes / scale:.3g} {unit}")
    ax.set_xlim(-0.5, len(before.timeline) - 0.5)
    ax.set_ylim(0, top / scale * 1.25 if top else 1)
    ax.set_xlabel("schedule step (node)")
    ax.set_ylabel(f"activation memory ({unit})")
    _ticks(ax, before)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    given = ", ".join(f"{k}={v}" for k, v in sorted(before.sizes.items()))
    ax.set_title(title or f"memory timeline of {graph.name}" + (f" ({given})" if given else ""))
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def _curve(ax, rep: MemoryReport, scale: float, unit: str, color: str, label: str) -> None:
    steps = range(len(rep.timeline))
    during = [e.peak_bytes / scale for e in rep.timeline]
    live = [e.live_bytes / scale for e in rep.timeline]
    ax.fill_between(steps, live, step="mid", color=color, alpha=0.15, lw=0)
    ax.step(steps, during, where="mid", color=color, lw=1.6, label=f"{label}: peak {rep.peak_bytes / scale:.3g} {unit}")
    y = rep.peak_bytes / scale
    ax.plot([rep.peak_index], [y], marker="v", color=color, ms=9, ls="none")
    ax.annotate(f"peak {y:.3g} {unit} at {rep.peak_node}", (rep.peak_index, y), textcoords="offset points",
                xytext=(8, 4), fontsize=8, color=color)


def _ticks(ax, rep: MemoryReport) -> None:
    n = len(rep.timeline)
    if n <= 40:  # few nodes: name each step
        ax.set_xticks(range(n))
        ax.set_xticklabels([e.node for e in rep.timeline], rotation=70, fontsize=7, ha="right")


__all__ = ["plot_memory"]
