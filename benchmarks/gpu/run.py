"""Run the prepared GPU benchmark: compile, check, measure, time; write results as it goes.

    python -m benchmarks.gpu.run --out "$OUT"        # on the GPU (under 8 minutes)
    python -m benchmarks.gpu.run --dry-run           # on the CPU, small sizes (about a minute)

Needs only what the GPU machine has: numpy, sympy, torch (2.11 there), CuPy; no
torch.export, no transformers.  For each prepared model (benchmarks/gpu/data) and each
backend (PyTorch on CUDA, CuPy; in the dry run PyTorch on the CPU and NumPy):

* every program (unchunked, one per budget) is compiled and its result compared with the
  unchunked program's;
* its peak is measured with ``chunkc.measure_peak`` (CUDA: the caching allocator's counters;
  CuPy: its pool) after a warm-up call, against ``estimate_memory(..., device="cuda")``;
* the programs are timed in rotating order, each call CUDA-synchronized, after a warm-up
  round: the ratios chunked / unchunked of the same round, their median and range.

``gpu_results.json`` is rewritten after every model and backend, and so is the GPU section
of docs/benchmarks.md (both also copied into ``--out``): a run cut short keeps what it has.
``--time-budget`` (seconds, default 420) stops starting new work once spent.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cases import DATA, MANIFEST

RESULTS_NAME = "gpu_results.json"
DEFAULT_BUDGET_S = 420.0


class Backend:
    """How one backend takes NumPy inputs, synchronizes, and is measured and estimated."""

    def __init__(self, name: str, device: str, label: str, to_device: Callable, sync: Callable,
                 release: Callable, estimate_device: str):
        self.name, self.device, self.label = name, device, label
        self.to_device, self.sync, self.release = to_device, sync, release
        self.estimate_device = estimate_device

    def compile(self, graph, plan):
        import chunkc
        options = {"device": self.device} if self.name == "torch" else {}
        return chunkc.compile(graph, plan, backend=self.name, **options)

    def to_numpy(self, out) -> np.ndarray:
        out = out[0] if isinstance(out, (tuple, list)) else out
        if hasattr(out, "detach"):
            return out.detach().float().cpu().numpy()
        if type(out).__module__.startswith("cupy"):
            return out.get()
        return np.asarray(out)


def backends(dry_run: bool) -> list[Backend]:
    import torch
    if dry_run:
        return [
            Backend("torch", "cpu", "PyTorch (CPU, dry run)", torch.from_numpy, lambda: None, lambda: None, "cpu"),
            Backend("numpy", "cpu", "NumPy (dry run)", lambda a: a, lambda: None, lambda: None, "cpu"),
        ]
    import cupy
    return [
        Backend("torch", "cuda", "PyTorch on CUDA", lambda a: torch.from_numpy(a).cuda(), torch.cuda.synchronize,
                torch.cuda.empty_cache, "cuda"),
        Backend("cupy", "cuda", "CuPy", cupy.asarray, lambda: cupy.cuda.Device().synchronize(),
                lambda: cupy.get_default_memory_pool().free_all_blocks(), "cuda"),
    ]


def machine(dry_run: bool) -> dict:
    import torch
    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "dry_run": dry_run}
    if not dry_run:
        import cupy
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cupy=cupy.__version__)
    return info


def preflight(dry_run: bool) -> str | None:
    """Why the run cannot start here, or None."""
    missing = []
    for name in ("numpy", "sympy", "torch") + (() if dry_run else ("cupy",)):
        try:
            __import__(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        return "missing: " + ", ".join(missing)
    if not dry_run:
        import torch
        if not torch.cuda.is_available():
            return "torch sees no CUDA device (use --dry-run on a CPU)"
        import cupy
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # a CuPy built for another CUDA raises here
            return f"CuPy cannot reach the GPU: {exc}"
    if not MANIFEST.exists():
        return f"{MANIFEST} is missing: run `python -m benchmarks.gpu.prepare` first"
    return None


def make_inputs(spec: dict, sizes: dict[str, int], seed: int = 0) -> list[np.ndarray]:
    from chunkc.ir.sizes import evaluate, parse_size
    rng = np.random.default_rng(seed)
    arrays = []
    for entry in spec["inputs"]:
        shape = tuple(evaluate(parse_size(s) if isinstance(s, str) else s, sizes) for s in entry["shape"])
        if "below" in entry:
            arrays.append(rng.integers(0, entry["below"], size=shape).astype(entry["dtype"]))
        else:
            arrays.append(rng.standard_normal(shape).astype(entry["dtype"]))
    return arrays


class Run:
    """One run: its results, written out after every step, and its time budget."""

    def __init__(self, dry_run: bool, out: Path | None, budget_s: float, rounds: int, doc: Path | None):
        self.dry_run, self.out, self.budget_s, self.rounds, self.doc = dry_run, out, budget_s, rounds, doc
        self.t0 = time.perf_counter()
        self.results: dict[str, Any] = {"machine": machine(dry_run), "started": _utc(), "rounds": rounds,
                                        "command": _command(dry_run), "models": {}, "stopped": None}

    def seconds_left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def save(self) -> None:
        from .report import render, write_section
        self.results["seconds"] = round(time.perf_counter() - self.t0, 1)
        text = json.dumps(self.results, indent=1) + "\n"
        targets = [self.out] if self.out else []
        if not self.dry_run:
            targets.append(DATA.parent)
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / RESULTS_NAME).write_text(text)
        if self.doc is not None:
            write_section(render(self.results), self.doc)
            if self.out:
                shutil.copy(self.doc, self.out / "benchmarks.md")


def _utc() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _command(dry_run: bool) -> str:
    return "python -m benchmarks.gpu.run" + (" --dry-run" if dry_run else " --out \"$OUT\"")


@functools.lru_cache(maxsize=None)
def _load(key: str, files: tuple[str, ...]):
    import chunkc
    folder = DATA / key
    return chunkc.load(folder / "graph.chunkc"), tuple(chunkc.load_plan(folder / f) for f in files)


def load_programs(key: str, spec: dict) -> tuple[Any, dict[str, Any]]:
    """The model's graph and its plans by name ("unchunked": None, "50%": plan, ...), loaded
    once for every backend (parsing a plan's chunk-size expressions takes a second)."""
    planned = [p for p in spec["plans"] if "file" in p]
    graph, plans = _load(key, tuple(p["file"] for p in planned))
    variants: dict[str, Any] = {"unchunked": None}
    variants.update({f"{round(p['budget'] * 100)}%": plan for p, plan in zip(planned, plans)})
    return graph, variants


def run_model(run: Run, key: str, spec: dict, backend: Backend, log) -> dict:
    """Compile, check, measure and time every program of one model on one backend."""
    import chunkc
    from benchmarks.common import ratio, round_robin_times

    size = spec["dry_size"] if run.dry_run else spec["size"]
    sizes = {spec["symbol"]: size // spec.get("size_multiple", 1)}
    graph, variants = load_programs(key, spec)
    arrays = make_inputs(spec, sizes)
    args = [backend.to_device(a) for a in arrays]
    out: dict[str, Any] = {"size": size, "variants": {}}
    fns = {}
    for name, plan in variants.items():
        g = plan.graph if plan is not None else graph
        est = chunkc.estimate_memory(g, plan, sizes=sizes, backend=backend.name, device=backend.estimate_device)
        fns[name] = backend.compile(g, plan)
        out["variants"][name] = {"estimate": est.peak_bytes,
                                 "budget_bytes": plan.budget_bytes if plan is not None else None}
    reference = backend.to_numpy(fns["unchunked"](*args))
    backend.sync()
    scale = float(np.abs(reference).max()) or 1.0
    for name, fn in fns.items():
        entry = out["variants"][name]
        got = backend.to_numpy(fn(*args))  # also the warm-up call of the measurement
        backend.sync()
        entry["max_abs_diff"] = float(np.abs(got - reference).max())
        entry["correct"] = bool(np.allclose(got, reference, rtol=1e-3, atol=1e-3 * scale))
        backend.release()
        entry["measured"] = chunkc.measure_peak(fn, *args)
        log(f"  {key} {backend.name} {name}: measured {entry['measured']} B, estimated {entry['estimate']} B")
    if run.seconds_left() < 30:
        out["timing"] = "skipped: the time budget ran out"
        return out

    def synced(fn):
        def call(*a):
            result = fn(*a)
            backend.sync()
            return result
        return call

    from chunkc.measure.common import quiet_gc
    gc.collect()
    with quiet_gc():  # no collection inside a timed call
        times = round_robin_times({n: synced(f) for n, f in fns.items()}, tuple(args), rounds=run.rounds, warmup=1,
                                  collect=False)
    for name in fns:
        if name != "unchunked":
            r = ratio(times, "unchunked", name)
            out["variants"][name]["time_ratio"] = {"median": r.median, "low": r.low, "high": r.high}
    out["unchunked_seconds"] = float(np.median(times["unchunked"]))
    del fns, args
    backend.release()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="on the CPU: PyTorch on the CPU and NumPy, small sizes")
    parser.add_argument("--out", type=Path, help="also write the results and the doc here")
    parser.add_argument("--time-budget", type=float, default=DEFAULT_BUDGET_S, help="seconds before stopping")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 7; 2 in a dry run)")
    parser.add_argument("--models", nargs="*", help="some of the prepared models")
    parser.add_argument("--doc", type=Path, help="the benchmarks doc to write (default docs/benchmarks.md; a dry "
                                                 "run writes none unless given)")
    args = parser.parse_args(argv)
    reason = preflight(args.dry_run)
    if reason:
        print(f"benchmarks.gpu.run: cannot run: {reason}", file=sys.stderr)
        return 2
    from .report import DOC
    doc = args.doc if args.doc is not None else (None if args.dry_run else DOC)
    run = Run(args.dry_run, args.out, args.time_budget, args.rounds or (2 if args.dry_run else 7), doc)
    manifest = json.loads(MANIFEST.read_text())
    run.results["prepared"] = {"when": manifest.get("prepared"), "torch": manifest.get("torch")}

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - run.t0:6.1f} s] {message}", file=sys.stderr, flush=True)

    log(f"machine: {run.results['machine']}")
    for key, spec in manifest["models"].items():
        if args.models and key not in args.models:
            continue
        model = run.results["models"].setdefault(key, {"label": spec["label"], "config": spec["config"],
                                                       "size_name": spec["size_name"], "backends": {},
                                                       "unplanned": {f"{round(p['budget'] * 100)}%": p["error"]
                                                                     for p in spec["plans"] if "error" in p}})
        for backend in backends(args.dry_run):
            if run.seconds_left() <= 0:
                run.results["stopped"] = f"time budget of {args.time_budget:.0f} s spent before {key} on {backend.name}"
                log(run.results["stopped"])
                run.save()
                return 1
            try:
                model["backends"][backend.label] = run_model(run, key, spec, backend, log)
            except Exception as exc:  # record it and go on: one failure must not lose the rest
                model["backends"][backend.label] = {"error": f"{type(exc).__name__}: {exc}",
                                                    "traceback": traceback.format_exc(limit=6)}
                log(f"  {key} on {backend.label} failed: {type(exc).__name__}: {exc}")
                backend.release()
            run.save()
    run.results["finished"] = _utc()
    run.save()
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
