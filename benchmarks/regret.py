"""Regret of the selection: is the plan chunkc chooses the fastest of the plans its search makes?

For each model and budget (50% and 20% of the measured unchunked peak), the chosen plan
(``chunkc.autochunk`` with its defaults) is timed against the other plans the search produces
under the same budget when its choices are varied: without rematerialization, without the
planning rewrites, a narrower and a wider beam, the floor search's plan relaxed to the budget,
and the plan the built-in constants choose instead of the measured kernel table.  Plans equal to
the chosen one (same regions and chunks) are timed once.  Regret: how much faster the fastest
alternative runs, 1 − t(fastest) / t(chosen); issue 13's target is at most 5% everywhere.

    python -m benchmarks regret
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import common as C
from .subjects import Subject, plan_key, zoo_subjects

NAME = "regret"
BUDGETS = (0.5, 0.2)
TARGET = 0.05


def alternatives() -> dict[str, dict]:
    """The search's variations: a name and autochunk's options for each."""
    from chunkc.passes.cost import Machine
    from chunkc.passes.selection import FloorSelector
    return {"no remat": {"remat": False}, "no rewrites": {"rewrite": False},
            "beam 1": {"beam": 1, "per_state": 1}, "beam 12": {"beam": 12, "per_state": 8},
            "floor, relaxed": {"selector": FloorSelector()}, "constants": {"machine": Machine()}}


@dataclass
class Row:
    fraction: float
    chosen: str = ""
    predicted: dict[str, float] = field(default_factory=dict)  # alternative -> predicted time / chosen's
    measured: dict[str, C.Ratio] = field(default_factory=dict)  # alternative -> t(alternative) / t(chosen)
    same: list[str] = field(default_factory=list)  # alternatives that gave the chosen plan
    failed: list[str] = field(default_factory=list)  # alternatives without a plan
    error: str = ""

    @property
    def regret(self) -> float | None:
        if self.error:
            return None
        return max([0.0] + [1 - r.median for r in self.measured.values()])

    @property
    def fastest(self) -> str:
        return min(self.measured, key=lambda k: self.measured[k].median, default="")


def measure_subject(subject: Subject, settings: C.Settings, budgets, kernels) -> list[Row]:
    """Rows for ``budgets``; ``kernels``: the cost model autochunk chooses with."""
    import chunkc
    from chunkc.passes.cost import predict_seconds
    graph, args, sizes = subject.graph, subject.args, dict(subject.sizes)
    plain = C.compile_torch(graph)
    plain(*args)
    peak = C.measure(plain, args)
    rows = []
    for fraction in budgets:
        row = Row(fraction)
        rows.append(row)
        budget = int(fraction * peak)
        try:
            chosen = chunkc.autochunk(graph, budget, sizes=sizes, backend="torch", progress=False, machine=kernels)
        except Exception as exc:
            row.error = C.plan_error(exc, peak)
            continue
        row.chosen = C.plan_summary(chosen, sizes)
        chosen_s = predict_seconds(chosen.graph, chosen, machine=kernels)
        programs, seen = {"chosen": C.compile_torch(graph, chosen)}, {plan_key(chosen): "chosen"}
        for name, options in alternatives().items():
            try:
                plan = chunkc.autochunk(graph, budget, sizes=sizes, backend="torch", progress=False,
                                        **{"machine": kernels, **options})
            except chunkc.InfeasibleBudgetError:
                row.failed.append(name)
                continue
            if plan_key(plan) in seen:
                if seen[plan_key(plan)] == "chosen":
                    row.same.append(name)
                continue
            seen[plan_key(plan)] = name
            row.predicted[name] = predict_seconds(plan.graph, plan, machine=kernels) / chosen_s
            programs[name] = C.compile_torch(graph, plan)
        if len(programs) > 1:
            row.measured = C.round_robin(programs, args, settings.rounds)
        C.log(f"[{subject.key}] {C.pct(fraction)}: {len(programs) - 1} distinct alternative(s), "
              f"regret {row.regret:.1%}")
    return rows


def render(results: list[tuple[Subject, list[Row] | str]], settings: C.Settings) -> str:
    lines = ["## Regret of the selection", "",
             "For each model and budget (a fraction of the measured unchunked peak): the plan chunkc "
             "chooses (with this machine's kernel table), and the distinct plans its search makes under the same budget when a choice is "
             "varied (" + ", ".join(alternatives()) + ").  Each alternative's cell: measured "
             f"t(alternative) / t(chosen), median over {settings.rounds} rounds (all of a model's "
             "programs timed in rotating order), then the cost model's prediction of the same ratio.  "
             f"Regret: 1 − the fastest ratio, at least 0; target (issue 13) at most {TARGET:.0%}.", ""]
    names = list(alternatives())
    rows = []
    for subject, found in results:
        if isinstance(found, str):
            rows.append([subject.label, "–", found] + ["–"] * (len(names) + 2))
            continue
        for r in found:
            if r.error:
                rows.append([subject.label, C.pct(r.fraction), r.error] + ["–"] * (len(names) + 2))
                continue
            cells = []
            for name in names:
                if name in r.measured:
                    cells.append(f"{r.measured[name].median:.3f} (pred. {r.predicted[name]:.2f})")
                else:
                    cells.append("same plan" if name in r.same else "no plan" if name in r.failed else "dup.")
            ok = r.regret <= TARGET
            rows.append([subject.label, C.pct(r.fraction), r.chosen, *cells, f"{r.regret:.1%}",
                         "yes" if ok else "**no**"])
    lines += C.table(["model", "budget", "chosen plan", *names, "regret", f"≤ {TARGET:.0%}"], rows)
    return "\n".join(lines + [""])


def run(settings: C.Settings, models: list[str] | None = None, subjects: list[Subject] | None = None,
        budgets: tuple[float, ...] = BUDGETS) -> C.SectionResult:
    from .cost_model import kernel_table
    kernels = kernel_table(settings)
    results, failures = [], []
    for subject in subjects if subjects is not None else zoo_subjects(settings, models):
        try:
            results.append((subject, measure_subject(subject, settings, budgets, kernels)))
        except Exception as exc:
            import traceback
            traceback.print_exc()
            results.append((subject, C.short_error(exc, 400)))
            failures.append(f"{NAME} {subject.key}: {results[-1][1]}")
    return C.SectionResult(render(results, settings), failures)
