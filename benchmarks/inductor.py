"""chunkc composed with torch.compile (Inductor): does a chunked program keep its memory cut and
its speed when compiled?

For each model: the eager module and chunkc's unchunked generated program, each compiled with
``torch.compile`` (Inductor), and chunkc's plans at 50% and 20% of the generated program's
measured peak, compiled the same way (``torch.compile(chunkc.compile(graph, plan))``), each budget planned twice:
for eager PyTorch (``autochunk``'s default) and for Inductor (``compiled="inductor"``: written-out
attention planned as the fused attention Inductor runs, its cost model's chunks).  Peaks
are ``chunkc.measure_peak`` (the CPU allocator's blocks, Inductor's buffers included); times are
medians over rounds of interleaved calls against the compiled unchunked program.  The
generated modules run under ``torch.no_grad`` (``grad_mode="no_grad"``; see docs/backends.md).  Each chunk
region's loop stays in Python (``torch_runtime.run_chunks``): dynamo compiles one chunk, not
the unrolled loop (docs/backends.md).  Target (issue 13): the compiled chunked program keeps
its cut (peak within 10% of the uncompiled chunked program's) and runs at most 1.10x the
Inductor-compiled unchunked model.

    python -m benchmarks inductor
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import common as C
from .subjects import Subject, zoo_subjects

NAME = "inductor"
BUDGETS = (0.5, 0.2)
TIME_TARGET = 1.10
MEMORY_TARGET = 1.10  # compiled chunked peak / chunked peak
PLANNED_FOR = (None, "inductor")  # autochunk's compiled= option; the targets are judged on "inductor"


@dataclass
class Row:
    fraction: float
    planned_for: str | None = None  # autochunk's compiled= option
    plan: str = ""
    peak: int | None = None  # the chunked program, not compiled
    compiled_peak: int | None = None
    ratio: C.Ratio | None = None  # t(compiled chunked) / t(compiled unchunked generated)
    model_ratio: C.Ratio | None = None  # t(compiled chunked) / t(compiled eager module)
    diff: float | None = None
    error: str = ""


@dataclass
class Result:
    subject: Subject
    peak: int = 0  # unchunked generated program
    compiled_peak: int = 0
    model_peak: int | None = None  # the compiled eager module
    model_ratio: C.Ratio | None = None  # t(compiled unchunked generated) / t(compiled eager module)
    rows: list[Row] = field(default_factory=list)
    error: str = ""


# torch.compile wrappers of one process share the frame of dynamo's wrapper function, recompiled
# for each module and grad mode (measure_peak's): past dynamo's default limit of 8 the later modules
# ran uncompiled
RECOMPILE_LIMIT = 64


def measure_subject(subject: Subject, settings: C.Settings, budgets) -> Result:
    import torch
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return _measure_subject(subject, settings, budgets)


def _measure_subject(subject: Subject, settings: C.Settings, budgets) -> Result:
    import torch

    import chunkc
    torch._dynamo.reset()
    res = Result(subject)
    graph, args, sizes = subject.graph, subject.args, dict(subject.sizes)
    plain = _generated(graph)
    want = plain(*args)
    res.peak = C.measure(plain, args)
    compiled = {"unchunked": torch.compile(plain)}
    if subject.module is not None:
        compiled["model"] = _no_grad(torch.compile(subject.module))
    for fraction in budgets:
        for planned_for in PLANNED_FOR:
            row = Row(fraction, planned_for)
            res.rows.append(row)
            try:
                plan = chunkc.autochunk(graph, int(fraction * res.peak), sizes=sizes, backend="torch",
                                        progress=False, compiled=planned_for)
                row.plan = C.plan_summary(plan, sizes)
                chunked = _generated(plan.graph, plan)
                chunked(*args)
                row.peak = C.measure(chunked, args)
                compiled[_key(row)] = torch.compile(chunked)
            except Exception as exc:
                row.error = C.plan_error(exc, res.peak)
    rows = {_key(r): r for r in res.rows}
    for key, fn in compiled.items():  # compile (the first call) outside the measurements
        out = fn(*args)
        if key in rows:
            rows[key].diff = C.max_abs_diff(out, want)
    res.compiled_peak = C.measure(compiled["unchunked"], args)
    if "model" in compiled:
        res.model_peak = C.measure(compiled["model"], args)
    for key, row in rows.items():
        if key in compiled:
            row.compiled_peak = C.measure(compiled[key], args)
    times = C.round_robin_times(compiled, args, settings.rounds)
    if "model" in compiled:
        res.model_ratio = C.ratio(times, "model", "unchunked")
    for key, row in rows.items():
        if key in compiled:
            row.ratio = C.ratio(times, "unchunked", key)
            if "model" in compiled:
                row.model_ratio = C.ratio(times, "model", key)
    torch._dynamo.reset()
    return res


def _key(row: Row) -> str:
    return f"{row.fraction} {row.planned_for}"


def _generated(graph, plan=None):
    """The generated module, run under ``torch.no_grad``: under ``inference_mode`` (the default
    grad mode) Inductor failed on the ViT's view of a weight ("Cannot set version_counter for
    inference tensor", torch 2.13), and compiled it under ``no_grad``."""
    import chunkc
    return chunkc.compile(graph, plan, backend="torch", grad_mode="no_grad")


def _no_grad(fn):
    """``fn`` called under ``torch.no_grad`` (as the generated programs run; Inductor refuses to
    compile a function that enters ``inference_mode`` itself)."""
    import torch

    def run(*args):
        with torch.no_grad():
            return fn(*args)
    return run


def render(results: list[Result], settings: C.Settings) -> str:
    lines = ["## Composition with torch.compile (Inductor)", "",
             "Each program compiled with `torch.compile` (Inductor, default options) and called once "
             "before anything is measured; a chunked program's region loops stay in Python "
             "(`torch_runtime.run_chunks`), dynamo compiling one chunk of each region.  Each budget is planned "
             "for eager PyTorch (`autochunk`'s default, *eager*) and for Inductor (`compiled=\"inductor\"`, "
             "*inductor*: written-out attention planned as the fused attention Inductor runs, chunks as large "
             "as the budget allows; docs/passes.md).  *peak*: `chunkc.measure_peak`, MiB, the uncompiled "
             "program's in brackets; *time*: median over "
             f"{settings.rounds} rounds of interleaved calls, t / t(compiled unchunked generated "
             "program), and against the compiled eager module where there is one.  Targets (issue 13): "
             f"the compiled chunked program's peak at most {MEMORY_TARGET:.2f}× the uncompiled chunked "
             f"program's, its time at most {TIME_TARGET:.2f}× the compiled unchunked model's; judged on the "
             "plans made for Inductor.", ""]
    rows = []
    for res in results:
        s = res.subject
        if res.error:
            rows.append([s.label, "–", res.error] + ["–"] * 5)
            continue
        if res.model_peak is not None:
            rows.append([s.label, "eager module", "torch.compile(module)", C.mib(res.model_peak), "–",
                         "1 (reference)" if res.model_ratio else "–", "–", "–"])
        rows.append([s.label, "100%", "unchunked", f"{C.mib(res.compiled_peak)} ({C.mib(res.peak)})", "1 (reference)",
                     res.model_ratio.cell() if res.model_ratio else "–", "–", "–"])
        for r in res.rows:
            budget = f"{C.pct(r.fraction)}, {r.planned_for or 'eager'}"
            if r.ratio is None:
                rows.append([s.label, budget, r.error or r.plan] + ["–"] * 5)
                continue
            worst = max(r.ratio.median, r.model_ratio.median if r.model_ratio else 0.0)
            ok = r.compiled_peak <= MEMORY_TARGET * r.peak and worst <= TIME_TARGET
            judged = "yes" if ok else ("**no**" if r.planned_for else "no")
            rows.append([s.label, budget, r.plan or "no regions", f"{C.mib(r.compiled_peak)} ({C.mib(r.peak)})",
                         r.ratio.cell(), r.model_ratio.cell() if r.model_ratio else "–",
                         f"{r.diff:.1e}" if r.diff is not None else "–", judged])
    lines += C.table(["model", "budget, planned for", "plan", "peak MiB, compiled (not compiled)", "time / compiled unchunked",
                      "time / compiled eager module", "max abs diff", "targets met"], rows)
    return "\n".join(lines + [""])


def run(settings: C.Settings, models: list[str] | None = None, subjects: list[Subject] | None = None,
        budgets: tuple[float, ...] = BUDGETS) -> C.SectionResult:
    results, failures = [], []
    for subject in subjects if subjects is not None else zoo_subjects(settings, models):
        try:
            results.append(measure_subject(subject, settings, budgets))
        except Exception as exc:
            import traceback
            traceback.print_exc()
            results.append(Result(subject, error=C.short_error(exc, 400)))
            failures.append(f"{NAME} {subject.key}: {results[-1].error}")
    return C.SectionResult(render(results, settings), failures)
