"""Differential fuzzing: random model-like graphs planned at random budgets on the NumPy and
PyTorch backends, every plan held against the unchunked reference interpreter (values), its
budget and its estimate (memory), and each budget's answer against the others (chunkc.fuzz,
docs/fuzzing.md).

    python -m benchmarks fuzz --cases 10000 [--seed 0] [--jobs 4]
    python -m benchmarks fuzz --quick            # 20 cases: a smoke run

The section gives the counts of every kind of finding and, for each failure class, its first
cases and that case shrunk to a minimal graph in chunkc's text form.
"""

from __future__ import annotations

from . import common as C

NAME = "fuzz"
DEFAULT_CASES = 200  # what a full `python -m benchmarks` runs (about 20 min on 2 cores)
QUICK_CASES = 20
SHRINK_SECONDS = 60.0  # per failure class
SHRUNK_CLASSES = 12  # the most frequent classes are shrunk; the rest are listed


def run(settings: C.Settings) -> C.SectionResult:
    from chunkc.fuzz.campaign import run_campaign
    from chunkc.fuzz.shrink import shrink
    from chunkc.fuzz.graphs import random_case
    cases = settings.cases or (QUICK_CASES if settings.quick else DEFAULT_CASES)
    done = [0]

    def progress(result):
        done[0] += 1
        if done[0] % 50 == 0 or done[0] == cases:
            C.log(f"[{NAME}] {done[0]}/{cases} cases")
    summary = run_campaign(cases, seed=settings.seed, jobs=settings.jobs, on_case=progress)  # the LONG profile
    ranked = sorted(summary.classes.values(), key=lambda c: -c.findings)
    for cls in ranked[:SHRUNK_CLASSES]:
        C.log(f"[{NAME}] shrinking {cls.signature}")
        cls.shrunk = shrink(random_case(cls.cases[0]), cls.example, max_seconds=SHRINK_SECONDS)
    failures = [] if summary.ok else [f"{NAME}: {sum(summary.findings.values())} finding(s) in {summary.cases} cases"]
    return C.SectionResult(render(summary, cases), failures)


def render(summary, cases: int) -> str:
    from chunkc.fuzz.oracle import KINDS
    from chunkc.ir.printer import print_graph
    lines = ["## Differential fuzzing", "",
             f"{summary.cases} random graphs (campaign seed {summary.seed}: case *i* is "
             f"`chunkc.fuzz.random_case({summary.seed}*1000000 + i)`), each planned at 4 budgets from 5% to 90% "
             "of its unchunked estimated peak (some given in bytes) on the NumPy and the PyTorch backend, compiled, "
             "run at its planning sizes and at two others, and measured.  Plans: "
             + ", ".join(f"{n} {k}" for k, n in sorted(summary.plans.items())) + "; "
             + f"{summary.seconds / 60:.0f} min of checks."]
    lines += ["", *C.table(["finding", "count", "cases"],
                           [[k.replace("_", " "), summary.findings[k], summary.failing_cases[k]] for k in KINDS])]
    if summary.timeouts:
        lines += ["", f"Cases abandoned after 120 s of CPU time: {', '.join(map(str, summary.timeouts))}."]
    lines += ["", "What each row means (docs/fuzzing.md): *crash*, any exception but a clear `InfeasibleBudgetError`; "
              "*wrong*, an output off the interpreter's beyond float32 tolerance; *over budget*, an estimate above "
              "the budget or a measured peak above 1.02x it; *estimate*, an estimate more than 2% off the "
              "measured peak; *non monotone*, a budget refused while a smaller one got a plan; *self "
              "contradicting*, an `InfeasibleBudgetError` whose lowest reachable peak is below the budget it "
              "refused."]
    if summary.classes:
        lines += ["", "### Failure classes", ""]
        for cls in sorted(summary.classes.values(), key=lambda c: -c.findings):
            seeds = ", ".join(map(str, cls.cases[:6])) + (" …" if len(cls.cases) > 6 else "")
            lines.append(f"- **{cls.kind}** `{cls.signature}`: {cls.findings} finding(s) in {len(cls.cases)} "
                         f"case(s) ({seeds}); e.g. {C.short_error(Exception(str(cls.example)), 300)[11:]}")
            if cls.shrunk is not None:
                s = cls.shrunk
                lines += ["", f"  shrunk: sizes {s.sizes}, budget(s) {', '.join(map(str, s.budgets))}", "",
                          "  ```", *("  " + line for line in print_graph(s.graph).splitlines()), "  ```", ""]
    lines += ["", f"Rerun one case: `python -m chunkc.fuzz --case N --shrink`; this campaign: "
                  f"`python -m chunkc.fuzz --cases {cases} --seed {summary.seed}`."]
    return "\n".join(lines)
