"""Models as users run them: transformers and diffusers with their library defaults.

For every model (scaled_dot_product_attention where it is the library's default, the
library's own mask builders, rotary and relative position encodings, a conditional UNet
with cross-attention and group norm): import it (symbolic size), measure the eager
module's and the unchunked generated program's peaks (``chunkc.measure_peak``), find
the lowest peak chunkc reaches (the floor its search reports), and run chunkc's plans at
50% and 20% of the unchunked peak and just above the floor.  Every plan's output is
compared with eager PyTorch's; times are interleaved ratios against the unchunked
program; the 20% plans are timed again in fresh processes with large blocks kept on
glibc's heap (``MALLOC_MMAP_THRESHOLD_``), so that the ratio is not an allocator effect.

    python -m benchmarks library-defaults
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import common as C
from .memory_speed import BIG_BLOCKS_ON_HEAP

NAME = "library-defaults"
BUDGETS = (0.5, 0.2)
NEAR_FLOOR = 1.05
TARGET_FLOOR = 0.10  # issue 11: the lowest peak at most 10% of the unchunked peak
TARGET_TIME = 1.10  # ... and at 20%, chunked time at most 1.10x unchunked


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    factory: object  # () -> ModelCase
    size: int
    quick_size: int
    config: str


def models() -> dict[str, Model]:
    from chunkc import zoo
    return {m.key: m for m in [
        Model("gpt2_sdpa", "GPT-2, SDPA (default)", lambda: zoo.gpt2(n_layer=2, n_embd=256, n_head=4, attn="sdpa",
                                                                     n_positions=16384),
              4096, 1024, "transformers GPT2Model, 2 layers, n_embd 256, 4 heads, attn_implementation='sdpa'"),
        Model("gpt2_eager", "GPT-2, eager", lambda: zoo.gpt2(n_layer=2, n_embd=256, n_head=4, attn="eager",
                                                            n_positions=16384),
              4096, 1024, "the same with attn_implementation='eager'"),
        Model("llama", "causal LM, rotary + GQA", lambda: zoo.llama(), 4096, 1024,
              "transformers LlamaModel (chunkc.zoo.llama): rotary embeddings, grouped-query attention, SDPA, "
              "hidden 128, MLP 448 (Llama 3's ratio)"),
        Model("bert", "encoder, padding mask", lambda: zoo.bert(), 4096, 1024,
              "transformers BertModel (chunkc.zoo.bert) with an attention_mask input, SDPA"),
        Model("t5", "encoder, relative position bias", lambda: zoo.t5_encoder(), 2048, 512,
              "transformers T5EncoderModel (chunkc.zoo.t5_encoder): relative position bias from a bucket table"),
        Model("unet_cond", "conditional UNet", lambda: zoo.unet_cond(), 256, 64,
              "diffusers UNet2DConditionModel (chunkc.zoo.unet_cond): cross-attention, group norm, SDPA"),
    ]}


@dataclass
class Row:
    label: str
    budget: int
    plan: str = ""
    estimate: int | None = None
    measured: int | None = None
    diff: float | None = None  # against eager PyTorch
    ratio: C.Ratio | None = None
    heap_ratio: list[float] | None = None  # [median, low, high] with large blocks on the heap
    error: str = ""


@dataclass
class Result:
    model: Model
    size: int
    nodes: int = 0
    eager: int = 0
    unchunked: int = 0
    unchunked_diff: float | None = None
    output: int = 0  # bytes of the model's output: every plan holds it at its end
    floor: int | None = None
    floor_where: str = ""
    rows: list[Row] = field(default_factory=list)
    error: str = ""


def _floor(graph, sizes) -> tuple[int | None, str]:
    import chunkc
    try:
        C.plan_under(graph, 1, sizes)
    except chunkc.InfeasibleBudgetError as exc:
        return exc.lowest_peak_bytes, exc.peak_node or ""
    return None, ""


def _programs(m: Model, size: int):
    """(graph, args, sizes, eager output, unchunked program, its peak) of one model at one size."""
    import torch
    case = m.factory()
    graph = C.import_case(case)
    args = case.make_inputs(size)
    sizes = graph.bind_sizes(args)
    with torch.inference_mode():
        want = case.module(*args)
    want = want[0] if isinstance(want, (tuple, list)) else want
    plain = C.compile_torch(graph)
    return case, graph, args, sizes, want, plain, C.measure(plain, args)


def measure(m: Model, size: int, settings: C.Settings) -> Result:
    res = Result(m, size)
    case, graph, args, sizes, want, plain, res.unchunked = _programs(m, size)
    res.nodes = len(graph.nodes)
    res.output = want.element_size() * want.numel()
    res.unchunked_diff = C.max_abs_diff(plain(*args), want)
    res.eager = C.measure(None, args, module=case.module)
    res.floor, res.floor_where = _floor(graph, sizes)
    budgets = [Row(C.pct(f), int(f * res.unchunked)) for f in BUDGETS]
    if res.floor:
        budgets.append(Row(f"lowest × {NEAR_FLOOR:g}", int(res.floor * NEAR_FLOOR)))
    programs = {"unchunked": plain}
    for row in budgets:
        res.rows.append(row)
        try:
            plan = C.plan_under(graph, row.budget, sizes)
            row.plan, row.estimate = C.plan_summary(plan, sizes), plan.estimated_peak_bytes
            fn = C.compile_torch(graph, plan)
            row.diff = C.max_abs_diff(fn(*args), want)
            row.measured = C.measure(fn, args)
            programs[row.label] = fn
        except Exception as exc:
            row.error = C.plan_error(exc, res.unchunked)
        C.log(f"[{NAME}] {m.key} {row.label}: {row.plan or row.error}; measured {C.mib(row.measured)} MiB")
    if len(programs) > 1:
        ratios = C.round_robin(programs, args, settings.rounds)
        for row in res.rows:
            row.ratio = ratios.get(row.label)
    return res


def probe(key: str, size: int, rounds: int) -> dict[str, list[float]]:
    """In this process: t(chunked at 20%) / t(unchunked), as [median, low, high]."""
    m = models()[key]
    _, graph, args, sizes, _, plain, peak = _programs(m, size)
    fn = C.compile_torch(graph, C.plan_under(graph, int(0.2 * peak), sizes))
    r = C.round_robin({"unchunked": plain, "20%": fn}, args, rounds)["20%"]
    return {"20%": [r.median, r.low, r.high]}


def heap_ratio(key: str, size: int, settings: C.Settings) -> list[float] | None:
    cmd = [sys.executable, "-m", "benchmarks.library_defaults", "--probe", key, str(size), str(settings.rounds),
           str(settings.threads)]
    done = subprocess.run(cmd, env={**os.environ, **BIG_BLOCKS_ON_HEAP}, cwd=C.ROOT, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode:
        C.log(f"[{NAME}] heap probe of {key} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["20%"]


OUTPUT_NOTE = (
    "*output alone*: the model's output as a share of the unchunked peak; every plan holds it whole at "
    "its end.  A layer of exact attention over the whole sequence also holds its input whole while its "
    "output fills, since every query chunk reads keys and values made from all of the input (causal: from "
    "all rows before it), unless they are recomputed from an earlier value that is held instead.  So a "
    "transformer whose last layer is attention over every key cannot go below about twice its output: "
    "where that passes 10%, it, not the search, bounds the lowest peak.  With causal attention the output "
    "can be written over the input (query chunks run last first, each writing rows that no later chunk "
    "reads), and the bound is the output alone.")


def _summary(results: list[Result]) -> list[str]:
    rows = []
    for res in results:
        if res.error:
            rows.append([res.model.label, res.error, "", "", "", "", "", ""])
            continue
        floor = res.floor / res.unchunked if res.floor else None
        near = res.rows[-1] if res.rows and res.rows[-1].label.startswith("lowest") else None
        at20 = next((r for r in res.rows if r.label == C.pct(0.2)), None)
        worst_diff = max((r.diff for r in res.rows if r.diff is not None), default=None)
        heap = at20.heap_ratio if at20 else None
        rows.append([
            f"{res.model.label}, {res.size}",
            f"{C.mib(res.eager)} / {C.mib(res.unchunked)}",
            C.pct(res.output / res.unchunked, 1),
            f"{C.pct(floor, 1)}" + (f" (measured {C.pct(near.measured / res.unchunked, 1)})"
                                    if near and near.measured else ""),
            "**yes**" if floor is not None and floor <= TARGET_FLOOR else "**no**",
            at20.ratio.cell() if at20 and at20.ratio else (at20.error if at20 else ""),
            f"{heap[0]:.3f} ({heap[1]:.2f}–{heap[2]:.2f})" if heap else "–",
            f"{worst_diff:.1e}" if worst_diff is not None else "–",
        ])
    return C.table(["model, size", "eager / unchunked MiB (measured)", "output alone", "lowest peak (estimate; measured plan)",
                    f"≤ {C.pct(TARGET_FLOOR)}?", "time at 20%, glibc defaults", "time at 20%, large blocks on heap",
                    "max abs diff vs eager"], rows)


def _model_table(res: Result) -> list[str]:
    m = res.model
    lines = [f"### {m.label}: size {res.size}", "",
             f"{m.config}; {res.nodes} nodes imported (canonicalized).  Eager PyTorch {C.mib(res.eager)} MiB, "
             f"unchunked generated program **{C.mib(res.unchunked)} MiB** (max abs diff vs eager "
             f"{res.unchunked_diff:.1e}).  "
             + (f"Lowest peak chunkc reaches (estimate): {C.mib(res.floor)} MiB = "
                f"{C.pct(res.floor / res.unchunked, 1)} of the unchunked peak, held at `{res.floor_where}`."
                if res.floor else "Every budget is reachable."), ""]
    rows = []
    for r in res.rows:
        if r.error:
            rows.append([r.label, C.mib(r.budget), r.error, "", "", "", ""])
            continue
        rows.append([r.label, C.mib(r.budget), r.plan, C.mib(r.estimate), C.mib(r.measured),
                     r.ratio.cell() if r.ratio else "", f"{r.diff:.1e}"])
    lines += C.table(["budget", "MiB", "plan", "estimate MiB", "measured MiB", "time / unchunked",
                      "max abs diff vs eager"], rows)
    return lines + [""]


def run(settings: C.Settings, keys: list[str] | None = None) -> C.SectionResult:
    results, failures = [], []
    for key, m in models().items():
        if keys and key not in keys:
            continue
        size = m.quick_size if settings.quick else m.size
        t0 = time.perf_counter()
        try:
            res = measure(m, size, settings)
            at20 = next((r for r in res.rows if r.label == C.pct(0.2) and not r.error), None)
            if at20 is not None:
                at20.heap_ratio = heap_ratio(key, size, settings)
        except Exception as exc:
            res = Result(m, size, error=C.short_error(exc))
            failures.append(f"{NAME} {key}: {res.error}")
        results.append(res)
        C.log(f"[{NAME}] {key} done in {(time.perf_counter() - t0) / 60:.1f} min")
    body = ["## Models as users run them", "",
            "transformers and diffusers models with their library defaults (SDPA where it is the default, "
            "the library's own mask builders, rotary and relative position encodings), imported with "
            "`chunkc.from_torch` (canonicalized: attention takes `is_causal`/`enable_gqa` where the exported "
            "graph proves them, as eager PyTorch runs it).  Memory is `chunkc.measure_peak` (the CPU "
            "allocator's blocks, kernel temporaries included); *lowest peak* is the floor chunkc's search "
            "reports (`InfeasibleBudgetError.lowest_peak_bytes` under a 1-byte budget), and the plan just "
            "above it is measured.  Times are medians of rounds of all programs of a model in rotating order "
            f"({settings.rounds} rounds), t(chunked) / t(unchunked); the 20% plan is timed again in fresh "
            "processes with `" + " ".join(f"{k}={v}" for k, v in BIG_BLOCKS_ON_HEAP.items()) + "`.  "
            f"Targets (issue 11): lowest peak ≤ {C.pct(TARGET_FLOOR)} of the unchunked peak; at 20%, "
            f"time ≤ {TARGET_TIME:.2f}× unchunked with either allocator setting; outputs within 1e-4 of eager.",
            ""]
    body += _summary(results) + ["", OUTPUT_NOTE, ""]
    for res in results:
        if not res.error:
            body += _model_table(res)
    return C.SectionResult("\n".join(body), failures)


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "--probe":
        C.set_threads(int(sys.argv[5]))
        print(json.dumps(probe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
