"""Breaking the memory wall: the longest input that fits a fixed activation budget,
unchunked against chunkc.

For each model the budget is the measured peak of the unchunked generated program at a base
size.  The longest size is searched on the model's symbolic size (in steps of its
``size_multiple``): doubling from the base, then bisection, with chunkc's estimator proposing
(``estimate_memory`` for the unchunked program; for chunkc, whether ``autochunk`` finds a plan
under the budget).  The proposal is then compiled, run and measured with
``chunkc.measure_peak``; if the measurement exceeds the budget the search goes on downwards
on measurements until one fits.

    python -m benchmarks max-length
    python -m benchmarks max-length --models gpt2,gpt2_sdpa   # rerun two models, keep the other rows

A run of some models keeps the others' rows from the section as last written, each marked with
the time of the run that measured it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

from . import common as C

NAME = "max-length"
# base size (the budget is the unchunked peak there), quick base, largest size searched
# (issue 11: GPT-2, eager and SDPA, against its unchunked L = 1024 peak, searched to 16x)
BASE = {"gpt2": (1024, 256, 16384), "gpt2_sdpa": (1024, 256, 16384), "transformer": (2048, 256, 65536), "vit": (768, 256, 2048),
        "evoformer": (192, 48, 1024), "unet": (64, 32, 512)}


def models() -> dict[str, C.BenchModel]:
    """The four benchmark models, GPT-2 with SDPA too, and a 1-D model without a mask beside GPT-2."""
    from chunkc import zoo
    found = C.bench_models()
    out = {"gpt2": found["gpt2"],
           "gpt2_sdpa": C.BenchModel(
               "gpt2_sdpa", "GPT-2 (prefill), SDPA",
               lambda: zoo.gpt2(n_layer=2, n_embd=256, n_head=4, attn="sdpa", n_positions=16384),
               "L", "the same with attn_implementation='sdpa' (the library's default)"),
           "transformer": C.BenchModel(
               "transformer", "pre-LN transformer (no mask)",
               lambda: zoo.transformer(n_layer=2, d=256, heads=4, attn="eager", causal=False, max_len=65536),
               "L", "chunkc.zoo.transformer, 2 layers, d 256, 4 heads, eager attention, no mask")}
    out.update({k: found[k] for k in ("vit", "evoformer", "unet")})
    return out


def longest(fits: Callable[[int], bool], good: int, cap: int) -> int:
    """The largest n in [good, cap] with fits(n), given fits(good): doubling, then bisection.

    Assumes fits is monotone (true up to some n, false after)."""
    if not fits(good) and good > 0:
        raise ValueError(f"longest: the starting size {good} does not fit")
    bad = None
    while bad is None:
        nxt = min(2 * good, cap)
        if nxt == good:
            return good
        if fits(nxt):
            good = nxt
        else:
            bad = nxt
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


def largest_measured(fits: Callable[[int], bool], good: int, proposed: int) -> tuple[int, int]:
    """The largest n in [good, proposed] with fits(n) (fits(good) known), trying ``proposed``
    first: the estimator's proposal usually fits.  Returns (n, number of measurements)."""
    if proposed <= good:
        return good, 0
    tries = 1
    if fits(proposed):
        return proposed, tries
    bad = proposed
    while bad - good > max(1, good // 100):  # to 1%: each probe is a real run
        mid = (good + bad) // 2
        tries += 1
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good, tries


@dataclass
class Side:
    """One contender's result: the longest size, its measured peak and how it was found."""

    size: int = 0  # real size (tokens, side, residues)
    proposed: int = 0  # the estimator's proposal
    measured: int | None = None
    probes: int = 0  # estimator / planner probes
    measurements: int = 0
    plan: str = ""
    slowdown: float | None = None  # the cost model's estimate for the plan (chunkc only)
    error: str = ""


@dataclass
class Result:
    model: C.BenchModel
    base: int
    cap: int = 0  # the largest size searched
    budget: int = 0
    unchunked: Side = field(default_factory=Side)
    chunked: Side = field(default_factory=Side)
    error: str = ""

    def ratio(self) -> float | None:
        if self.unchunked.size and self.chunked.size:
            return self.chunked.size / self.unchunked.size
        return None


def measure_model(model: C.BenchModel, base: int, cap: int) -> Result:
    import chunkc
    res = Result(model, base)
    case = model.case()
    cap = res.cap = min(cap, case.max_size)
    graph = C.import_case(case)
    unit = case.size_multiple
    symbol = case.dynamic_name
    sym_name = next(iter(graph.symbols()))  # the graph's own name for the dynamic size

    def sizes_at(n_units: int) -> dict[str, int]:
        return {sym_name: n_units}

    plain = C.compile_torch(graph)
    base_args = case.make_inputs(base)
    res.budget = C.measure(plain, base_args)
    C.log(f"[{NAME}] {model.key}: budget {C.mib(res.budget)} MiB = unchunked peak at {symbol}-size {base}")

    # unchunked: the estimator proposes, a run confirms
    def est_fits(n: int) -> bool:
        res.unchunked.probes += 1
        return chunkc.estimate_memory(graph, sizes=sizes_at(n), backend="torch").peak_bytes <= res.budget

    plain_peaks: dict[int, int] = {base // unit: res.budget}

    def run_fits_plain(n: int) -> bool:
        plain_peaks[n] = C.measure(plain, case.make_inputs(n * unit))
        return plain_peaks[n] <= res.budget

    proposal = longest(est_fits, base // unit, cap // unit) if est_fits(base // unit) else base // unit
    res.unchunked.proposed = proposal * unit
    n, res.unchunked.measurements = largest_measured(run_fits_plain, base // unit, proposal)
    res.unchunked.size, res.unchunked.measured = n * unit, plain_peaks[n]
    C.log(f"[{NAME}] {model.key}: unchunked longest {res.unchunked.size} (proposed {res.unchunked.proposed})")

    # chunkc: a plan under the budget proposes, a run of the compiled plan confirms
    def plan_fits(n: int) -> bool:
        res.chunked.probes += 1
        try:
            C.plan_under(graph, res.budget, sizes_at(n))
            return True
        except chunkc.InfeasibleBudgetError:
            return False

    chunked_peaks: dict[int, tuple[int, str, float | None]] = {}

    def run_fits_chunked(n: int) -> bool:
        plan = C.plan_under(graph, res.budget, sizes_at(n))
        fn = C.compile_torch(graph, plan)
        peak = C.measure(fn, case.make_inputs(n * unit))
        C.log(f"[{NAME}] {model.key}: chunkc at {n * unit}: measured {C.mib(peak)} MiB")
        chunked_peaks[n] = (peak, C.plan_summary(plan, sizes_at(n)), plan.estimated_slowdown)
        return peak <= res.budget

    start = res.unchunked.size // unit
    proposal = longest(plan_fits, start, cap // unit)
    res.chunked.proposed = proposal * unit
    n, res.chunked.measurements = largest_measured(run_fits_chunked, start, proposal)
    res.chunked.size = n * unit
    res.chunked.measured, res.chunked.plan, res.chunked.slowdown = chunked_peaks.get(
        n, (res.unchunked.measured, "no regions needed", None))
    C.log(f"[{NAME}] {model.key}: chunkc longest {res.chunked.size} (proposed {res.chunked.proposed})")
    return res


@dataclass
class KeptRow:
    """A model's row kept from the section's last run (``--models`` reran others)."""

    model: C.BenchModel
    line: str  # the markdown row, as written then
    ratio: float | None  # chunkc / unchunked, read back from the row for the figure


def _kept_rows(settings: C.Settings, rerun: list[str]) -> dict[str, KeptRow]:
    """The rows of the models not in ``rerun``, from the section as last written, each marked
    with the time of the run that measured it."""
    old = C.current_section(settings.doc, NAME)
    when = C.stamped_at(old) or "an earlier run"
    kept = {}
    for key, model in models().items():
        if key in rerun:
            continue
        line = next((ln for ln in old.splitlines() if ln.startswith(f"| {model.label} |")), None)
        if line is None:
            continue
        if "row measured on" not in line:
            line = line.rstrip().rstrip("|").rstrip() + f"; row measured on {when} |"
        cells = [c.strip() for c in line.strip("|").split("|")]
        found = re.search(r"\*\*(?:≥ )?([0-9.]+)×\*\*", cells[6]) if len(cells) > 6 else None
        kept[key] = KeptRow(model, line, float(found.group(1)) if found else None)
    return kept


def _plot(results: list[Result], kept: dict[str, KeptRow], settings: C.Settings) -> str | None:
    ratio_of = {r.model.key: (r.model, r.ratio()) for r in results}
    ratio_of.update({k: (row.model, row.ratio) for k, row in kept.items()})
    done = [ratio_of[k] for k in models() if k in ratio_of and ratio_of[k][1]]
    if not done:
        return None
    fig, ax = C.new_figure(7.5, 3.8)
    names = [f"{m.label.replace(' (', chr(10) + '(')}\n[{m.size_name}]" for m, _ in done]
    xs = range(len(done))
    ax.bar([x - 0.2 for x in xs], [1.0] * len(done), width=0.4, label="unchunked", color="tab:grey")
    ax.bar([x + 0.2 for x in xs], [r for _, r in done], width=0.4, label="chunkc", color="tab:blue")
    for x, (_, r) in zip(xs, done):
        ax.text(x + 0.2, r, f"{r:.1f}×", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("longest size under the budget,\nrelative to unchunked")
    ax.set_title("Longest input at a fixed activation budget (measured)")
    ax.legend(fontsize=8)
    return C.save_figure(fig, "max_length", settings)


def render(results: list[Result], settings: C.Settings, plot: str | None,
           kept: dict[str, KeptRow] | None = None) -> str:
    lines = ["## Breaking the memory wall", "",
             "The longest input that fits a fixed activation budget.  Budget: the measured peak of the "
             "unchunked generated program at the base size.  Search: doubling from the base, then "
             "bisection, on the model's size (in steps of its divisibility), the estimator proposing "
             "(unchunked: `estimate_memory`; chunkc: `autochunk` finds a plan under the budget); the "
             "proposal is compiled, run and measured with `chunkc.measure_peak`, and the search goes on "
             "downwards on measurements (to 1%) when it does not fit.  For images the size is the side "
             "(pixels grow with its square).  *chunkc / unchunked* is the paper's comparison: 11.7× longer "
             "for 1-D inputs (GPT), 3.2× for 2-D.  At the limit chunkc uses whatever chunk fits, down to "
             "one row: *estimated time* is its cost model's slowdown for that plan (not measured: the "
             "unchunked program cannot run at that size within the budget).  The ratio grows with the "
             "base size (the unchunked peak grows faster than chunkc's floor); the pre-LN transformer "
             "row is a 1-D model with no L × L mask, beside GPT-2, whose causal mask is built once as an "
             "L × L float tensor shared by every layer (rematerialized per query chunk).  With exact "
             "attention a layer chunked over its queries still holds its input and the keys and values "
             "whole (three L × hidden tensors); where that floor is over the budget, nested loops (a loop "
             "over keys inside each query loop, recomputing keys and values from the held input; written-out "
             "attention is rewritten into SDPA for them) leave two: the input and the output.  With causal "
             "attention the query chunks run last first, each writing its output rows over input rows that no "
             "later chunk reads, which leaves one.  That floor, not the L × L scores, bounds GPT-2 against "
             "its L = 1024 peak; with SDPA the unchunked peak has no L × L term to give back.", ""]
    if plot:
        lines += [f"![longest input]({plot})", ""]
    rows = []
    for r in results:
        if r.error:
            rows.append([r.model.label, r.model.config, "", "", "", "", "", "", r.error])
            continue
        u, c = r.unchunked, r.chunked
        extra = f" (pixels {r.ratio() ** 2:.1f}×)" if r.model.size_name == "image side" and r.ratio() else ""
        at_cap = "≥ " if c.size >= r.cap else ""  # the search stopped at the largest size it tries
        rows.append([r.model.label, r.model.config, f"{r.model.size_name} = {r.base}", C.mib(r.budget),
                     f"{u.size} ({C.mib(u.measured)} MiB)", f"{at_cap}{c.size} ({C.mib(c.measured)} MiB; {c.plan})",
                     f"**{at_cap}{r.ratio():.2f}×**{extra}" if r.ratio() else "–",
                     f"×{c.slowdown:.2f}" if c.slowdown else "–",
                     f"proposed {u.proposed} / {c.proposed}; {u.probes} + {c.probes} probes, "
                     f"{u.measurements} + {c.measurements} runs"])
    table = C.table(["model", "config", "base", "budget MiB", "unchunked longest (measured peak)",
                     "chunkc longest (measured peak; plan)", "chunkc / unchunked", "estimated time", "search"], rows)
    # rows kept from the last run go back in the models' order
    measured = iter(table[2:])
    by_key = {r.model.key: next(measured) for r in results}
    by_key.update({k: row.line for k, row in (kept or {}).items()})
    lines += table[:2] + [by_key[k] for k in models() if k in by_key]
    if kept:
        lines += ["", f"This run measured {', '.join(r.model.label for r in results)} "
                      f"(`--models`); the other rows are kept from the run named in each row."]
    return "\n".join(lines + [""])


def run(settings: C.Settings, only: list[str] | None = None) -> C.SectionResult:
    only = list(only or settings.models) or None
    unknown = sorted(set(only or ()) - set(models()))
    if unknown:
        raise ValueError(f"{NAME}: unknown model(s) {', '.join(unknown)}; choose from {', '.join(models())}")
    kept = _kept_rows(settings, only) if only else {}
    results, failures = [], []
    for key, model in models().items():
        if only and key not in only:
            continue
        base, quick_base, cap = BASE[key]
        base = quick_base if settings.quick else base
        if settings.quick:
            cap = min(cap, 4 * base)
        t0 = time.perf_counter()
        try:
            res = measure_model(model, base, cap)
        except Exception as exc:
            import traceback
            traceback.print_exc()
            res = Result(model, base, error=f"failed: {C.short_error(exc, 400)}")
            failures.append(f"{NAME} {key}: {res.error}")
        results.append(res)
        C.log(f"[{NAME}] {key}: {time.perf_counter() - t0:.0f} s")
        for side in (res.unchunked, res.chunked):
            if side.measured is not None and side.measured > res.budget:
                failures.append(f"{NAME} {key}: measured {side.measured} B over the budget {res.budget} B")
    return C.SectionResult(render(results, settings, _plot(results, kept, settings), kept), failures)
