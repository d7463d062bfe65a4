"""Shrinking a failing case to a minimal graph that still fails the same way.

``shrink(case, finding)`` edits the graph, not the random choices that drew it,
so the result is a small graph in chunkc's text form that a person can read and
paste into a test.  Each edit is kept only when the case still shows a finding
of the same class (:attr:`Finding.signature`):

1. keep only the budget that failed (for monotonicity, all of them);
2. drop graph outputs, one at a time;
3. truncate: a graph output is replaced by an input of the node that made it;
4. bypass a node (last first): its output is replaced by one of its inputs of the
   same type;
5. cut above a node: its output becomes a new graph input of the same type
   (everything only it needed goes);
6. halve each size symbol while it stays at least 2.

The passes repeat until one changes nothing, or ``max_checks`` checks or
``max_seconds`` have been spent.  Findings that planning alone shows are checked
without compiling; findings about measured memory keep the graph's unchunked
peak at :data:`~chunkc.fuzz.graphs.MIN_PEAK` or more, where the measurement's
Python-object noise stays far below 2%.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Iterator

from ..ir.graph import Graph, Value
from .graphs import MIN_PEAK, FuzzCase
from .oracle import CaseReport, Finding, check_case

PLAN_ONLY = ("non_monotone", "self_contradicting")  # kinds that planning alone shows
MEASURED = ("over_budget", "estimate")  # kinds read off a measurement


def rebuild(graph: Graph, substitute: dict[str, str | None], outputs: list[str]) -> Graph:
    """A copy of ``graph`` with only what ``outputs`` need, where each value named in
    ``substitute`` is replaced by another value (its name) or, for ``None``, by a new graph
    input of its type.  Inputs nothing reads are left out; names are kept."""
    values = {v.name: v for v in graph.values()}
    needed: set[str] = set()
    stack = list(outputs)
    while stack:  # what the outputs need, through the substitutions
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        if name in substitute:
            if substitute[name] is not None:
                stack.append(substitute[name])
            continue
        producer = values[name].producer
        if producer is not None:
            stack.extend(v.name for v in producer.inputs)
            needed.update(o.name for o in producer.outputs)
    g = Graph(graph.name)
    new: dict[str, Value] = {}

    def get(name: str) -> Value:
        if name in substitute:
            target = substitute[name]
            if target is None:
                if name not in new:
                    new[name] = g.add_input(name, values[name].dtype, values[name].shape)
                return new[name]
            return get(target)
        return new[name]

    for v in graph.inputs:
        if v.name in needed and v.name not in substitute:
            new[v.name] = g.add_input(v.name, v.dtype, v.shape)
    for c in graph.constants:
        if c.name in needed and c.name not in substitute:
            new[c.name] = g.add_constant(c.name, c.data, type=None if c.data is not None else c.type)
    for n in graph.nodes:
        if not any(o.name in needed and o.name not in substitute for o in n.outputs):
            continue
        node = g.add_node(n.op, [get(v.name) for v in n.inputs], dict(n.attrs), name=n.name,
                          output_names=[o.name for o in n.outputs], source=n.source)
        new.update({o.name: r for o, r in zip(n.outputs, node.outputs)})
    g.set_outputs(*(get(name) for name in outputs))
    return g


def shrink(case: FuzzCase, finding: Finding, max_checks: int = 400, max_seconds: float = 300.0,
           check: Callable[[FuzzCase], CaseReport] | None = None) -> FuzzCase:
    """The smallest case found that still shows ``finding``'s class."""
    backends = (finding.backend,) if finding.backend else ("numpy",)
    runner = check or (lambda c: check_case(c, backends=backends, rerun=finding.stage == "rerun",
                                            measure=finding.kind in MEASURED,
                                            execute=finding.kind not in PLAN_ONLY))
    deadline = time.monotonic() + max_seconds
    checks = 0

    def still(c: FuzzCase) -> bool:
        nonlocal checks
        checks += 1
        if finding.kind in MEASURED and _unchunked_peak(c) < MIN_PEAK:
            return False
        try:
            return any(f.signature == finding.signature for f in runner(c).findings)
        except Exception:  # an edit the graph cannot take (a type no longer inferred): not kept
            return False

    def spent() -> bool:
        return checks >= max_checks or time.monotonic() >= deadline

    best = case
    if finding.budget is not None and finding.kind != "non_monotone":
        one = replace(case, budgets=(finding.budget,))
        best = one if still(one) else case
    changed = True
    while changed and not spent():
        changed = False
        for edits in (_drop_outputs, _truncate_outputs, _bypass_nodes, _cut_nodes, _halve_sizes):
            for edit in edits(best):  # names read up front; each edit applies to the newest best
                if spent():
                    break
                candidate = edit(best)
                if candidate is not None and still(candidate):
                    best, changed = candidate, True
    return best


def _unchunked_peak(case: FuzzCase) -> int:
    from ..passes.memory import estimate_memory
    try:
        return estimate_memory(case.graph, sizes=case.sizes).peak_bytes
    except Exception:
        return 0


# Each pass reads the names it will try from the case it starts on and yields edits: functions
# of the newest best case (a value already gone is skipped).

Edit = Callable[[FuzzCase], "FuzzCase | None"]


def _drop_outputs(case: FuzzCase) -> Iterator[Edit]:
    for name in [v.name for v in case.graph.outputs]:
        yield lambda c, name=name: _edited(c, lambda g: _without_output(g, name))


def _truncate_outputs(case: FuzzCase) -> Iterator[Edit]:
    for name in [v.name for v in case.graph.outputs]:
        yield lambda c, name=name: _edited(c, lambda g: _truncate(g, name))


def _bypass_nodes(case: FuzzCase) -> Iterator[Edit]:
    for name in [n.name for n in reversed(case.graph.nodes)]:
        yield lambda c, name=name: _edited(c, lambda g: _bypass(g, name))


def _cut_nodes(case: FuzzCase) -> Iterator[Edit]:
    for name in [n.name for n in case.graph.nodes]:
        yield lambda c, name=name: _edited(c, lambda g: _cut(g, name))


def _halve_sizes(case: FuzzCase) -> Iterator[Edit]:
    for name in list(case.sizes):
        yield lambda c, name=name: _halved(c, name)


def _halved(case: FuzzCase, name: str) -> FuzzCase | None:
    n = case.sizes[name]
    if n // 2 < 2:
        return None
    return replace(case, sizes={**case.sizes, name: n // 2},
                   rerun_sizes=tuple({**s, name: max(2, s[name] // 2)} for s in case.rerun_sizes))


def _edited(case: FuzzCase, edit: Callable[[Graph], Graph | None]) -> FuzzCase | None:
    try:
        g = edit(case.graph)
    except Exception:
        return None
    return None if g is None else replace(case, graph=g)


def _without_output(g: Graph, name: str) -> Graph | None:
    outs = [v.name for v in g.outputs]
    if len(outs) < 2 or name not in outs:
        return None
    return rebuild(g, {}, [o for o in outs if o != name])


def _truncate(g: Graph, name: str) -> Graph | None:
    """Output ``name`` replaced by its producer's first input that is no graph input (the
    node that made it, and what only it needed, go)."""
    outs = [v.name for v in g.outputs]
    value = next((v for v in g.outputs if v.name == name), None)
    if value is None or value.producer is None:
        return None
    earlier = next((v for v in value.producer.inputs if v.producer is not None and v.name not in outs), None)
    if earlier is None:
        return None
    return rebuild(g, {}, [earlier.name if o == name else o for o in outs])


def _bypass(g: Graph, name: str) -> Graph | None:
    node = next((n for n in g.nodes if n.name == name), None)
    if node is None:
        return None
    sub = {}
    for o in node.outputs:
        same = next((v for v in node.inputs if v.type == o.type and v.name != o.name), None)
        if same is None:
            if o.users or o in g.outputs:
                return None
            continue
        sub[o.name] = same.name
    return rebuild(g, sub, [v.name for v in g.outputs]) if sub else None


def _cut(g: Graph, name: str) -> Graph | None:
    node = next((n for n in g.nodes if n.name == name), None)
    if node is None or not node.inputs or len(node.outputs) != 1:
        return None
    return rebuild(g, {node.outputs[0].name: None}, [v.name for v in g.outputs])


__all__ = ["rebuild", "shrink"]
