"""The fuzzer's oracle: plan one case every way and check what must hold.

For each backend and each budget of a :class:`~chunkc.fuzz.graphs.FuzzCase`,
``check_case`` plans the graph (``chunkc.autochunk``), compiles the plan, runs it
at the planning sizes and at the case's other sizes, and holds the results
against the unchunked reference interpreter (in a graph with discontinuous ops, against
the same backend's unchunked program: see ``STEP_SHARE``).  What it reports (one
:class:`Finding` each):

``crash``               any exception but a clear ``InfeasibleBudgetError``, at any stage
``wrong``               an output differs from the interpreter's beyond float32 tolerance
``over_budget``         a plan's estimate above its budget, or its measured peak
                        (``chunkc.measure_peak`` on the backend that runs it) above
                        ``BUDGET_SLACK`` x the budget, at the planning sizes
``estimate``            the plan's (or the unchunked graph's) estimated peak off the
                        measured one by more than ``ESTIMATE_TOLERANCE``

(NumPy's measurement counts Python objects too: both memory checks allow it
``PYTHON_OBJECTS`` bytes more.)
``non_monotone``        a budget refused as infeasible while a smaller one got a plan
``self_contradicting``  an ``InfeasibleBudgetError`` whose lowest reachable peak is
                        below the budget it refused
"""

from __future__ import annotations

import dataclasses
import re
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import InfeasibleBudgetError
from ..ir.interpreter import interpret
from ..passes.selection import space_cache
from .graphs import Budget, FuzzCase, make_inputs

KINDS = ("crash", "wrong", "over_budget", "estimate", "non_monotone", "self_contradicting")
BACKENDS = ("numpy", "torch")
BUDGET_SLACK = 1.02  # measured peak <= this x budget
ESTIMATE_TOLERANCE = 0.02  # |estimate - measured| <= this x measured
# NumPy is measured with tracemalloc, which also counts the Python objects made during the call
# (frames, shape tuples, index and slice objects, array headers): a few KiB that no estimate of
# arrays can hold.  Both NumPy memory checks allow this much more.  (PyTorch's measure counts
# storages only: no allowance.)
PYTHON_OBJECTS = {"numpy": 4096}
RTOL, ATOL = 1e-3, 1e-4  # atol is scaled by the largest magnitude of the expected output
# A graph with discontinuous ops (records' ``discontinuous``: floor, round, a float cast to
# integers, comparisons of floats) steps where an input sits on a boundary: a backend whose
# kernels round that input one ulp apart from the interpreter's is off there by a whole step,
# and correctly so.  Its unchunked program may differ from the interpreter in this share of
# each output's entries (inputs that land within an ulp of a step are rare); its chunked
# programs are held to the same backend's unchunked program at the full tolerance.
STEP_SHARE = 1e-3


@dataclass(frozen=True)
class Finding:
    """One property that did not hold."""

    kind: str  # one of KINDS
    stage: str  # interpret | estimate | unchunked | plan | compile | run (measured too) | measure | rerun
    backend: str | None
    budget: Budget | None
    message: str
    error: str | None = None  # the exception's type, for crashes

    @property
    def signature(self) -> str:
        """A key that groups findings of one class: kind, stage, backend, and for crashes the
        error type and its message with names and numbers blanked out."""
        parts = [self.kind, self.stage, self.backend or "-"]
        if self.kind == "crash":
            parts += [self.error or "?", _blank(self.message)]
        elif self.kind == "estimate":
            parts.append(self.message.split(":", 1)[0])  # "estimate above" | "estimate below"
        return " | ".join(parts)

    def __str__(self) -> str:
        where = f"{self.backend}, budget {self.budget}" if self.backend else "unchunked"
        return f"{self.kind} at {self.stage} ({where}): {self.message}"


def _blank(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = re.sub(r"%[\w.]+", "%v", first)
    first = re.sub(r"\b(node|region|graph|constant|input|output) [\w.]+", r"\1 _", first)
    first = re.sub(r"\d+(\.\d+)?", "N", first)
    return first[:160]


@dataclass
class PlanOutcome:
    """What one (backend, budget) came to."""

    backend: str
    budget: Budget
    budget_bytes: int
    status: str  # planned | infeasible | crash
    regions: int = 0
    estimated: int | None = None
    measured: int | None = None
    lowest: int | None = None  # an infeasible budget's lowest reachable peak


@dataclass
class CaseReport:
    case: FuzzCase
    findings: list[Finding] = field(default_factory=list)
    outcomes: list[PlanOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings


def check_case(case: FuzzCase, backends: Sequence[str] = BACKENDS, measure: bool = True,
               rerun: bool = True, budgets: Iterable[Budget] | None = None, execute: bool = True) -> CaseReport:
    """Plan, compile, run and measure ``case`` on ``backends`` at each of its budgets
    (``execute=False``: plan only, for the findings planning alone shows)."""
    t0 = time.perf_counter()
    report = CaseReport(case)
    refs = _References(case)
    try:
        if execute:
            refs.at(case.sizes)
    except Exception as exc:  # the unchunked reference itself fails: nothing to compare with
        report.findings.append(_crash("interpret", None, None, exc))
        report.seconds = time.perf_counter() - t0
        return report
    with space_cache():  # one graph, many budgets: each search space is analysed once
        for backend in backends:
            _check_backend(case, backend, list(case.budgets if budgets is None else budgets), refs, measure, rerun,
                           report, execute)
    report.seconds = time.perf_counter() - t0
    return report


class _References:
    """The interpreter's outputs and the inputs, per sizes (computed once)."""

    def __init__(self, case: FuzzCase):
        self.case = case
        self._cache: dict[tuple, tuple[list, list]] = {}

    def at(self, sizes: dict[str, int]) -> tuple[list, list]:
        key = tuple(sorted(sizes.items()))
        if key not in self._cache:
            inputs = make_inputs(self.case.graph, sizes, self.case.seed, self.case.int_high)
            self._cache[key] = (inputs, interpret(self.case.graph, *inputs))
        return self._cache[key]

    def expected(self, sizes: dict[str, int]) -> tuple[str, list]:
        """(what the outputs are held to, the outputs) at ``sizes``."""
        return "the interpreter", self.at(sizes)[1]


def discontinuous_nodes(graph) -> list[str]:
    """Names of the nodes whose op records say they are discontinuous for their inputs
    (:attr:`chunkc.ir.registry.OpDef.discontinuous`)."""
    return [n.name for n in graph.nodes if n.op.is_discontinuous([v.type for v in n.inputs], n.attrs)]


class _UnchunkedReferences:
    """For a graph with discontinuous ops: the backend's own unchunked program's outputs, per
    sizes, which its chunked programs are held to (each also held to the interpreter, allowing
    ``STEP_SHARE`` of the entries a step off; a program that fails or differs more leaves the
    interpreter as the reference)."""

    def __init__(self, case: FuzzCase, backend: str, refs: _References, report: CaseReport):
        self.case, self.backend, self.refs, self.report = case, backend, refs, report
        self._fn = None
        self._cache: dict[tuple, tuple[str, list]] = {}

    def expected(self, sizes: dict[str, int]) -> tuple[str, list]:
        key = tuple(sorted(sizes.items()))
        if key not in self._cache:
            self._cache[key] = self._run(sizes)
        return self._cache[key]

    def _run(self, sizes: dict[str, int]) -> tuple[str, list]:
        from ..backends import compile as compile_graph
        inputs, interpreted = self.refs.at(sizes)
        try:
            if self._fn is None:
                self._fn = compile_graph(self.case.graph, None, backend=self.backend)
            got = [_numpy(g) for g in _as_list(self._fn(*_arguments(self.backend, inputs)))]
        except Exception as exc:
            if sizes != self.case.sizes:  # at the planning sizes _run_unchunked reported it
                self.report.findings.append(_crash("unchunked", self.backend, None, exc, sizes))
            return "the interpreter", interpreted
        if _compare(got, interpreted, STEP_SHARE):
            if sizes != self.case.sizes:
                self.report.findings.append(Finding("wrong", "unchunked", self.backend, None,
                                                    f"at sizes {sizes}: {_compare(got, interpreted, STEP_SHARE)}"))
            return "the interpreter", interpreted
        return "the unchunked program", got


def _check_backend(case: FuzzCase, backend: str, budgets: list[Budget], refs: _References, measure: bool,
                   rerun: bool, report: CaseReport, execute: bool = True) -> None:
    from ..passes.autochunk import autochunk, resolve_budget
    from ..passes.memory import estimate_memory
    try:
        unchunked = estimate_memory(case.graph, sizes=case.sizes, backend=backend).peak_bytes
    except Exception as exc:
        report.findings.append(_crash("estimate", backend, None, exc))
        return
    expected = refs.expected
    if execute:
        _run_unchunked(case, backend, unchunked, refs, measure, report)
        if discontinuous_nodes(case.graph):
            expected = _UnchunkedReferences(case, backend, refs, report).expected
    outcomes = []
    programs: dict[str, _Runs] = {}  # programs run, by _program_key: budgets with one program run it once
    for budget in budgets:
        value = budget.value(unchunked)
        budget_bytes = resolve_budget(value, unchunked)
        try:
            plan = autochunk(case.graph, value, sizes=dict(case.sizes), backend=backend, progress=False)
        except InfeasibleBudgetError as exc:
            outcomes.append(PlanOutcome(backend, budget, budget_bytes, "infeasible", lowest=exc.lowest_peak_bytes))
            if exc.lowest_peak_bytes < budget_bytes:
                report.findings.append(Finding(
                    "self_contradicting", "plan", backend, budget,
                    f"refused {budget_bytes} B, yet says the lowest reachable peak is {exc.lowest_peak_bytes} B"))
            continue
        except Exception as exc:
            outcomes.append(PlanOutcome(backend, budget, budget_bytes, "crash"))
            report.findings.append(_crash("plan", backend, budget, exc))
            continue
        outcome = PlanOutcome(backend, budget, budget_bytes, "planned", regions=len(plan.regions),
                              estimated=plan.estimated_peak_bytes)
        outcomes.append(outcome)
        if plan.estimated_peak_bytes > budget_bytes:
            report.findings.append(Finding("over_budget", "plan", backend, budget,
                                           f"estimated peak {plan.estimated_peak_bytes} B > budget {budget_bytes} B"))
        if execute:
            _run_plan(case, backend, budget, plan, outcome, expected, measure, rerun, report, programs)
    report.outcomes += outcomes
    report.findings += _monotonicity(backend, outcomes)


def _run_unchunked(case: FuzzCase, backend: str, estimate: int, refs: _References, measure: bool,
                   report: CaseReport) -> None:
    """The graph compiled without a plan: its outputs, and its estimate against its measure
    (which separates an op record's error from a chunk loop's)."""
    from ..backends import compile as compile_graph
    try:
        fn = compile_graph(case.graph, None, backend=backend)
        args = _arguments(backend, refs.at(case.sizes)[0])
        got, measured = _call(fn, args, measure, warm=False)
    except Exception as exc:
        report.findings.append(_crash("unchunked", backend, None, exc))
        return
    problem = _compare(_as_list(got), refs.at(case.sizes)[1], STEP_SHARE if discontinuous_nodes(case.graph) else 0.0)
    if problem:
        report.findings.append(Finding("wrong", "unchunked", backend, None, problem))
    if measured is not None:
        _check_estimate(report, "unchunked", backend, None, estimate, measured, 0)


def _call(fn, args: list, measure: bool, warm: bool = True) -> tuple[Any, int | None]:
    """``fn(*args)`` and, with ``measure``, its measured peak: one call does both (the
    measure runs the program once and keeps what it returns).  Unless ``warm`` (the program
    ran before, at any sizes), it runs once unmeasured first: a first call makes Python
    objects that stay (imports inside functions, caches), which NumPy's tracemalloc counts."""
    if not measure:
        return fn(*args), None
    from ..measure import measure_peak
    if not warm:
        fn(*args)
    box: list = [None]

    def call(*a):
        box[0] = fn(*a)
        return box[0]
    measured = measure_peak(call, *args)
    return box[0], measured


def _check_estimate(report: CaseReport, stage: str, backend: str, budget: Budget | None, estimate: int,
                    measured: int, regions: int) -> None:
    if abs(estimate - measured) > ESTIMATE_TOLERANCE * measured + PYTHON_OBJECTS.get(backend, 0):
        side = "above" if estimate > measured else "below"
        report.findings.append(Finding(
            "estimate", stage, backend, budget,
            f"estimate {side}: estimated {estimate} B, measured {measured} B "
            f"({estimate / max(measured, 1) - 1:+.1%}; {regions} region(s))"))


@dataclass
class _Runs:
    """What running one program came to: its findings that do not depend on the budget
    (crashes, wrong values) and its measured peak at the planning sizes."""

    findings: list[Finding] = field(default_factory=list)
    measured: int | None = None


def _program_key(plan, run_sizes: list[dict[str, int]]) -> str | None:
    """A key equal for two plans that compile to programs doing the same at every size the
    case runs: the same graph, regions, and chunk sizes at those sizes (the budget differs
    only in the chunk-size formulas); None when a chunk size cannot be evaluated."""
    from ..ir.printer import print_graph
    from ..ir.sizes import evaluate
    try:
        chunks = [[evaluate(r.chunk_size, sizes) for r in plan.regions] for sizes in run_sizes]
    except Exception:
        return None
    regions = [(r.nodes, r.chunked, r.outputs, r.whole_reads, r.reuse, r.inner, r.last_first) for r in plan.regions]
    return f"{print_graph(plan.graph)}\n{regions!r}\n{chunks!r}"


def _run_plan(case: FuzzCase, backend: str, budget: Budget, plan, outcome: PlanOutcome, expected, measure: bool,
              rerun: bool, report: CaseReport, programs: dict[str, _Runs] | None = None) -> None:
    """Compile and run ``plan``, its outputs held to ``expected(sizes)`` (see
    :meth:`_References.expected`); a program equal to one already run (``programs``, by
    :func:`_program_key`) is not run again: its findings and measure are taken over."""
    run_sizes = [case.sizes] + (list(case.rerun_sizes) if rerun else [])
    key = _program_key(plan, run_sizes) if programs is not None else None
    runs = programs.get(key) if key is not None else None
    if runs is None:
        runs = _run_program(case, backend, plan, expected, measure, run_sizes)
        if key is not None:
            programs[key] = runs
    report.findings += [dataclasses.replace(f, budget=budget) for f in runs.findings]
    measured = runs.measured
    if measured is None:
        return
    outcome.measured = measured
    if measured > BUDGET_SLACK * outcome.budget_bytes + PYTHON_OBJECTS.get(backend, 0):
        report.findings.append(Finding(
            "over_budget", "measure", backend, budget,
            f"measured peak {measured} B = {measured / outcome.budget_bytes:.3f} x the budget "
            f"{outcome.budget_bytes} B (estimate {plan.estimated_peak_bytes} B, {len(plan.regions)} region(s))"))
    _check_estimate(report, "measure", backend, budget, plan.estimated_peak_bytes, measured, len(plan.regions))


def _run_program(case: FuzzCase, backend: str, plan, expected, measure: bool, run_sizes: list[dict[str, int]]) -> _Runs:
    from ..backends import compile as compile_graph
    runs = _Runs()
    try:
        fn = compile_graph(case.graph, plan, backend=backend)
    except Exception as exc:
        runs.findings.append(_crash("compile", backend, None, exc))
        return runs
    # the other sizes first: they warm the program up for the measured call at the planning sizes
    for k in list(range(1, len(run_sizes))) + [0]:
        sizes = run_sizes[k]
        stage = "run" if k == 0 else "rerun"
        against, outputs = expected(sizes)
        args = _arguments(backend, make_inputs(case.graph, sizes, case.seed, case.int_high))
        try:
            got, measured = _call(fn, args, measure and k == 0, warm=len(run_sizes) > 1)
        except Exception as exc:
            runs.findings.append(_crash(stage, backend, None, exc, sizes))
            continue
        if k == 0:
            runs.measured = measured
        problem = _compare(_as_list(got), outputs)
        if problem:
            runs.findings.append(Finding("wrong", stage, backend, None,
                                         f"at sizes {sizes}, against {against}: {problem}"))
    return runs


def _monotonicity(backend: str, outcomes: list[PlanOutcome]) -> list[Finding]:
    planned = [o for o in outcomes if o.status == "planned"]
    if not planned:
        return []
    smallest = min(planned, key=lambda o: o.budget_bytes)
    out = []
    for o in outcomes:
        if o.status == "infeasible" and o.budget_bytes > smallest.budget_bytes:
            out.append(Finding("non_monotone", "plan", backend, o.budget,
                               f"budget {o.budget_bytes} B refused (lowest reachable {o.lowest} B) while the smaller "
                               f"budget {smallest.budget_bytes} B ({smallest.budget}) got a plan"))
    return out


def _arguments(backend: str, inputs: list[np.ndarray]) -> list:
    if backend == "torch":
        import torch
        return [torch.from_numpy(np.array(a, copy=True)) for a in inputs]
    return [np.array(a, copy=True) for a in inputs]


def _as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _compare(got: list, expected: list, step_share: float = 0.0) -> str | None:
    """None when every output matches, else what differs first; ``step_share``: the share of
    an output's entries that may differ (a step where a discontinuous op's input sits on a
    boundary, see ``STEP_SHARE``)."""
    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        g, e = _numpy(g), np.asarray(e)
        if g.shape != e.shape:
            return f"output {i}: shape {g.shape}, expected {e.shape}"
        allowed = int(step_share * e.size)
        if e.dtype.kind in "biu" or g.dtype.kind in "biu":
            if int(np.sum(g != e)) > allowed:
                return f"output {i}: {int(np.sum(g != e))} of {e.size} integer entries differ" + _allowance(allowed)
            continue
        g64, e64 = g.astype(np.float64), e.astype(np.float64)
        finite = np.isfinite(e64)
        scale = float(np.max(np.abs(e64[finite]))) if finite.any() else 1.0
        close = np.isclose(g64, e64, rtol=RTOL, atol=ATOL * max(scale, 1.0), equal_nan=True)
        if int(np.sum(~close)) > allowed:
            bad = np.argwhere(~close)[0]
            where = tuple(int(k) for k in bad)
            return (f"output {i}: {int(np.sum(~close))} of {e.size} entries differ{_allowance(allowed)}; at {where} "
                    f"got {g64[where]!r}, expected {e64[where]!r}")
    return None


def _allowance(allowed: int) -> str:
    return f" (a step allowed at {allowed})" if allowed else ""


def _crash(stage: str, backend: str | None, budget: Budget | None, exc: BaseException,
           sizes: dict | None = None) -> Finding:
    where = f" at sizes {sizes}" if sizes else ""
    tb = traceback.extract_tb(exc.__traceback__)
    origin = f" [{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}]" if tb else ""
    return Finding("crash", stage, backend, budget, f"{exc}{where}{origin}", error=type(exc).__name__)


__all__ = ["KINDS", "BACKENDS", "STEP_SHARE", "Finding", "PlanOutcome", "CaseReport", "check_case",
           "discontinuous_nodes"]
