"""How close is the memory estimate to the measured peak?

For every model of the zoo, at two sizes of its dynamic dimension, unchunked and
chunked (autochunk at half the unchunked peak), this compares
``chunkc.estimate_memory`` with ``chunkc.measure_peak`` of the code
``chunkc.compile`` generates, on the NumPy and on the PyTorch backend.  It also
times the estimate on a 24-layer GPT-2-sized graph.

    python -m benchmarks.memory_accuracy            # writes its section of docs/benchmarks.md
    python -m benchmarks.memory_accuracy --models transformer,gpt2 --print

The section sits between ``<!-- memory-accuracy:start -->`` and
``<!-- memory-accuracy:end -->``; the rest of docs/benchmarks.md is kept.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import chunkc
from chunkc.ir.sizes import evaluate
from chunkc.passes.memory import MemoryModel, estimate_memory, format_bytes

START, END = "<!-- memory-accuracy:start -->", "<!-- memory-accuracy:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BACKENDS = ("numpy", "torch")
BUDGET = 0.5  # chunked rows: autochunk to half the unchunked estimated peak


def _zoo() -> dict[str, Callable]:
    """Factories of the models measured, with their two sizes (small enough for a 2-core CPU)."""
    from chunkc import zoo
    return {
        "transformer": (zoo.transformer, (512, 1024)),
        "gpt2": (zoo.gpt2, (512, 1024)),
        "vit": (zoo.vit, (256, 384)),
        "unet": (zoo.unet, (32, 64)),
        "evoformer": (zoo.evoformer, (64, 128)),
    }


@dataclass
class Row:
    model: str
    size: int
    plan: str
    estimate: dict[str, int | None] = field(default_factory=dict)  # backend -> bytes
    measured: dict[str, int | None] = field(default_factory=dict)
    note: str = ""

    def error(self, backend: str) -> float | None:
        m, e = self.measured.get(backend), self.estimate.get(backend)
        if m is None or e is None or m == 0:
            return None
        return e / m - 1.0


def _measure(graph, plan, backend: str, inputs: tuple) -> int:
    fn = chunkc.compile(graph, plan, backend=backend)
    if backend == "torch":
        import torch
        args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs)
    else:
        args = inputs
    fn(*args)  # warm up: first-call imports and caches are not activation memory
    return chunkc.measure_peak(fn, *args)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    return text if len(text) < 160 else text[:157] + "..."


def measure_model(name: str, factory: Callable, sizes: tuple[int, ...], budget: float) -> list[Row]:
    rows: list[Row] = []
    case = factory()
    try:
        graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    except Exception as exc:  # a model the frontend cannot import yet: say so in the table
        return [Row(case.name, s, "-", note=f"import failed: {_short(exc)}") for s in sizes]
    for size in sizes:
        inputs = tuple(t.detach().numpy() for t in case.make_inputs(size))
        bindings = graph.bind_sizes(inputs)
        plans: list[tuple[str, object]] = [("unchunked", None)]
        try:
            plan = chunkc.autochunk(graph, budget, sizes=bindings)
            chunks = ", ".join(f"{evaluate(r.chunk_size, bindings)}/{evaluate(r.extent, bindings)}" for r in plan.regions)
            plans.append((f"chunked: {len(plan.regions)} region(s), chunks {chunks}", plan))
        except Exception as exc:
            rows.append(Row(case.name, size, f"chunked at {budget:.0%}", note=f"autochunk failed: {_short(exc)}"))
        for label, plan in plans:
            row = Row(case.name, size, label)
            notes = []
            for backend in BACKENDS:
                try:
                    row.estimate[backend] = (estimate_memory(graph, sizes=bindings, backend=backend) if plan is None else
                                             estimate_memory(plan.graph, plan, sizes=bindings, backend=backend)).peak_bytes
                except Exception as exc:
                    notes.append(f"{backend} estimate: {_short(exc)}")
                try:
                    row.measured[backend] = _measure(graph, plan, backend, inputs)
                except Exception as exc:
                    notes.append(f"{backend}: {_short(exc)}")
            row.note = "; ".join(notes)
            rows.append(row)
    return rows


def time_gpt2_estimate() -> str:
    """Time the estimate on a 24-layer GPT-2-sized export (n_embd 768, 12 heads)."""
    from chunkc import zoo
    case = zoo.gpt2(n_layer=24, n_embd=768, n_head=12)
    graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    bindings = graph.bind_sizes(tuple(t.numpy() for t in case.make_inputs(1024)))
    t0 = time.perf_counter()
    report = chunkc.estimate_memory(graph, sizes=bindings)
    first = time.perf_counter() - t0
    model = MemoryModel(graph, bindings)
    t0 = time.perf_counter()
    for _ in range(20):
        model.peak()
    again = (time.perf_counter() - t0) / 20
    return (f"24-layer GPT-2-sized graph ({len(graph.nodes)} nodes, L=1024, estimated peak "
            f"{format_bytes(report.peak_bytes)}): `estimate_memory` {first * 1e3:.0f} ms; "
            f"`MemoryModel.peak()` on the built model {again * 1e3:.1f} ms per call.")


def _cell(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.2f}"


def _err(e: float | None) -> str:
    return "-" if e is None else f"{e:+.1%}"


def render(rows: list[Row], timing: str | None, command: str) -> str:
    lines = [START, "## Memory estimate vs measured peak", "",
             f"`{command}` — {datetime.date.today().isoformat()}, {platform.machine()}, "
             f"Python {platform.python_version()}, NumPy {np.__version__}"
             + _torch_version() + ".", "",
             "Activation memory: the peak of bytes allocated during one call, inputs and weights excluded, "
             "outputs included. *Estimate*: `estimate_memory(..., backend=)` (each backend's kernels "
             "declare their own workspace); *measured*: `chunkc.measure_peak` "
             "around the code `chunkc.compile` generates (NumPy through tracemalloc, PyTorch CPU through "
             "the allocator's events, kernel temporaries included; see docs/memory.md). Chunked rows use `chunkc.autochunk(graph, "
             f"{BUDGET})`. Error = estimate / measured − 1; the bar is ±5%.", "",
             "| model | size | plan | NumPy estimate MiB | NumPy measured MiB | error "
             "| PyTorch estimate MiB | PyTorch measured MiB | error | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e, m = r.estimate, r.measured
        lines.append(f"| {r.model} | {r.size} | {r.plan} | {_cell(e.get('numpy'))} | {_cell(m.get('numpy'))} | "
                     f"{_err(r.error('numpy'))} | {_cell(e.get('torch'))} | {_cell(m.get('torch'))} | "
                     f"{_err(r.error('torch'))} | {r.note.strip()} |")
    errors = [abs(e) for r in rows for b in BACKENDS if (e := r.error(b)) is not None]
    if errors:
        within = sum(e <= 0.05 for e in errors)
        lines += ["", f"{within} of {len(errors)} measurements within 5%; largest error {max(errors):.1%}."]
    if timing:
        lines += ["", timing]
    lines.append(END)
    return "\n".join(lines)


def _torch_version() -> str:
    try:
        import torch
        return f", PyTorch {torch.__version__}"
    except ImportError:
        return ""


def write_section(section: str, path: Path = DOC) -> None:
    """Replace the section between the markers, keeping everything else."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="comma-separated subset of: " + ", ".join(_zoo()))
    parser.add_argument("--budget", type=float, default=BUDGET, help="autochunk budget for the chunked rows")
    parser.add_argument("--no-timing", action="store_true", help="skip timing the 24-layer GPT-2 estimate")
    parser.add_argument("--print", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    args = parser.parse_args(argv)
    zoo = _zoo()
    names = [n for n in args.models.split(",") if n] or list(zoo)
    unknown = sorted(set(names) - set(zoo))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(zoo)}")
    rows: list[Row] = []
    for name in names:
        factory, sizes = zoo[name]
        print(f"{name} ...", file=sys.stderr, flush=True)
        try:
            rows += measure_model(name, factory, sizes, args.budget)
        except Exception as exc:
            traceback.print_exc()
            rows.append(Row(name, 0, "-", note=f"failed: {_short(exc)}"))
    timing = None
    if not args.no_timing:
        try:
            timing = time_gpt2_estimate()
        except Exception as exc:
            timing = f"Timing the 24-layer GPT-2 estimate failed: {_short(exc)}"
    command = "python -m benchmarks.memory_accuracy" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    section = render(rows, timing, command.strip())
    if args.print:
        print(section)
    else:
        write_section(section)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
