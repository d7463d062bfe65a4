"""A readable plan report: each region's span (in nodes and in the model's modules and
source lines), axes, chunk size, memory and cost."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir.registry import barrier_dims
from ..ir.sizes import evaluate, format_size
from ..ir.source import span

if TYPE_CHECKING:  # Plan.__str__ is this report
    from .plan import Plan


SHOWN = 6  # chunked values listed per region
LONG = 40  # a chunk-size expression longer than this is summarized


def _chunk_text(region, sizes) -> str:
    """``chunk 32 of L`` or, for a run-time expression, its value here and what it depends on."""
    chunk, extent = region.chunk_size, format_size(region.extent)
    if isinstance(chunk, int):
        return f"chunk {chunk} of {extent}"
    text = format_size(chunk)
    try:
        value = evaluate(chunk, sizes)
    except (KeyError, ValueError):
        return f"chunk {text} of {extent}"
    if len(text) > LONG:
        symbols = ", ".join(sorted(x.name for x in chunk.free_symbols))
        return f"chunk {value} of {extent} here, computed at run time from {symbols}"
    return f"chunk {text} (= {value}) of {extent}"


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.2f} MiB"


def plan_report(plan: Plan) -> str:
    lines = [f"# chunk plan for graph {plan.graph.name} at sizes "
             f"{', '.join(f'{k}={v}' for k, v in sorted(plan.sizes.items())) or '(static)'}, "
             f"for the {plan.backend} backend" + (f" on {plan.device}" if plan.device != "cpu" else "")]
    lines.append(f"#   budget {_mib(plan.budget_bytes)}; unchunked peak {_mib(plan.unchunked_peak_bytes)}; "
                 f"estimated peak {_mib(plan.estimated_peak_bytes)}"
                 + (f"; estimated time x{plan.estimated_slowdown:.3f}" if plan.estimated_slowdown else ""))
    if not plan.regions:
        lines.append("#   no regions")
    by_name = {n.name: n for n in plan.graph.nodes}
    for k, region in enumerate(plan.regions):
        stats = plan.stats[k] if k < len(plan.stats) else None
        lines.append(f"# region {k}: {len(region.nodes)} nodes {region.nodes[0]} .. {region.nodes[-1]}; "
                     f"{_chunk_text(region, plan.sizes)}")
        in_model = span(by_name[name] for name in region.nodes if name in by_name)
        if in_model:
            lines.append(f"#   in the model: {in_model}")
        if stats is not None:
            lines.append(f"#   memory in span {_mib(stats.peak_before)} -> {_mib(stats.peak_after)}; "
                         f"{stats.iterations} iterations; estimated overhead {stats.extra_seconds * 1e3:.2f} ms")
            if stats.hoisted:
                lines.append(f"#   hoisted before the loop: {', '.join(stats.hoisted)}")
        axes = [f"%{c.value}[{c.axis}]" + (f"x{c.unit}" if c.unit != 1 else "")
                + (f" halo {c.halo_lo}:{c.halo_hi}" if c.halo_lo or c.halo_hi else "") for c in region.chunked]
        more = f", and {len(axes) - SHOWN} more" if len(axes) > SHOWN else ""
        lines.append(f"#   chunked values ({len(axes)}): {', '.join(axes[:SHOWN])}{more}")
        lines.append(f"#   outputs: {', '.join('%' + o for o in region.outputs)}")
        if region.accumulators:
            lines.append(f"#   accumulated over the chunk axis (whole, merged each iteration): "
                         f"{', '.join('%' + o for o in region.accumulators)}")
        for j, q in enumerate(region.inner):  # loops run inside each iteration (chunkc.passes.nest)
            sliced = ", ".join(f"%{c.value}[{c.axis}]" for c in q.chunked[:SHOWN]) + \
                (f", and {len(q.chunked) - SHOWN} more" if len(q.chunked) > SHOWN else "")
            stop = f", stopping at {format_size(q.stop_at)}" if q.stop_at is not None else ""
            lines.append(f"#   inner loop {j}: {len(q.nodes)} nodes {q.nodes[0]} .. {q.nodes[-1]}; "
                         f"{_chunk_text(q, plan.sizes)}{stop}; slices {sliced}; accumulates "
                         f"{', '.join('%' + o for o in q.accumulators)}")
    barriers = [f"{n.name} ({n.attrs.get('target', n.op.name)})" for n in plan.graph.nodes if n.op.dims is barrier_dims]
    if barriers:  # opaque nodes: regions never cross them
        more = f", and {len(barriers) - 8} more" if len(barriers) > 8 else ""
        lines.append(f"# barriers (ops chunkc does not model): {', '.join(barriers[:8])}{more}")
    for note in plan.notes:
        lines.append(f"# note: {note}")
    return "\n".join(lines) + "\n"
