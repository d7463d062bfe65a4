"""Run a plan with the reference interpreter: the ground truth for chunked values.

Independent of the code generators: it walks ``plan.graph``'s schedule, and
for each region loops over chunks, slicing the region inputs the region lists
as chunked, running the loop's nodes with their NumPy references, and writing
the region outputs into buffers allocated in full before the loop; an
accumulator merges each iteration's partial into one whole value instead
(chunkc.passes.accumulate).  An inner loop (ChunkRegion.inner) runs, in each
iteration of its region, where its first node is; its accumulators are values
of that iteration.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..ir.dims import LOOP_START, LOOP_STOP
from ..ir.graph import Value
from ..ir.interpreter import run_node
from ..ir.reference import small_ufunc_buffers
from ..ir.registry import concrete_attrs
from ..ir.sizes import evaluate
from .accumulate import merge_partial
from .halo import computed_rows, needed_rows, rows, take_rows
from .plan import Plan
from .plan_index import PlanIndex, RegionView


def _take(array, axis: int, start: int, stop: int):
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return array[tuple(index)]


def interpret_plan(plan: Plan, *inputs: Any, chunk_sizes: Sequence[int] | None = None, xp=np) -> list:
    """Outputs of ``plan.graph`` run chunked; ``chunk_sizes`` overrides each region's chunk."""
    graph = plan.graph
    index = PlanIndex.build(graph, plan)
    bindings = graph.bind_sizes(inputs)
    env: dict[Value, Any] = {v: xp.asarray(a) for v, a in zip(graph.inputs, inputs)}
    env.update({c: xp.asarray(c.data) for c in graph.constants})
    with small_ufunc_buffers(xp):
        for step, dying in zip(index.steps, index.top_level_deaths()):
            if isinstance(step, RegionView):
                k = step.index
                chunk = chunk_sizes[k] if chunk_sizes is not None else evaluate(step.region.chunk_size, bindings)
                _run_region(step, env, bindings, chunk, xp)
            else:
                for o, r in zip(step.outputs, run_node(step, [env[v] for v in step.inputs], xp, bindings)):
                    env[o] = r
            for v in dying:
                env.pop(v, None)
    return [env[v] for v in graph.outputs]


def loop_attrs(view: RegionView, node, bindings, start: int, stop: int) -> dict:
    """The node's concrete attributes in the iteration over units [start, stop) (``bindings``
    holds the enclosing loop's bounds, for a node of an inner loop)."""
    first, last = view.bounds
    return concrete_attrs(view.loop_attrs(node), {**bindings, first.name: start, last.name: stop})


def _run_region(view: RegionView, env: dict, bindings, chunk: int, xp, frames: tuple = ()) -> dict:
    """Run ``view``'s loop; ``frames``: (view, iteration values) of the loops it runs in.  Its
    buffers and accumulators go into ``env`` (a region of the plan), or are returned (an inner
    loop's accumulators, chunks of the outer iteration)."""
    if view.has_halo:
        return _run_halo_region(view, env, bindings, chunk, xp)
    extent = evaluate(view.region.extent, bindings)
    if view.region.stop_at is not None:  # an inner loop that ends early (keys no query of the chunk attends)
        extent = min(extent, evaluate(view.region.stop_at, bindings))
    # a reused input's array is written in place (when it owns its memory; the reference
    # interpreter's arrays may be views where the generated code's are not)
    buffers = {v: env[view.reuse[v]] if v in view.reuse and _owns(env[view.reuse[v]])
               else xp.empty(v.type.concrete_shape(bindings), dtype=v.dtype.numpy) for v in view.outputs
               if v not in view.accumulators}
    merged: dict[Value, Any] = {v: None for v in view.accumulators}
    full = evaluate(view.region.extent, bindings)
    first, last = view.bounds
    starts = range(0, extent, max(chunk, 1))
    for start in (reversed(starts) if view.region.last_first else starts):
        stop = min(start + chunk, extent)
        local: dict[Value, Any] = {}
        for v in view.sliced:
            c = view.chunk[v]
            base = frames[-1][1][v] if view.slices_outer_chunk(v) else env[v]
            local[v] = _take(base, c.axis, start * c.unit, stop * c.unit)
        here = {**bindings, first.name: start, last.name: stop}
        inside = frames + ((view, local),)
        skip: set = set()
        for node in view.nodes:
            if node in skip:
                continue
            inner = view.inner_at(node)
            if inner is not None:  # its loop, run here; its accumulators are chunks of this iteration
                skip.update(inner.nodes)
                local.update(_run_region(inner, env, here, evaluate(inner.region.chunk_size, here), xp, inside))
                continue
            attrs = loop_attrs(view, node, bindings, start, stop)
            args = [_fetch(inside, env, node, i) for i in range(len(node.inputs))]
            for o, r in zip(node.outputs, run_node(node, args, xp, bindings, attrs)):
                local[o] = r
            for o in node.outputs:
                if o in merged:
                    merged[o] = merge_partial(xp, merged[o], local.pop(o), view.accumulators[o],
                                              (stop - start) / full)
        for v in buffers:  # (after the whole iteration: in place ones must follow every read)
            c = view.chunk[v]
            _take(buffers[v], c.axis, start * c.unit, stop * c.unit)[...] = local[v]
    if frames:
        return merged
    env.update(buffers)
    env.update(merged)
    return {}


def _fetch(frames: tuple, env: dict, node, i: int):
    """What ``node`` reads at input ``i`` in the innermost of ``frames``: a value of the loop
    that makes or slices it there, else the whole value."""
    v = node.inputs[i]
    for view, local in reversed(frames):
        if v.producer in view.node_set or view.reads_slice(node, i):
            return local[v]
    return env[v]


def _owns(array) -> bool:
    return getattr(array, "base", None) is None and getattr(array, "flags", None) is not None \
        and array.flags.writeable


def _run_halo_region(view: RegionView, env: dict, bindings, chunk: int, xp) -> None:
    """A region whose values hold rows beyond their chunk (chunkc.passes.halo): each value
    holds its rows, each node gets the rows of each input its output rows need (padded at
    the border for a window), and outputs are written in their core rows; an accumulator
    merges the core rows of its sliced inputs (RegionView.reads_core)."""
    extent = evaluate(view.region.extent, bindings)
    size = {v: int(v.type.concrete_shape(bindings)[c.axis]) for v, c in view.chunk.items()}
    buffers = {v: xp.empty(v.type.concrete_shape(bindings), dtype=v.dtype.numpy) for v in view.outputs
               if v not in view.accumulators}
    merged: dict[Value, Any] = {v: None for v in view.accumulators}
    for start in range(0, extent, max(chunk, 1)):
        stop = min(start + chunk, extent)
        held = {v: rows(start, stop, c.unit, c.halo_lo, c.halo_hi, size[v]) for v, c in view.chunk.items()}
        local: dict[Value, Any] = {v: _take(env[v], view.chunk[v].axis, *held[v]) for v in view.sliced}
        for node in view.nodes:
            attrs = loop_attrs(view, node, bindings, start, stop)
            out = node.outputs[0] if node.outputs else None
            computed = held.get(out)
            args = []
            for i, v in enumerate(node.inputs):
                if not (view.reads_slice(node, i) or v.producer in view.nodes):
                    args.append(env[v])
                    continue
                source = view.row_source(node, i)
                arg = local[v]
                if view.reads_core(node, i):
                    c = view.chunk[v]
                    arg = take_rows(xp, arg, c.axis, held[v], (start * c.unit, stop * c.unit), size[v])
                if source is not None and out in held:
                    need = needed_rows(source, held[out])
                    if need != held[v]:
                        w = source.window
                        arg = take_rows(xp, arg, view.chunk[v].axis, held[v], need, size[v], w.fill if w else 0.0)
                    computed = computed_rows(source, need, held[out])
                args.append(arg)
            results = run_node(node, args, xp, bindings, attrs)
            for o, r in zip(node.outputs, results):
                local[o] = r
            if out in held and computed != held[out]:  # computed more rows than it holds (a ratio 1/n)
                local[out] = take_rows(xp, local[out], view.chunk[out].axis, computed, held[out], size[out])
            if out in merged:
                merged[out] = merge_partial(xp, merged[out], local.pop(out), view.accumulators[out],
                                            (stop - start) / extent)
        for v in buffers:  # core rows only
            c = view.chunk[v]
            core = (start * c.unit, stop * c.unit)
            _take(buffers[v], c.axis, *core)[...] = take_rows(xp, local[v], c.axis, held[v], core, size[v])
    env.update(buffers)
    env.update(merged)
