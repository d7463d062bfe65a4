"""The differential fuzzer: its fast profile (every CI run) and the fuzzer's own machinery.

The fast profile runs ``FAST_CASES`` cases of a fixed campaign seed through every check of
chunkc.fuzz.oracle (docs/fuzzing.md); each kind of finding is one test, which prints the
failure classes it found.  The long profile is ``python -m benchmarks fuzz --cases 10000``.
The failure classes the long profile finds in the planner (chunkc/passes/search.py,
region_memory.py, autochunk.py) have a minimal reproducer each in
tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.fuzz import Budget, FuzzCase, random_case
from chunkc.fuzz.campaign import FAST, case_seed, run_campaign
from chunkc.fuzz.oracle import check_case
from chunkc.fuzz.shrink import rebuild, shrink
from chunkc.ir.registry import lookup

FAST_CASES = 8
FAST_SEED = 0

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def fast():
    return run_campaign(FAST_CASES, seed=FAST_SEED, profile=FAST)


def _classes(summary, kind: str) -> str:
    return "\n".join(c.format(shrunk_text=False) for c in summary.classes.values() if c.kind == kind)


def test_fast_profile_runs_every_case(fast):
    assert fast.cases == FAST_CASES and not fast.timeouts
    assert fast.plans["planned"] > 0 and fast.plans["infeasible"] > 0  # the budgets span both answers


@pytest.mark.parametrize("kind", ["crash", "wrong", "over_budget", "estimate"])
def test_fast_profile_finds_nothing(fast, kind):
    assert fast.findings[kind] == 0, _classes(fast, kind)


def test_fast_profile_answers_are_monotone(fast):
    assert fast.findings["non_monotone"] == 0, _classes(fast, "non_monotone")


def test_fast_profile_errors_are_consistent(fast):
    assert fast.findings["self_contradicting"] == 0, _classes(fast, "self_contradicting")


# -- the generator ---------------------------------------------------------------------------------------


def test_cases_are_reproducible():
    a, b = random_case(case_seed(3, 17)), random_case(case_seed(3, 17))
    assert chunkc.print_graph(a.graph) == chunkc.print_graph(b.graph) and a.sizes == b.sizes
    assert a.budgets == b.budgets and a.families == b.families
    for x, y in zip(a.inputs(), b.inputs()):
        np.testing.assert_array_equal(x, y)


def test_generator_covers_the_op_families():
    seen = set()
    for i in range(200):
        seen.update(n.op.name for n in random_case(i).graph.nodes)
    for op in ("scaled_dot_product_attention", "einsum", "matmul", "bmm", "split", "tril", "triu", "masked_fill",
               "where", "softmax", "layer_norm", "rms_norm", "group_norm", "batch_norm", "conv", "max_pool",
               "avg_pool", "pad", "cumsum", "topk", "sort", "embedding", "gather", "concat", "reshape", "permute",
               "arange", "interpolate", "conv_transpose", "scatter_elements", "bitwise_xor", "expand", "stack",
               "take", "argmax", "argmin", "roll", "flip", "tile", "var", "addmm"):
        assert op in seen, f"200 cases drew no {op}"


def test_graphs_are_large_enough_to_measure():
    from chunkc.fuzz.graphs import MIN_PEAK
    from chunkc.passes.memory import estimate_memory
    peaks = [estimate_memory(c.graph, sizes=c.sizes).peak_bytes for c in map(random_case, range(20))]
    assert sum(p >= MIN_PEAK for p in peaks) >= 15, peaks


# -- the oracle sees planted faults ---------------------------------------------------------------------


def _tiny_case(seed=0) -> FuzzCase:
    g = chunkc.Graph("tiny")
    x = g.add_input("x", "f32", ("L", 256))
    w = g.add_constant("w", np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) / 16)
    g.set_outputs(O.softmax(O.exp(O.tanh(O.matmul(x, w))), axis=-1))
    return FuzzCase(seed, g, {"L": 1024}, ({"L": 333},), (Budget(0.7), Budget(0.6, in_bytes=True)))


def test_a_clean_case_has_no_finding():
    report = check_case(_tiny_case())
    assert report.ok, [str(f) for f in report.findings]
    assert {o.status for o in report.outcomes} == {"planned"}


def test_a_wrong_kernel_is_a_wrong_result(monkeypatch):
    import chunkc.backends.runtime as runtime
    tanh = lookup("tanh").reference
    monkeypatch.setattr(runtime.references, "tanh", lambda xp, x: tanh(xp, x) + 1e-2, raising=False)
    report = check_case(_tiny_case(), backends=("numpy",), measure=False)
    assert {(f.kind, f.stage) for f in report.findings} >= {("wrong", "run"), ("wrong", "rerun")}


def _stepping_case() -> FuzzCase:
    """A graph with a discontinuous op (floor), as seed 11's case 11000131 had (a cast to
    integers): its output steps where a float input sits on a boundary."""
    g = chunkc.Graph("stepping")
    x = g.add_input("x", "f32", ("L", 256))
    w = g.add_constant("w", np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) / 16)
    h = O.tanh(O.matmul(x, w))
    g.set_outputs(O.add(h, O.floor(O.mul(h, 4.0))))
    return FuzzCase(0, g, {"L": 1024}, ({"L": 333},), (Budget(0.7), Budget(0.6, in_bytes=True)))


def _interpreter_a_step_off(monkeypatch):
    """The interpreter's first output one step (1.0) off at one entry: what a backend whose
    kernels round an input of floor one ulp apart from the interpreter's sees there."""
    import chunkc.fuzz.oracle as oracle
    real = oracle.interpret

    def stepped(graph, *inputs):
        out = list(real(graph, *inputs))
        out[0] = np.array(out[0], copy=True)
        out[0].flat[7] += 1.0
        return out
    monkeypatch.setattr(oracle, "interpret", stepped)


def test_records_say_which_ops_step():
    f32, i32 = chunkc.TensorType(chunkc.DType.float32, (4,)), chunkc.TensorType(chunkc.DType.int32, (4,))
    assert lookup("floor").is_discontinuous([f32], {})
    assert lookup("cast").is_discontinuous([f32], {"dtype": "i32"})
    assert lookup("cast").is_discontinuous([f32], {"dtype": "f16"})  # rounds to a coarser ulp
    assert lookup("cast").is_discontinuous([f32], {"dtype": "bf16"})
    f16 = chunkc.TensorType(chunkc.DType.float16, (4,))
    assert not lookup("cast").is_discontinuous([f16], {"dtype": "f32"})  # exact
    assert not lookup("cast").is_discontinuous([f32], {"dtype": "f64"})
    assert not lookup("cast").is_discontinuous([i32], {"dtype": "f16"})
    assert lookup("gt").is_discontinuous([f32, f32], {}) and not lookup("gt").is_discontinuous([i32, i32], {})
    assert not lookup("tanh").is_discontinuous([f32], {})


def test_a_step_at_a_boundary_is_not_a_wrong_result_where_ops_step(monkeypatch):
    """In a graph with a discontinuous op, the chunked programs are held to their backend's
    unchunked program, and that one to the interpreter with STEP_SHARE of its entries a step
    off: a step at one entry is no finding."""
    from chunkc.fuzz.oracle import discontinuous_nodes
    case = _stepping_case()
    assert discontinuous_nodes(case.graph) == [n.name for n in case.graph.nodes if n.op.name == "floor"]
    _interpreter_a_step_off(monkeypatch)
    report = check_case(case, measure=False)
    assert report.ok, [str(f) for f in report.findings]
    assert {o.status for o in report.outcomes} == {"planned"}


def test_a_step_is_a_wrong_result_where_no_op_steps(monkeypatch):
    """The same step in a graph without discontinuous ops is found, at every stage."""
    _interpreter_a_step_off(monkeypatch)
    report = check_case(_tiny_case(), backends=("numpy",), measure=False)
    assert {(f.kind, f.stage) for f in report.findings} >= {("wrong", "unchunked"), ("wrong", "run")}


def test_a_cast_to_a_narrower_float_is_a_step():
    """Case 8000051: a residual sum cast to f16 and back, then added to a value that nearly
    cancels it.  PyTorch's linear and the interpreter's round one entry of the sum an f32 ulp
    apart, across an f16 rounding boundary: that entry differs by an f16 ulp (5e-4), above the
    float32 tolerance of the small result.  The cast's record calls it a step, so the oracle
    allows it in the unchunked program and holds the chunked ones to that program."""
    case = random_case(case_seed(8, 51))
    assert any(n.op.name == "cast" and n.attrs["dtype"] in ("f16", "float16") for n in case.graph.nodes)
    report = check_case(case, backends=("torch",), measure=False)
    assert report.ok, [str(f) for f in report.findings]


def test_a_wrong_kernel_is_found_where_ops_step(monkeypatch):
    """A kernel off everywhere is beyond the step share: the unchunked program is wrong, and
    the chunked ones are held to the interpreter again."""
    import chunkc.backends.runtime as runtime
    tanh = lookup("tanh").reference
    monkeypatch.setattr(runtime.references, "tanh", lambda xp, x: tanh(xp, x) + 1e-2, raising=False)
    report = check_case(_stepping_case(), backends=("numpy",), measure=False)
    found = {(f.kind, f.stage) for f in report.findings}
    assert found >= {("wrong", "unchunked"), ("wrong", "run"), ("wrong", "rerun")}
    assert all("against the interpreter" in f.message for f in report.findings if f.stage in ("run", "rerun"))


def test_a_program_run_once_serves_every_budget_that_plans_it(monkeypatch):
    """Two budgets that plan one program (same regions, same chunk sizes at every size the
    case runs) run it once; the findings of that run are reported for both budgets."""
    import chunkc.backends.runtime as runtime
    import chunkc.fuzz.oracle as oracle
    tanh = lookup("tanh").reference
    monkeypatch.setattr(runtime.references, "tanh", lambda xp, x: tanh(xp, x) + 1e-2, raising=False)
    ran = []
    real = oracle._run_program
    monkeypatch.setattr(oracle, "_run_program", lambda *a, **k: ran.append(1) or real(*a, **k))
    case = _tiny_case()
    case = FuzzCase(case.seed, case.graph, case.sizes, case.rerun_sizes, (Budget(0.7), Budget(0.7, in_bytes=True)))
    report = check_case(case, backends=("numpy",))
    assert len(ran) == 1
    wrong = [f for f in report.findings if f.kind == "wrong" and f.stage == "run"]
    assert {str(f.budget) for f in wrong} == {str(b) for b in case.budgets}
    assert all(o.measured is not None for o in report.outcomes)


def test_the_measured_call_is_the_checked_one(monkeypatch):
    """At the planning sizes one call gives the values checked and the peak measured."""
    import chunkc.fuzz.oracle as oracle
    calls = []
    real = oracle._call
    monkeypatch.setattr(oracle, "_call", lambda fn, args, measure, warm=True:
                        calls.append((measure, warm)) or real(fn, args, measure, warm))
    report = check_case(_tiny_case(), backends=("numpy",))
    assert report.ok, [str(f) for f in report.findings]
    # the unchunked program (warmed up inside _call), then per program its other size first,
    # which warms it up for the measured call at the planning sizes
    assert calls[0] == (True, False)
    assert calls[1:] and calls[1:] == [(False, True), (True, True)] * (len(calls[1:]) // 2)


def test_a_case_past_its_time_limit_is_a_timeout_not_a_crash(monkeypatch):
    """The time limit's signal arrives inside a stage the oracle guards with ``except
    Exception``: it must end the case, not be reported as a crash of that stage (after which
    the case ran on without a limit).  The limit counts the CPU time the case spends."""
    import time

    import chunkc.passes.autochunk as autochunk_module
    from chunkc.fuzz.campaign import CaseTimeout, _time_limit

    def slow(*args, **kwargs):
        t = time.process_time()
        while time.process_time() - t < 5:
            pass
        raise KeyError("planned too slowly")
    monkeypatch.setattr(autochunk_module, "autochunk", slow)
    t0 = time.process_time()
    with pytest.raises(CaseTimeout):
        with _time_limit(0.5):
            check_case(_tiny_case(), backends=("numpy",), execute=False)
    assert time.process_time() - t0 < 2


def test_the_time_limit_counts_cpu_time_and_the_wall_clock_backs_it_up():
    """Waiting (here: sleeping, on a busy machine: for a core) is not the case's time; a case
    that waits on nothing is still ended by the wall clock, at WALL_FACTOR x the limit."""
    import time

    from chunkc.fuzz.campaign import WALL_FACTOR, CaseTimeout, _time_limit

    with _time_limit(0.2):
        time.sleep(0.3)  # past the limit by the wall clock, not by CPU time
    t0 = time.perf_counter()
    with pytest.raises(CaseTimeout):
        with _time_limit(0.2):
            time.sleep(0.2 * WALL_FACTOR + 5)
    assert time.perf_counter() - t0 < 0.2 * WALL_FACTOR + 2


def test_a_low_estimate_is_found(monkeypatch):
    import chunkc.passes.autochunk as autochunk_module
    real = autochunk_module.autochunk

    def optimistic(*args, **kwargs):
        plan = real(*args, **kwargs)
        plan.estimated_peak_bytes //= 2
        return plan
    monkeypatch.setattr(autochunk_module, "autochunk", optimistic)
    report = check_case(_tiny_case(), backends=("torch",), rerun=False)
    assert any(f.kind == "estimate" and "below" in f.message for f in report.findings)


def test_a_crash_in_planning_is_a_crash(monkeypatch):
    import chunkc.passes.autochunk as autochunk_module

    def broken(*args, **kwargs):
        raise KeyError("boom")
    monkeypatch.setattr(autochunk_module, "autochunk", broken)
    report = check_case(_tiny_case(), backends=("numpy",))
    assert [f.kind for f in report.findings] == ["crash", "crash"]
    assert report.findings[0].error == "KeyError" and "plan" in report.findings[0].signature


def test_refusals_are_held_against_each_other(monkeypatch):
    import chunkc.passes.autochunk as autochunk_module
    from chunkc.errors import InfeasibleBudgetError
    real = autochunk_module.autochunk

    def refuse_large(graph, budget, **kwargs):  # refuses the larger budget, with a figure below it
        if budget == 0.7:
            raise InfeasibleBudgetError("no plan", lowest_peak_bytes=1, peak_node=None)
        return real(graph, budget, **kwargs)
    monkeypatch.setattr(autochunk_module, "autochunk", refuse_large)
    kinds = sorted(f.kind for f in check_case(_tiny_case(), backends=("numpy",), execute=False).findings)
    assert kinds == ["non_monotone", "self_contradicting"]


# -- shrinking ------------------------------------------------------------------------------------------


def test_rebuild_cuts_and_bypasses_and_keeps_names():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", (4, 8))
    a = O.exp(x, name="a")
    b = O.tanh(a, name="b")
    c = O.add(b, x, name="c")
    g.set_outputs(c)
    bypassed = rebuild(g, {"b": "a"}, ["c"])
    assert [n.name for n in bypassed.nodes] == ["a", "c"] and bypassed.node("c").inputs[0].name == "a"
    cut = rebuild(g, {"b": None}, ["c"])
    assert [v.name for v in cut.inputs] == ["x", "b"] and [n.name for n in cut.nodes] == ["c"]
    chunkc.verify(bypassed)
    chunkc.verify(cut)


def test_shrink_keeps_the_class_and_drops_the_rest():
    """A planted fault (a refused budget whose lowest reachable figure is below it, whenever the
    graph has a softmax) shrinks to the softmax alone."""
    from chunkc.fuzz.oracle import CaseReport, Finding

    def fake_check(case):
        has = any(n.op.name == "softmax" for n in case.graph.nodes)
        report = CaseReport(case)
        if has:
            report.findings.append(Finding("self_contradicting", "plan", "numpy", case.budgets[0], "planted"))
        return report
    case = random_case(case_seed(0, 3))
    while not any(n.op.name == "softmax" for n in case.graph.nodes):
        case = random_case(case.seed + 1)
    finding = Finding("self_contradicting", "plan", "numpy", case.budgets[0], "planted")
    small = shrink(case, finding, check=fake_check, max_seconds=60)
    assert [n.op.name for n in small.graph.nodes] == ["softmax"], chunkc.print_graph(small.graph)
    assert small.budgets == (case.budgets[0],)


def test_benchmark_section_states_counts_seed_and_command():
    from benchmarks.fuzz import render
    from chunkc.fuzz.campaign import CaseResult, Summary
    from chunkc.fuzz.oracle import Finding, PlanOutcome
    summary = Summary(seed=7)
    budget = Budget(0.5)
    summary.add(CaseResult(7000000, 1.0, 10, ("seq:D16H1",), outcomes=[PlanOutcome("numpy", budget, 100, "planned")]))
    summary.add(CaseResult(7000001, 1.0, 10, ("image:C8",), findings=[
        Finding("wrong", "run", "torch", budget, "output 0: 3 of 12 entries differ")],
        outcomes=[PlanOutcome("torch", budget, 100, "planned")]))
    text = render(summary, 2)
    assert "campaign seed 7" in text and "python -m chunkc.fuzz --cases 2 --seed 7" in text
    assert "| wrong | 1 | 1 |" in text and "| crash | 0 | 0 |" in text
    assert "7000001" in text and "entries differ" in text
