"""chunkc.autochunk: plans meet their budget (or say why not) and compute the same values."""

from __future__ import annotations

import numpy as np
import pytest

import chunkc
from chunkc.passes.chunked_reference import interpret_plan
from chunkc.passes.report import plan_report

from graphs import attention_block, inputs_for, mlp, transformer

MODELS = {
    "attention": (attention_block, {"L": 256}),
    "mlp": (mlp, {"B": 2, "L": 128}),
    "transformer2": (lambda: transformer(layers=2), {"L": 192}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.2, 0.1])
def test_plan_meets_budget_or_raises(name, fraction):
    build, sizes = MODELS[name]
    g = build()
    unchunked = chunkc.estimate_memory(g, sizes=sizes).peak_bytes
    budget = int(fraction * unchunked)
    try:
        plan = chunkc.autochunk(g, fraction, sizes=sizes)
    except chunkc.InfeasibleBudgetError as exc:
        assert exc.lowest_peak_bytes > budget
        assert exc.peak_node in {n.name for n in g.nodes}
        assert "lowest peak reachable" in str(exc)
        return
    assert plan.budget_bytes == budget
    # the guarantee: checked by the full estimator, independently of the search's fast model
    assert chunkc.estimate_memory(plan.graph, plan=plan, sizes=sizes).peak_bytes <= budget
    assert plan.estimated_peak_bytes <= budget
    chunkc.verify(plan.graph)
    # same values, at the planned size and at a size the chunk does not divide
    for run_sizes in (sizes, {k: (v - 3 if v > 8 else v) for k, v in sizes.items()}):
        inputs = inputs_for(g, run_sizes)
        expected = chunkc.interpret(g, *inputs)
        got = interpret_plan(plan, *inputs)
        for e, o in zip(expected, got):
            np.testing.assert_allclose(o, e, atol=1e-4, rtol=1e-4)


def test_half_budget_on_attention_is_feasible_and_reported():
    g = attention_block()
    plan = chunkc.autochunk(g, 0.5, sizes={"L": 256})
    assert len(plan.regions) >= 1
    report = plan_report(plan)
    assert "region 0" in report and "chunk" in report and "estimated peak" in report
    assert plan.estimated_slowdown is not None and plan.estimated_slowdown >= 1.0


def test_budget_in_bytes_and_percent_string():
    g = mlp()
    sizes = {"B": 2, "L": 128}
    unchunked = chunkc.estimate_memory(g, sizes=sizes).peak_bytes
    by_bytes = chunkc.autochunk(g, int(unchunked * 0.6), sizes=sizes)
    by_text = chunkc.autochunk(g, "60%", sizes=sizes)
    assert by_bytes.budget_bytes == int(unchunked * 0.6)
    assert by_text.budget_bytes == int(unchunked * 0.6)
    assert by_bytes.estimated_peak_bytes <= by_bytes.budget_bytes


def test_no_regions_when_the_budget_already_holds():
    plan = chunkc.autochunk(mlp(), 1.0, sizes={"B": 2, "L": 64})
    assert plan.regions == ()


def test_infeasible_budget_names_lowest_peak_and_node():
    g = attention_block()
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 0.01, sizes={"L": 256})
    exc = info.value
    assert exc.lowest_peak_bytes > 0
    assert f"node {exc.peak_node}" in str(exc)
    assert "budget" in str(exc)


def test_missing_sizes_are_named():
    with pytest.raises(chunkc.ChunkcError, match="symbolic sizes L"):
        chunkc.autochunk(attention_block(), 0.5)


def test_bad_budget_is_refused():
    with pytest.raises(chunkc.ChunkcError, match="budget"):
        chunkc.autochunk(mlp(), -3, sizes={"B": 1, "L": 8})
