"""Against expert chunking: the Evoformer block chunked by hand the way OpenFold does it
(``chunk_layer`` style: attention, transitions and the outer product mean over slices of a
batch-like axis; ``chunkc.zoo.evoformer_chunked(c)``), against chunkc at the same memory.

OpenFold tunes its chunk size by taking the largest one that fits the memory available, so for
a memory limit equal to the hand-chunked peak at chunk size c, c is the tuned choice.  For each
c: measure the hand-chunked peak, plan chunkc with exactly that budget (bytes), and time both
(with the unchunked eager block as the common reference) in rotating rounds.

    python -m benchmarks expert-chunking
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import common as C

NAME = "expert-chunking"
CHUNKS = (1, 2, 4, 8, 16, 32, 64)
QUICK_CHUNKS = (2, 8, 32)
SIZE, QUICK_SIZE = 256, 64
BELOW = (0.75, 0.5)  # chunkc alone, at these fractions of the lowest hand-chunked peak


@dataclass
class Point:
    chunk: int
    hand_peak: int = 0
    hand_diff: float = 0.0
    chunkc_peak: int | None = None
    chunkc_plan: str = ""
    chunkc_diff: float | None = None
    error: str = ""
    hand_ratio: C.Ratio | None = None  # t(hand) / t(eager unchunked)
    chunkc_ratio: C.Ratio | None = None  # t(chunkc) / t(eager unchunked)
    head_to_head: C.Ratio | None = None  # t(chunkc) / t(hand), same rounds


@dataclass
class Below:
    """chunkc under a budget below anything the hand-chunked block reaches."""

    fraction: float
    budget: int
    peak: int | None = None
    plan: str = ""
    ratio: C.Ratio | None = None  # t(chunkc) / t(eager unchunked)
    error: str = ""


@dataclass
class Result:
    size: int
    config: str = ""
    eager_peak: int = 0
    plain_peak: int = 0
    plain_ratio: C.Ratio | None = None  # generated unchunked / eager unchunked
    points: list[Point] = field(default_factory=list)
    below: list[Below] = field(default_factory=list)

    def tuned(self, p: Point) -> bool:
        """OpenFold's tuner would pick p: the largest chunk size among those with its peak or less."""
        return all(q.chunk <= p.chunk for q in self.points if q.hand_peak <= p.hand_peak)


def measure(size: int, chunks: tuple[int, ...], settings: C.Settings) -> Result:
    from chunkc.zoo import evoformer, evoformer_chunked
    base = evoformer(max_res=1024)
    res = Result(size, C.bench_models()["evoformer"].config)
    graph = C.import_case(base)
    args = base.make_inputs(size)
    sizes = graph.bind_sizes(args)
    eager = C.eager(base.module)
    want = eager(*args)
    res.eager_peak = C.measure(None, args, module=base.module)
    plain = C.compile_torch(graph)
    res.plain_peak = C.measure(plain, args)
    programs = {"eager": eager, "chunkc-unchunked": plain}
    for c in chunks:
        pt = Point(c)
        res.points.append(pt)
        hand = evoformer_chunked(c, max_res=1024)
        hand_fn = C.eager(hand.module)
        pt.hand_diff = C.max_abs_diff(hand_fn(*args), want)
        pt.hand_peak = C.measure(None, args, module=hand.module)
        programs[f"hand{c}"] = hand_fn
        try:
            plan = C.plan_under(graph, pt.hand_peak, sizes)
            fn = C.compile_torch(graph, plan)
            pt.chunkc_diff = C.max_abs_diff(fn(*args), want)
            pt.chunkc_peak = C.measure(fn, args)
            pt.chunkc_plan = C.plan_summary(plan, sizes)
            programs[f"chunkc{c}"] = fn
        except Exception as exc:
            pt.error = C.plan_error(exc, res.plain_peak)
        C.log(f"[{NAME}] c={c}: hand {C.mib(pt.hand_peak)} MiB, chunkc {C.mib(pt.chunkc_peak)} MiB {pt.error}")
    lowest = min(p.hand_peak for p in res.points)
    for f in BELOW:
        b = Below(f, int(f * lowest))
        res.below.append(b)
        try:
            plan = C.plan_under(graph, b.budget, sizes)
            fn = C.compile_torch(graph, plan)
            fn(*args)
            b.peak, b.plan = C.measure(fn, args), C.plan_summary(plan, sizes)
            programs[f"below{f}"] = fn
        except Exception as exc:
            b.error = C.plan_error(exc, res.plain_peak)
    times = C.round_robin_times(programs, args, settings.rounds)
    for b in res.below:
        if f"below{b.fraction}" in times:
            b.ratio = C.ratio(times, "eager", f"below{b.fraction}")
    res.plain_ratio = C.ratio(times, "eager", "chunkc-unchunked")
    for pt in res.points:
        pt.hand_ratio = C.ratio(times, "eager", f"hand{pt.chunk}")
        if f"chunkc{pt.chunk}" in times:
            pt.chunkc_ratio = C.ratio(times, "eager", f"chunkc{pt.chunk}")
            pt.head_to_head = C.ratio(times, f"hand{pt.chunk}", f"chunkc{pt.chunk}")
    return res


def _plot(res: Result, settings: C.Settings) -> str:
    fig, ax = C.new_figure()
    hx = [p.hand_peak / 2**20 for p in res.points]
    hy = [p.hand_ratio.median for p in res.points]
    ax.plot(hx, hy, "s-", color="tab:orange", label="hand-chunked (OpenFold style), chunk size c")
    for p, x, y in zip(res.points, hx, hy):
        if res.tuned(p):  # the others sit on top of it
            ax.annotate(f"c={p.chunk}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    done = [p for p in res.points if p.chunkc_ratio]
    ax.plot([p.chunkc_peak / 2**20 for p in done], [p.chunkc_ratio.median for p in done], "o-",
            color="tab:blue", label="chunkc, budget = the hand-chunked peak")
    below = [b for b in res.below if b.ratio]
    if below:
        ax.plot([b.peak / 2**20 for b in below], [b.ratio.median for b in below], "o", mfc="none",
                color="tab:blue", label="chunkc, below the lowest hand-chunked peak")
    ax.scatter([res.eager_peak / 2**20], [1.0], color="black", zorder=3, label="unchunked eager")
    ax.set_xlabel("measured activation memory, MiB")
    ax.set_ylabel("time / unchunked eager (median)")
    ax.set_title(f"Evoformer block, N = {res.size}: hand chunking against chunkc")
    ax.legend(fontsize=7)
    return C.save_figure(fig, "expert_chunking", settings)


def _chunk_cell(res: Result, p: Point) -> str:
    return f"{p.chunk} (tuned)" if res.tuned(p) else str(p.chunk)


def render(res: Result, settings: C.Settings, plot: str | None) -> str:
    lines = ["## Against expert chunking", "",
             f"The Evoformer: {res.config}; N = {res.size}.  *Hand*: `chunkc.zoo.evoformer_chunked(c)`, the block "
             "chunked the way OpenFold's `chunk_layer` does it (row/column attention, triangle attention, "
             "the outer product mean and both transitions over slices of c rows; triangle multiplication "
             "whole), eager PyTorch.  OpenFold's tuner takes the largest chunk size that fits the memory, "
             "so for a limit equal to the hand-chunked peak at c, the largest c with that peak is the tuned "
             "choice (marked).  *chunkc*: "
             "`autochunk` with that peak as its budget (bytes), generated PyTorch code.  Times: all "
             f"programs in rotating rounds ({settings.rounds} after a warm-up round), median ratios with "
             "their range; *chunkc / hand* is per round.  The last rows give chunkc budgets below the lowest "
             "peak hand chunking reaches (it leaves triangle multiplication whole).", "",
             f"Unchunked: eager {C.mib(res.eager_peak)} MiB, chunkc's generated program {C.mib(res.plain_peak)} "
             f"MiB; generated / eager time {res.plain_ratio.cell() if res.plain_ratio else '–'}.", ""]
    if plot:
        lines += [f"![hand chunking against chunkc]({plot})", ""]
    rows = []
    for p in res.points:
        if p.chunkc_peak is None:
            rows.append([_chunk_cell(res, p), C.mib(p.hand_peak), p.hand_ratio.cell() if p.hand_ratio else "–",
                         p.error, "–", "–", "–", f"{p.hand_diff:.1e} / –"])
            continue
        rows.append([_chunk_cell(res, p), C.mib(p.hand_peak), p.hand_ratio.cell() if p.hand_ratio else "–", p.chunkc_plan,
                     C.mib(p.chunkc_peak) + (" **over**" if p.chunkc_peak > p.hand_peak else ""),
                     p.chunkc_ratio.cell() if p.chunkc_ratio else "–",
                     f"**{p.head_to_head.cell()}**" if p.head_to_head else "–",
                     f"{p.hand_diff:.1e} / {p.chunkc_diff:.1e}"])
    for b in res.below:
        rows.append([f"— (chunkc alone, {C.pct(b.fraction)} of the lowest hand peak)", "–", "–",
                     b.plan or b.error, C.mib(b.peak), b.ratio.cell() if b.ratio else "–", "–", "–"])
    lines += C.table(["hand chunk size c", "hand peak MiB", "hand time / eager", "chunkc plan (budget = hand peak)",
                      "chunkc peak MiB", "chunkc time / eager", "chunkc / hand time",
                      "max abs diff vs eager (hand / chunkc)"], rows)
    tuned = [p for p in res.points if res.tuned(p) and p.head_to_head]
    if tuned:
        lines += ["", "At OpenFold's tuned chunk sizes, chunkc against the hand-chunked block at the same memory "
                      "(time chunkc / hand, memory chunkc / hand): "
                  + "; ".join(f"c = {p.chunk}: {p.head_to_head.median:.3f}, {p.chunkc_peak / p.hand_peak:.2f}"
                              for p in tuned) + "."]
    return "\n".join(lines + [""])


def run(settings: C.Settings) -> C.SectionResult:
    t0 = time.perf_counter()
    size = QUICK_SIZE if settings.quick else SIZE
    res = measure(size, QUICK_CHUNKS if settings.quick else CHUNKS, settings)
    C.log(f"[{NAME}] {time.perf_counter() - t0:.0f} s")
    failures = [f"{NAME} c={p.chunk}: chunkc measured {p.chunkc_peak} B over the hand peak {p.hand_peak} B"
                for p in res.points if p.chunkc_peak is not None and p.chunkc_peak > p.hand_peak]
    failures += [f"{NAME} c={p.chunk}: {p.error}" for p in res.points if p.error and "infeasible" not in p.error]
    return C.SectionResult(render(res, settings, _plot(res, settings)), failures)
