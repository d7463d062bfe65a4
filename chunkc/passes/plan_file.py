"""Save and load a chunk plan: one JSON file holding the plan and its graph's text form.

``save_plan(plan, path)`` writes ``path`` (JSON: the regions, sizes, budget, estimates,
notes and region statistics, and ``plan.graph`` in chunkc's text form -- the schedule the
plan is for, reordered or not) and the graph's weights beside it in ``path + ".npz"``, as
``chunkc.save`` does.  Several plans of one model share their weights: pass
``weights=`` the path of a graph saved with ``chunkc.save`` (or another plan file) whose
constants are the plan graph's, and the plan file names that ``.npz`` (relative to itself)
instead of writing its own.

``load_plan(path)`` returns the :class:`~chunkc.passes.plan.Plan` with its graph; sizes
(extents, chunk sizes: ints or expressions of the symbols) go through the IR's size syntax.
Loading never runs code from the file (JSON, ``np.load(allow_pickle=False)``).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ChunkcError
from ..ir.parser import attach_weights, parse_graph
from ..ir.printer import print_graph
from ..ir.serialize import weights_path, write_weights
from ..ir.sizes import format_size, parse_size
from .plan import ChunkedValue, ChunkRegion, Plan, RegionStats

FORMAT = "chunkc-plan"
VERSION = 1


def _size(s) -> str | int:
    return s if isinstance(s, int) else format_size(s)


@functools.lru_cache(maxsize=256)
def _parse_text(text: str):
    return parse_size(text)  # sizes are immutable; the plans of one model repeat their expressions


def _parse(s, where: str):
    if isinstance(s, int) and not isinstance(s, bool):
        return s
    if isinstance(s, str):
        try:
            return _parse_text(s)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise ChunkcError(f"{where}: {s!r} is not a size: {exc}") from None
    raise ChunkcError(f"{where}: expected a size (an int or an expression of the symbols), got {s!r}")


def _region_to_dict(r: ChunkRegion) -> dict:
    out = {
        "nodes": list(r.nodes),
        "chunked": [[c.value, c.axis, c.unit] + ([c.halo_lo, c.halo_hi] if c.halo_lo or c.halo_hi else [])
                    for c in r.chunked],
        "outputs": list(r.outputs),
        "extent": _size(r.extent),
        "chunk_size": _size(r.chunk_size),
        "whole_reads": [[n, i] for n, i in r.whole_reads],
        "reuse": [[o, i] for o, i in r.reuse],
        "accumulators": list(r.accumulators),
    }
    if r.inner:
        out["inner"] = [_region_to_dict(q) for q in r.inner]
    if r.stop_at is not None:
        out["stop_at"] = _size(r.stop_at)
    if r.last_first:
        out["last_first"] = True
    return out


def _region_from_dict(r: dict, where: str) -> ChunkRegion:
    return ChunkRegion(
        nodes=tuple(r["nodes"]), chunked=tuple(ChunkedValue(c[0], *(int(x) for x in c[1:])) for c in r["chunked"]),
        outputs=tuple(r["outputs"]), extent=_parse(r["extent"], where + " extent"),
        chunk_size=_parse(r["chunk_size"], where + " chunk_size"),
        whole_reads=tuple((n, int(i)) for n, i in r.get("whole_reads", [])),
        reuse=tuple((o, i) for o, i in r.get("reuse", [])),
        accumulators=tuple(str(v) for v in r.get("accumulators", [])),
        inner=tuple(_region_from_dict(q, f"{where}, inner loop {j}") for j, q in enumerate(r.get("inner", []))),
        stop_at=_parse(r["stop_at"], where + " stop_at") if "stop_at" in r else None,
        last_first=bool(r.get("last_first", False)))


def plan_to_dict(plan: Plan) -> dict:
    """The plan as JSON-ready data (its graph not included)."""
    return {
        "regions": [_region_to_dict(r) for r in plan.regions],
        "sizes": dict(plan.sizes),
        "budget_bytes": plan.budget_bytes,
        "estimated_peak_bytes": plan.estimated_peak_bytes,
        "unchunked_peak_bytes": plan.unchunked_peak_bytes,
        "estimated_slowdown": plan.estimated_slowdown,
        "notes": list(plan.notes),
        "stats": [{"peak_before": s.peak_before, "peak_after": s.peak_after, "iterations": s.iterations,
                   "extra_seconds": s.extra_seconds, "hoisted": list(s.hoisted)} for s in plan.stats],
        "backend": plan.backend,
        "device": plan.device,
    }


def save_plan(plan: Plan, path, weights=None) -> list[str]:
    """Write ``plan`` (with its graph) to ``path``; returns the files written.  ``weights``: a
    saved graph or plan whose ``.npz`` holds this plan's constants, to share instead of a
    copy (the plan file then names it, relative to its own folder).  Constants the shared file
    lacks (a plan made on a rewritten graph, e.g. a weight split in parts) go into the plan's
    own ``.npz``, which the plan file names as well."""
    path = Path(path)
    data = {"format": FORMAT, "version": VERSION, **plan_to_dict(plan), "graph": print_graph(plan.graph)}
    written = [str(path)]
    own_constants = None  # None: all of them
    if weights is not None:
        shared = weights_path(weights)
        if not shared.exists():
            raise ChunkcError(f"save_plan: the weights file {shared} does not exist; save the graph first")
        constants = [c for c in plan.graph.constants if c.data is not None]
        with np.load(shared, allow_pickle=False) as npz:
            own_constants = {c.name for c in constants if c.name not in npz.files}
            wrong = [c.name for c in constants if c.name in npz.files and tuple(npz[c.name].shape) != tuple(c.data.shape)]
        if wrong or (constants and len(own_constants) == len(constants)):
            missing = wrong or sorted(own_constants)
            raise ChunkcError(f"save_plan: {shared} lacks the plan graph's constants {', '.join(missing[:5])}; "
                              "pass the weights of the graph the plan was made from")
        data["weights"] = os.path.relpath(shared, path.parent)
    if own_constants is None or own_constants:
        own = weights_path(path)
        write_weights(plan.graph, own, only=own_constants)
        data["extra_weights" if weights is not None else "weights"] = own.name
        written.append(str(own))
    path.write_text(json.dumps(data, indent=1) + "\n")
    return written


def load_plan(path) -> Plan:
    """Read a plan written by :func:`save_plan`, with its graph and weights."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ChunkcError(f"load_plan: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ChunkcError(f"load_plan: {path} is not a chunkc plan file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ChunkcError(f"load_plan: {path} has plan format version {data.get('version')!r}; this chunkc reads "
                          f"version {VERSION}")
    graph = parse_graph(data["graph"])
    names = {c.name for c in graph.constants}
    weights = {}
    for key in ("weights", "extra_weights"):
        if key not in data:
            continue
        wpath = path.parent / data[key]
        if not wpath.exists():
            raise ChunkcError(f"load_plan: {path} names the weights file {wpath}, which is missing")
        with np.load(wpath, allow_pickle=False) as npz:
            weights.update({n: npz[n] for n in npz.files if n in names})
    for c in graph.constants:
        if c.dtype.from_ml_dtypes and c.name in weights:
            weights[c.name] = weights[c.name].astype(c.dtype.numpy)
    attach_weights(graph, weights)
    regions = []
    for k, r in enumerate(data["regions"]):
        where = f"load_plan: {path}: region {k}"
        regions.append(_region_from_dict(r, where))
        known = {n.name for n in graph.nodes}
        unknown = [n for n in regions[-1].nodes if n not in known]
        if unknown:
            raise ChunkcError(f"{where} names nodes the graph does not have: {', '.join(unknown[:5])}")
    stats = tuple(RegionStats(s["peak_before"], s["peak_after"], s["iterations"], s["extra_seconds"],
                              tuple(s.get("hoisted", ()))) for s in data.get("stats", []))
    return Plan(graph, tuple(regions), sizes={k: int(v) for k, v in data.get("sizes", {}).items()},
                budget_bytes=data.get("budget_bytes"), estimated_peak_bytes=data.get("estimated_peak_bytes"),
                unchunked_peak_bytes=data.get("unchunked_peak_bytes"),
                estimated_slowdown=data.get("estimated_slowdown"), notes=list(data.get("notes", [])),
                stats=stats, backend=data.get("backend", "torch"), device=data.get("device", "cpu"))


__all__ = ["save_plan", "load_plan", "plan_to_dict"]
