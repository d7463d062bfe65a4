"""The cost model against the clock: predicted against measured slowdown of every plan of the
memory-speed section (issue 13: within ±15%).

The kernel table of this machine at the benchmark's thread count (``python -m
chunkc.calibrate``; measured and cached here when there is none) prices every program:
the unchunked one and each plan, made by ``chunkc.autochunk`` with that table, at budgets
of 50/40/30/20/10% of the measured unchunked peak.  *Predicted* is
``predict_seconds(plan) / predict_seconds(graph)``; *measured* the median over rounds of
t(chunked) / t(unchunked), every program of a model timed in rotating order each round.

    python -m benchmarks cost-model
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from . import common as C
from .subjects import Subject, zoo_subjects

NAME = "cost-model"
TOLERANCE = 0.15


@dataclass
class Row:
    fraction: float
    plan: str = ""
    predicted: float | None = None  # predicted time ratio chunked / unchunked
    selection: float | None = None  # plan.estimated_slowdown (the selection's own figure)
    measured: C.Ratio | None = None
    error: str = ""

    @property
    def deviation(self) -> float | None:
        """predicted / measured - 1."""
        if self.predicted is None or self.measured is None:
            return None
        return self.predicted / self.measured.median - 1


@dataclass
class Result:
    subject: Subject
    predicted_s: float = 0.0  # the unchunked program, predicted seconds
    measured_s: float = 0.0  # ... and measured (median)
    rows: list[Row] = field(default_factory=list)
    error: str = ""


def kernel_table(settings: C.Settings):
    """This machine's table at the settings' threads (quick: a quick one, not cached)."""
    from chunkc.calibrate import ensure_table, measure_table
    if settings.quick:
        return measure_table(settings.threads, quick=True)
    table, measured = ensure_table(settings.threads, progress=C.log)
    C.log(f"[{NAME}] {'measured' if measured else 'cached'} {table.description}")
    return table


def measure_subject(subject: Subject, table, settings: C.Settings, budgets) -> Result:
    import chunkc
    from chunkc.passes.cost import predict_seconds
    res = Result(subject)
    graph, args, sizes = subject.graph, subject.args, subject.sizes
    plain = C.compile_torch(graph)
    plain(*args)
    peak = C.measure(plain, args)
    res.predicted_s = predict_seconds(graph, sizes=sizes, machine=table)
    programs = {"unchunked": plain}
    for fraction in budgets:
        row = Row(fraction)
        res.rows.append(row)
        try:
            plan = chunkc.autochunk(graph, int(fraction * peak), sizes=dict(sizes), backend="torch",
                                    machine=table, progress=False)
            row.plan, row.selection = C.plan_summary(plan, sizes), plan.estimated_slowdown
            row.predicted = predict_seconds(plan.graph, plan, machine=table) / res.predicted_s
            programs[fraction] = C.compile_torch(graph, plan)
        except Exception as exc:
            row.error = C.plan_error(exc, peak)
    times = C.round_robin_times(programs, args, settings.rounds)
    res.measured_s = statistics.median(times["unchunked"])
    for row in res.rows:
        if row.fraction in programs:
            row.measured = C.ratio(times, "unchunked", row.fraction)
    return res


def render(results: list[Result], table_description: str, settings: C.Settings) -> str:
    lines = ["## Cost model: predicted against measured time", "",
             "Each plan of the memory-speed section's models and budgets (fractions of the measured "
             "unchunked peak), made by `chunkc.autochunk` with this machine's kernel table "
             f"({table_description}).  *predicted*: the cost model's time ratio chunked / unchunked "
             "(`chunkc.passes.cost.predict_seconds` of the plan over that of the graph); *selection*: "
             "`plan.estimated_slowdown`; *measured*: the median over "
             f"{settings.rounds} rounds of t(chunked) / t(unchunked), range in brackets.  Target "
             f"(issue 13): predicted within ±{TOLERANCE:.0%} of measured on every plan.", ""]
    rows = []
    for res in results:
        if res.error:
            rows.append([res.subject.label, "–", res.error, "–", "–", "–", "–", "–"])
            continue
        rows.append([res.subject.label, "100%", "unchunked", f"{res.predicted_s * 1e3:.1f} ms",
                     "–", f"{res.measured_s * 1e3:.1f} ms",
                     f"{res.predicted_s / res.measured_s - 1:+.0%}", "–"])
        for r in res.rows:
            if r.measured is None:
                rows.append([res.subject.label, C.pct(r.fraction), r.error or r.plan, "–", "–", "–", "–", "–"])
                continue
            ok = abs(r.deviation) <= TOLERANCE
            rows.append([res.subject.label, C.pct(r.fraction), r.plan, f"×{r.predicted:.3f}",
                         f"×{r.selection:.3f}" if r.selection is not None else "–", r.measured.cell(),
                         f"{r.deviation:+.0%}", "yes" if ok else "**no**"])
    lines += C.table(["model", "budget", "plan", "predicted", "selection", "measured", "predicted / measured − 1",
                      f"within ±{TOLERANCE:.0%}"], rows)
    return "\n".join(lines + [""])


def run(settings: C.Settings, models: list[str] | None = None, subjects: list[Subject] | None = None,
        budgets: tuple[float, ...] | None = None) -> C.SectionResult:
    from .memory_speed import BUDGETS
    table = kernel_table(settings)
    results, failures = [], []
    for subject in subjects if subjects is not None else zoo_subjects(settings, models):
        try:
            results.append(measure_subject(subject, table, settings, budgets or BUDGETS))
        except Exception as exc:
            import traceback
            traceback.print_exc()
            results.append(Result(subject, error=C.short_error(exc, 400)))
            failures.append(f"{NAME} {subject.key}: {results[-1].error}")
    return C.SectionResult(render(results, table.description, settings), failures)
