"""Selection is monotonic in the budget: when autochunk finds a plan for a budget B, it finds one
for every larger budget (issue 13).  Checked on random graphs (hypothesis; the "chunkc" profile
runs 40 graphs, ``CHUNKC_MONOTONE_EXAMPLES=1000`` runs that many) and on a zoo model at the
budgets of the issue's report."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkc
from strategies import random_graphs

EXAMPLES = int(os.environ.get("CHUNKC_MONOTONE_EXAMPLES", "40"))


def feasible(graph, budget: int, sizes, backend: str = "numpy") -> bool:
    try:
        plan = chunkc.autochunk(graph, budget, sizes=sizes, backend=backend, progress=False)
    except chunkc.InfeasibleBudgetError:
        return False
    assert plan.estimated_peak_bytes <= budget
    return True


def assert_upward_closed(graph, sizes, budgets, floor: int) -> None:
    """Once a budget has a plan, every larger one has too; every budget from ``floor`` up has one."""
    found = [(b, feasible(graph, b, sizes)) for b in sorted(budgets)]
    first = next((k for k, (_, ok) in enumerate(found) if ok), len(found))
    failed = [b for b, ok in found[first:] if not ok]
    assert not failed, (f"graph {graph.name}: a plan for {found[first][0]} B but none for the larger "
                        f"budget(s) {failed} B; all: {found}")
    below = [b for b, ok in found if b >= floor and not ok]
    assert not below, f"graph {graph.name}: the reported floor is {floor} B, yet no plan for {below} B"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=random_graphs(max_nodes=12), scale=st.integers(8, 32),
       fractions=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=6, unique=True))
def test_random_graphs_a_larger_budget_never_loses_its_plan(case, scale, fractions):
    sizes = {s: v * scale if s == "L" else v for s, v in case.sizes.items()}
    unchunked = chunkc.estimate_memory(case.graph, sizes=sizes, backend="numpy").peak_bytes
    try:
        chunkc.autochunk(case.graph, 1, sizes=sizes, backend="numpy", progress=False)
        floor = 1
    except chunkc.InfeasibleBudgetError as exc:
        floor = exc.lowest_peak_bytes
    # budgets spread over the interesting range: from half the floor to the unchunked peak
    budgets = {max(1, int(floor / 2 + f * (unchunked - floor / 2))) for f in fractions}
    assert_upward_closed(case.graph, sizes, budgets | {floor, floor + 1}, floor)


@pytest.mark.slow
def test_evoformer_budgets_of_the_issue_all_have_plans():
    """Issue 13's report: the Evoformer block at N = 64 had no plan at 1.6 MB while 1.4 MB and
    1.7 MB had.  All three have one."""
    from chunkc.zoo import evoformer
    case = evoformer()
    graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    sizes = graph.bind_sizes(case.make_inputs(64))
    found = {b: feasible(graph, b, sizes, "torch") for b in (1_400_000, 1_600_000, 1_700_000)}
    assert all(found.values()), found

