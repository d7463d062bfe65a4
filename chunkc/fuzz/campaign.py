"""A fuzzing campaign: many cases, counted and grouped into failure classes.

    from chunkc.fuzz.campaign import run_campaign
    summary = run_campaign(cases=200, seed=0)
    print(summary.format())

Case ``i`` of a campaign with seed ``s`` is ``random_case(s * 1_000_000 + i)``,
so a campaign is reproducible and any case can be rerun alone
(``python -m chunkc.fuzz --case N``).  Findings are grouped by their
signature (:attr:`Finding.signature`); the first case of each class can be
shrunk to a minimal graph, printed in chunkc's text form.  ``jobs`` > 1 runs
cases in that many worker processes (the counts do not depend on it).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..ir.printer import print_graph
from .graphs import FuzzCase, random_case
from .oracle import BACKENDS, KINDS, Finding, PlanOutcome, check_case
from .shrink import shrink

SEED_STRIDE = 1_000_000


def case_seed(seed: int, index: int) -> int:
    return seed * SEED_STRIDE + index


@dataclass
class CaseResult:
    """What one case came to (no graph: results travel between processes)."""

    seed: int
    seconds: float = 0.0
    nodes: int = 0
    families: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    outcomes: list[PlanOutcome] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings and not self.timed_out


@dataclass
class FailureClass:
    """Findings that share a signature."""

    signature: str
    kind: str
    findings: int = 0
    cases: list[int] = field(default_factory=list)  # case seeds, in order
    example: Finding | None = None
    shrunk: FuzzCase | None = None

    def format(self, shrunk_text: bool = True) -> str:
        seeds = ", ".join(map(str, self.cases[:8])) + (" ..." if len(self.cases) > 8 else "")
        lines = [f"[{self.kind}] {self.signature}", f"  {self.findings} finding(s) in {len(self.cases)} case(s): {seeds}",
                 f"  e.g. case {self.cases[0]}: {self.example}"]
        if self.shrunk is not None and shrunk_text:
            s = self.shrunk
            lines.append(f"  shrunk to {len(s.graph.nodes)} node(s), sizes {s.sizes}, "
                         f"budget(s) {', '.join(str(b) for b in s.budgets)}:")
            lines += ["    " + line for line in print_graph(s.graph).splitlines()]
        return "\n".join(lines)


@dataclass
class Summary:
    """Counts of one campaign."""

    seed: int
    cases: int = 0
    seconds: float = 0.0
    plans: Counter = field(default_factory=Counter)  # planned / infeasible / crash, over (backend, budget)
    findings: Counter = field(default_factory=Counter)  # kind -> findings
    failing_cases: Counter = field(default_factory=Counter)  # kind -> cases with at least one
    timeouts: list[int] = field(default_factory=list)
    classes: dict[str, FailureClass] = field(default_factory=dict)
    families: Counter = field(default_factory=Counter)  # model families drawn (the part before ':')

    def add(self, result: CaseResult) -> None:
        self.cases += 1
        self.seconds += result.seconds
        if result.timed_out:
            self.timeouts.append(result.seed)
            return
        self.families.update({f.split(":")[0] for f in result.families})
        self.plans.update(o.status for o in result.outcomes)
        kinds = set()
        for f in result.findings:
            self.findings[f.kind] += 1
            kinds.add(f.kind)
            cls = self.classes.get(f.signature)
            if cls is None:
                cls = self.classes[f.signature] = FailureClass(f.signature, f.kind, example=f)
            cls.findings += 1
            if not cls.cases or cls.cases[-1] != result.seed:
                cls.cases.append(result.seed)
        self.failing_cases.update(kinds)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.timeouts

    def format(self, shrunk_text: bool = True) -> str:
        lines = [f"fuzz: {self.cases} case(s), seed {self.seed}, {self.seconds:.0f} s of checks; plans: "
                 + (", ".join(f"{n} {k}" for k, n in sorted(self.plans.items())) or "none")]
        for kind in KINDS:
            lines.append(f"  {kind:20s} {self.findings[kind]:6d} finding(s) in {self.failing_cases[kind]} case(s)")
        if self.timeouts:
            lines.append(f"  timed out: cases {', '.join(map(str, self.timeouts))}")
        for cls in sorted(self.classes.values(), key=lambda c: (KINDS.index(c.kind), -c.findings)):
            lines.append(cls.format(shrunk_text))
        return "\n".join(lines)


class CaseTimeout(BaseException):
    """A case ran past its time limit.  Not an Exception: the oracle reports every Exception
    of a stage as a crash and goes on, which would swallow the timeout and let the case run
    on without a limit."""


# The time limit counts the CPU time the case takes, not the wall-clock time: on a busy
# machine (other processes, the other worker processes of --jobs) a case waits for a core,
# and a case that needs a minute of work took well over two minutes to run.  The wall clock
# still ends a case that waits on nothing at this many times the limit.
WALL_FACTOR = 4.0


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise :class:`CaseTimeout` once the process has spent ``seconds`` of CPU time inside,
    or ``WALL_FACTOR`` x ``seconds`` have passed."""
    if not seconds or not hasattr(signal, "SIGPROF"):
        yield
        return

    def _raise(signum, frame):
        raise CaseTimeout()
    timers = ((signal.SIGPROF, signal.ITIMER_PROF, seconds),
              (signal.SIGALRM, signal.ITIMER_REAL, seconds * WALL_FACTOR))
    old = [signal.signal(sig, _raise) for sig, _, _ in timers]
    for _, timer, limit in timers:
        signal.setitimer(timer, limit)
    try:
        yield
    finally:
        for (sig, timer, _), handler in zip(timers, old):
            signal.setitimer(timer, 0)
            signal.signal(sig, handler)


@dataclass(frozen=True)
class Profile:
    """How much each case does."""

    budgets: int = 4  # budgets per backend
    reruns: int = 2  # other sizes each plan runs at
    backends: tuple[str, ...] = BACKENDS
    measure: bool = True
    timeout: float | None = 120.0  # seconds of CPU time before a case is abandoned (and reported)
    # PyTorch's CPU threads while a case runs: one, as in every worker process (the small
    # programs gain nothing from more, and on a busy machine spinning threads slow them
    # several times); None leaves the process's setting
    torch_threads: int | None = 1

    def case(self, seed: int) -> FuzzCase:
        return random_case(seed, budgets=self.budgets, reruns=self.reruns)


LONG = Profile()
FAST = Profile(budgets=3, reruns=1, timeout=60.0)  # the suite's profile


@dataclass(frozen=True)
class _Task:
    seed: int
    profile: Profile


def run_case(task: _Task, make_case: Callable[[int], FuzzCase] | None = None) -> CaseResult:
    """One case, checked (a worker's job)."""
    t0 = time.perf_counter()
    p = task.profile
    try:
        with _time_limit(p.timeout), _torch_threads(p.torch_threads):
            case = (make_case or p.case)(task.seed)
            report = check_case(case, backends=p.backends, measure=p.measure, rerun=p.reruns > 0)
    except CaseTimeout:
        return CaseResult(task.seed, time.perf_counter() - t0, timed_out=True)
    return CaseResult(task.seed, report.seconds, len(case.graph.nodes), case.families, report.findings,
                      report.outcomes)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    try:
        import torch
    except ImportError:  # NumPy only
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_init(threads: int) -> None:
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass


def _results(tasks: list[_Task], jobs: int, make_case) -> Iterator[CaseResult]:
    if jobs <= 1 or make_case is not None:
        for task in tasks:
            yield run_case(task, make_case)
        return
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited torch threads
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(1,)) as pool:
        yield from pool.map(run_case, tasks, chunksize=4)


def run_campaign(cases: int, seed: int = 0, profile: Profile = LONG, shrink_classes: bool = False,
                 shrink_seconds: float = 120.0, jobs: int = 1,
                 make_case: Callable[[int], FuzzCase] | None = None,
                 on_case: Callable[[CaseResult], None] | None = None) -> Summary:
    """Run ``cases`` cases of ``profile``; with ``shrink_classes``, shrink the first case of
    every class.  ``make_case`` replaces the profile's generator (one process only)."""
    summary = Summary(seed)
    tasks = [_Task(case_seed(seed, i), profile) for i in range(cases)]
    for result in _results(tasks, jobs, make_case):
        summary.add(result)
        if on_case is not None:
            on_case(result)
    if shrink_classes:
        for cls in summary.classes.values():
            case = (make_case or profile.case)(cls.cases[0])
            cls.shrunk = shrink(case, cls.example, max_seconds=shrink_seconds)
    return summary


__all__ = ["run_campaign", "run_case", "case_seed", "Profile", "LONG", "FAST", "WALL_FACTOR", "CaseResult", "Summary",
           "FailureClass", "CaseTimeout"]
