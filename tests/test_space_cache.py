"""space_cache: planning one graph at many budgets reuses its search space, and every plan (and
every refusal, with the regions it says it searched) is the one planned without it."""

from __future__ import annotations

import chunkc
from chunkc.passes.selection import space_cache
from graphs import attention_block

SIZES = {"L": 128}
BUDGETS = (0.3, 0.01)


def _outcome(graph, budget, backend):
    try:
        plan = chunkc.autochunk(graph, budget, sizes=SIZES, backend=backend, progress=False)
    except chunkc.InfeasibleBudgetError as exc:
        return "infeasible", str(exc), exc.lowest_peak_bytes
    notes = [n.split("; search ")[0] for n in plan.notes]  # the note ends with the search's seconds
    return repr(plan.regions), plan.estimated_peak_bytes, plan.estimated_slowdown, repr(plan.stats), notes, \
        chunkc.print_graph(plan.graph)


def test_cached_spaces_plan_as_fresh_ones():
    graph = attention_block()
    alone = [_outcome(graph, b, "numpy") for b in BUDGETS]
    with space_cache():
        cached = [_outcome(graph, b, "numpy") for b in BUDGETS]
        again = [_outcome(attention_block(), b, "numpy") for b in BUDGETS]  # an equal graph, another object
    assert cached == alone
    assert again == alone
    assert any(o[0] == "infeasible" for o in alone) and any(o[0] != "infeasible" for o in alone)
