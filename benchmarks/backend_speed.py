"""Speed of the generated PyTorch code, CPU, interleaved A/B timing.

Two questions, on models of the zoo (chunkc.zoo):

1. Does the unchunked generated program run as fast as eager PyTorch?
   A = the eager module, B = ``chunkc.compile(graph, backend="torch")``.
2. What does chunking cost?  A = the unchunked generated program, B = the
   program chunked by ``chunkc.autochunk`` at a budget of 20% (>= 80% less
   activation memory) and 50% of the unchunked estimated peak.

Timing is interleaved (A B A B ...), each pair after a warm-up, and the reported
ratio is the median of the per-pair ratios B/A, so that drift of the machine
(other processes, frequency) hits both sides alike.  Memory is measured with
``chunkc.measure_peak`` (activation bytes of one call).

    python -m benchmarks.backend_speed            # writes its section of docs/benchmarks.md
    python -m benchmarks.backend_speed --quick --print

The section sits between ``<!-- backend-speed:start -->`` and
``<!-- backend-speed:end -->``; the rest of docs/benchmarks.md is kept.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import chunkc
from chunkc.backends import compile as compile_graph
from chunkc.passes.memory import format_bytes

START, END = "<!-- backend-speed:start -->", "<!-- backend-speed:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass
class Row:
    question: str
    model: str
    size: int
    a: str
    b: str
    ratio: float  # median of B/A over the pairs
    spread: tuple[float, float]  # (min, max) of B/A
    a_seconds: float
    b_seconds: float
    memory: str = ""
    note: str = ""


def _time_once(fn: Callable, args: tuple) -> float:
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args)
    t = time.perf_counter() - t0
    del out
    return t


def interleaved(a: Callable, b: Callable, args: tuple, pairs: int, warmup: int = 1) -> tuple[float, tuple, float, float]:
    """Median and range of t(b)/t(a) over ``pairs`` interleaved runs, and the median times."""
    for _ in range(warmup):
        _time_once(a, args)
        _time_once(b, args)
    ratios, ta, tb = [], [], []
    for k in range(pairs):
        # alternate which side goes first, so that neither always runs on a warmer cache
        if k % 2 == 0:
            x, y = _time_once(a, args), _time_once(b, args)
        else:
            y, x = _time_once(b, args), _time_once(a, args)
        ta.append(x)
        tb.append(y)
        ratios.append(y / x)
    return statistics.median(ratios), (min(ratios), max(ratios)), statistics.median(ta), statistics.median(tb)


def _eager(module: torch.nn.Module) -> Callable:
    def run(*args):
        with torch.inference_mode():
            return module(*args)
    return run


def _models(quick: bool):
    from chunkc import zoo
    if quick:
        return {"transformer": (zoo.transformer, 512, 1024), "gpt2": (zoo.gpt2, 512, 1024),
                "evoformer": (zoo.evoformer, 64, 96)}
    # (factory, size for question 1, size for question 2)
    return {"transformer": (zoo.transformer, 2048, 4096), "gpt2": (zoo.gpt2, 2048, 4096),
            "evoformer": (zoo.evoformer, 128, 256)}


def run(quick: bool = False, pairs: int = 7, models: list[str] | None = None) -> list[Row]:
    torch.manual_seed(0)
    rows: list[Row] = []
    for name, (factory, size1, size2) in _models(quick).items():
        if models and name not in models:
            continue
        case = factory()
        graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
        plain = compile_graph(graph, None, "torch")
        eager = _eager(case.module)

        args = case.make_inputs(size1)
        ratio, spread, ta, tb = interleaved(eager, plain, args, pairs)
        rows.append(Row("generated vs eager", name, size1, "eager", "generated", ratio, spread, ta, tb))
        print(f"{name} L={size1}: generated/eager {ratio:.3f} ({ta:.3f}s vs {tb:.3f}s)", file=sys.stderr)

        if name not in ("gpt2", "evoformer", "transformer"):
            continue
        args = case.make_inputs(size2)
        sizes = graph.bind_sizes(args)
        peak_plain = chunkc.measure_peak(plain, *args)
        for budget in (0.2, 0.5):
            try:
                plan = chunkc.autochunk(graph, budget, sizes=sizes, progress=False)
            except chunkc.ChunkcError as exc:
                rows.append(Row(f"chunked at {budget:.0%}", name, size2, "unchunked", "chunked", float("nan"),
                                (float("nan"),) * 2, 0, 0, note=f"no plan: {str(exc).splitlines()[0][:120]}"))
                continue
            chunked = compile_graph(graph, plan, "torch")
            peak = chunkc.measure_peak(chunked, *args)
            ratio, spread, ta, tb = interleaved(plain, chunked, args, pairs)
            memory = (f"{format_bytes(peak_plain)} -> {format_bytes(peak)} "
                      f"({1 - peak / peak_plain:.0%} less; estimate {format_bytes(plan.estimated_peak_bytes)})")
            rows.append(Row(f"chunked at {budget:.0%}", name, size2, "unchunked", "chunked", ratio, spread, ta, tb,
                            memory=memory, note=f"{len(plan.regions)} region(s)"))
            print(f"{name} L={size2} budget {budget}: chunked/unchunked {ratio:.3f}; {memory}", file=sys.stderr)
        del plain, graph
        gc.collect()
    return rows


def render(rows: list[Row], command: str, load: tuple[float, float]) -> str:
    date = datetime.date.today().isoformat()
    lines = [START, "", "## Speed of the generated PyTorch code (CPU)", "",
             f"`{command}` on {date}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} intra-op thread(s); load average {load[0]:.1f} before and {load[1]:.1f} after the run "
             f"on {os.cpu_count()} cores (other work on the machine widens the ranges). Ratios are medians of "
             "interleaved A/B pairs (B/A; below 1 means B is faster), with their range.", "",
             "| question | model | size | B/A (median) | range | A s | B s | activation memory | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.question}: {r.b} / {r.a} | {r.model} | {r.size} | {r.ratio:.3f} | "
                     f"{r.spread[0]:.3f}-{r.spread[1]:.3f} | {r.a_seconds:.3f} | {r.b_seconds:.3f} | {r.memory} | "
                     f"{r.note} |")
    lines += ["", END]
    return "\n".join(lines)


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace the section between the markers (or append it), keeping the rest of the file."""
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        tail = rest.split(END, 1)[1]
        new = head + text + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--models", help="comma-separated subset: transformer,gpt2,evoformer")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's); 1 resists other load on a shared machine")
    parser.add_argument("--print", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = run(args.quick, args.pairs, args.models.split(",") if args.models else None)
    load = (load_before, os.getloadavg()[0])
    command = "python -m benchmarks.backend_speed" + (" --quick" if args.quick else "") + \
        (f" --pairs {args.pairs}" if args.pairs != 7 else "") + (f" --models {args.models}" if args.models else "") + \
        (f" --threads {args.threads}" if args.threads else "")
    text = render(rows, command, load)
    if args.print:
        print(text)
    else:
        write_section(text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
