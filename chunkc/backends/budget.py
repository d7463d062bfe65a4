"""A plan's budget, kept for the backend that runs it and the sizes it runs at.

* :func:`plan_for_backend`: a plan records the backend its estimates are for
  (``Plan.backend``).  Compiled for another backend, it is estimated again for
  that one; if its peak is then over the budget, the graph is planned again for
  that backend (said once, as a :class:`~chunkc.errors.BudgetWarning`), and if no
  plan reaches the budget there, :class:`~chunkc.errors.InfeasibleBudgetError`
  says so.  Never silently over budget.
* :class:`BudgetCheck`: a plan is made at some sizes; at larger ones its chunk
  sizes can fall to 1 and the budget cannot hold.  ``chunkc.compile`` gives the
  program a check that, at the first call of each distinct set of input shapes,
  binds the sizes and runs the estimator for the plan at those sizes (then keeps
  the verdict; the planning sizes' verdict is known when the check is made), before
  anything is allocated: over the budget, it warns once (the
  sizes, the budget, the peak the call will reach), or with ``strict=True`` raises
  :class:`~chunkc.errors.BudgetExceededError` at every such call.  Later calls of
  the same shapes cost one dictionary lookup.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

from ..errors import BudgetExceededError, BudgetWarning, ChunkcError, InfeasibleBudgetError
from ..ir.graph import Graph
from ..ir.sizes import evaluate
from ..passes.plan import Plan


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def plan_for_backend(graph: Graph, plan: Plan | None, backend: str, device: str = "cpu") -> Plan | None:
    """``plan`` when its budget holds on ``backend`` on ``device``; otherwise a plan made for
    them (with a BudgetWarning), or InfeasibleBudgetError when none reaches the budget there."""
    if plan is None or (plan.backend, plan.device) == (backend, device) or plan.budget_bytes is None:
        return plan
    from ..passes.autochunk import autochunk
    from ..passes.memory import estimate_memory

    budget = plan.budget_bytes
    peak = estimate_memory(plan.graph, plan, backend=backend, device=device).peak_bytes
    if peak <= budget:
        return dataclasses.replace(plan, backend=backend, device=device, estimated_peak_bytes=peak)
    made, here = (f"backend {plan.backend!r}" + (f" on {plan.device}" if plan.device != "cpu" else ""),
                  f"backend {backend!r}" + (f" on {device}" if device != "cpu" else ""))
    why = (f"graph {graph.name}: the plan was made for {made}; on {here} its "
           f"estimated peak is {_mib(peak)}, over its budget of {_mib(budget)}")
    try:
        replanned = autochunk(graph, budget, sizes=plan.sizes, backend=backend, device=device)
    except InfeasibleBudgetError as exc:
        raise InfeasibleBudgetError(f"{why}, and no plan for {here} reaches that budget: {exc}",
                                    exc.lowest_peak_bytes, exc.peak_node) from None
    knobs = f"backend={backend!r}" + (f", device={device!r}" if device != "cpu" else "")
    warnings.warn(BudgetWarning(f"{why}; planned again for {here} (estimated peak "
                                f"{_mib(replanned.estimated_peak_bytes)}). Plan with "
                                f"chunkc.autochunk(..., {knobs}) to skip this."), stacklevel=3)
    return replanned


class BudgetCheck:
    """Called by a compiled program with its inputs (already checked) before it allocates."""

    def __init__(self, plan: Plan, backend: str, strict: bool):
        self.plan = plan
        self.backend = backend
        self.strict = strict
        self.verdicts: dict[tuple, BudgetExceededError | None] = {}  # input shapes -> verdict
        # the planning sizes' shapes hold by construction: known now, so that the first call
        # there binds no sizes (sympy's caches grew by some 15 KiB inside that call)
        try:
            planned = tuple(tuple(int(evaluate(s, plan.sizes)) for s in v.shape) for v in plan.graph.inputs)
        except (KeyError, ValueError, TypeError):  # sizes the plan does not name: judged at the call
            planned = None
        if planned is not None:
            self.verdicts[planned] = None

    def __call__(self, inputs: Sequence[Any]) -> None:
        key = tuple(x.shape for x in inputs)  # torch.Size and NumPy shapes are tuples
        try:
            verdict = self.verdicts[key]
        except KeyError:
            verdict = self.verdicts[key] = self.judge(inputs)
            if verdict is not None and not self.strict:
                warnings.warn(BudgetWarning(str(verdict)), stacklevel=4)
        if verdict is not None and self.strict:
            raise verdict

    def judge(self, inputs: Sequence[Any]) -> BudgetExceededError | None:
        """The error for a call at these inputs' sizes, or None when the budget holds there."""
        from ..passes.memory import estimate_memory

        plan = self.plan
        sizes = plan.graph.bind_sizes(inputs)
        if sizes == plan.sizes:
            return None  # planned here
        peak = estimate_memory(plan.graph, plan, sizes=sizes, backend=self.backend).peak_bytes  # on the plan's device
        if peak <= plan.budget_bytes:
            return None
        at = ", ".join(f"{k}={v}" for k, v in sorted(sizes.items()))
        planned = ", ".join(f"{k}={v}" for k, v in sorted(plan.sizes.items()))
        chunks = [evaluate(r.chunk_size, sizes) for r in plan.regions]
        floor = [str(i) for i, c in enumerate(chunks) if c <= 1]
        if floor:
            how = f"its chunk size falls to 1 in region{'s' if len(floor) > 1 else ''} {', '.join(floor)}"
        elif plan.regions:
            how = f"with its chunk sizes ({', '.join(map(str, chunks))})"
        else:
            how = "unchunked"
        message = (f"graph {plan.graph.name} at {at}: the plan's budget of {_mib(plan.budget_bytes)} (planned at "
                   f"{planned}) cannot hold: {how}, the peak will reach about {_mib(peak)}. Plan for these sizes "
                   f"(chunkc.autochunk(graph, budget, sizes={{{', '.join(f'{k!r}: {v}' for k, v in sorted(sizes.items()))}}})) "
                   "or raise the budget.")
        return BudgetExceededError(message, sizes, plan.budget_bytes, peak)


def install_budget_check(program: Any, plan: Plan | None, backend: str, strict: bool) -> None:
    """Give a compiled program its run-time budget check, when its budget can outgrow its sizes."""
    from .header import BUDGET_ATTR
    if plan is None or plan.budget_bytes is None or not plan.graph.symbols() or plan.graph.data_dependent_sizes():
        return
    if not hasattr(program, BUDGET_ATTR):
        if strict:
            raise ChunkcError(f"backend {backend!r}: its programs have no run-time budget check "
                              f"(no {BUDGET_ATTR} attribute), so strict=True cannot be honoured")
        return
    setattr(program, BUDGET_ATTR, BudgetCheck(plan, backend, strict))


__all__ = ["BudgetCheck", "install_budget_check", "plan_for_backend"]
