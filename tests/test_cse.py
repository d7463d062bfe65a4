"""Common-subexpression elimination (chunkc/passes/cse.py): duplicates of pure ops merge into
the first copy, which keeps its name and provenance; ops whose record is not pure never merge;
values stay what they were and the estimated peak never rises."""

from __future__ import annotations

import random

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.fuzz import random_case
from chunkc.ir.registry import all_ops, lookup
from chunkc.ir.source import SourceInfo
from chunkc.passes.cse import cse, eliminate_common_subexpressions
from chunkc.passes.manager import PassManager

SIZES = {"L": 256}


def _two_reshapes() -> chunkc.Graph:
    g = chunkc.Graph("two_reshapes")
    x = g.add_input("x", "f32", ("L", 64))
    a = g.add_node("reshape", [x], {"shape": ("L", 8, 8)}, name="first", source=SourceInfo(module="m.a", line=3))
    b = g.add_node("reshape", [x], {"shape": ("L", 8, 8)}, name="second", source=SourceInfo(module="m.b", line=4))
    ea, eb = O.exp(a.output, name="exp_a"), O.exp(b.output, name="exp_b")
    g.set_outputs(O.add(ea, eb, name="total"))
    return g


def _values(graph: chunkc.Graph, arrays) -> list:
    return [np.asarray(o) for o in chunkc.interpret(graph, *arrays)]


def test_duplicates_merge_into_the_first_which_keeps_its_name_and_source():
    g = _two_reshapes()
    result = eliminate_common_subexpressions(g, SIZES)
    merged = result.graph
    assert [str(m) for m in result.merged] == ["second into first", "exp_b into exp_a"]
    assert [n.name for n in merged.nodes] == ["first", "exp_a", "total"]
    assert merged.node("first").source == SourceInfo(module="m.a", line=3)
    assert merged.node("total").inputs == (merged.node("exp_a").output,) * 2
    assert len(g.nodes) == 5  # the input graph is left as it was
    x = np.random.default_rng(0).uniform(-1, 1, (256, 64)).astype(np.float32)
    np.testing.assert_array_equal(_values(merged, [x])[0], _values(g, [x])[0])


def test_a_graph_without_duplicates_is_returned_as_is():
    g = chunkc.Graph("plain")
    x = g.add_input("x", "f32", ("L", 64))
    g.set_outputs(O.exp(O.reshape(x, shape=("L", 8, 8))))
    result = eliminate_common_subexpressions(g, SIZES)
    assert result.graph is g and not result.merged and not result.left


def test_only_opaque_is_impure_and_impure_nodes_never_merge():
    assert [name for name, op in all_ops().items() if not op.pure] == ["opaque"]
    g = chunkc.Graph("effects")
    x = g.add_input("x", "f32", ("L", 64))
    attrs = {"target": "aten::rand_like.default", "result_types": ("f32[L, 64]",)}
    r1, r2 = g.add_node("opaque", [x], attrs), g.add_node("opaque", [x], attrs)
    g.set_outputs(O.add(r1.output, r2.output))
    assert cse(g, SIZES) is g


@pytest.mark.parametrize("first,second", [(1.0, -0.0), (0.0, -0.0), (1, 1.0)])
def test_attributes_merge_only_when_equal_in_type_and_bits(first, second):
    g = chunkc.Graph("attrs")
    x = g.add_input("x", "f32", ("L", 64))
    mask = O.gt(x, 0.5)
    a = O.masked_fill(x, mask, value=first)
    b = O.masked_fill(x, mask, value=second)
    g.set_outputs(O.add(a, b))
    assert cse(g, SIZES) is g
    same = chunkc.Graph("same")
    x = same.add_input("x", "f32", ("L", 64))
    mask = O.gt(x, 0.5)
    same.set_outputs(O.add(O.masked_fill(x, mask, value=second), O.masked_fill(x, mask, value=second)))
    assert len(cse(same, SIZES).nodes) == len(same.nodes) - 1


def test_two_graph_outputs_stay_two_arrays():
    g = chunkc.Graph("outs")
    x = g.add_input("x", "f32", ("L", 64))
    g.set_outputs(O.exp(x), O.exp(x))
    assert cse(g, SIZES) is g


def _recomputed_after_it_died(spread: bool) -> chunkc.Graph:
    """``exp(x)`` read early, then (with ``spread``) work that holds three rows-sized values at
    once, then ``exp(x)`` again: keeping the first copy would hold it through that work."""
    g = chunkc.Graph("recomputed")
    x = g.add_input("x", "f32", ("L", 64))
    early = O.sum(O.exp(x, name="exp_early"), axes=(-1,), keepdim=True)
    h = O.add(x, early)
    if spread:
        t = O.relu(h)
        h = O.add(O.mul(t, t), h)
    g.set_outputs(O.add(h, O.exp(x, name="exp_late")))
    return g


def test_a_recomputation_that_lowers_the_peak_is_left_as_written():
    g = _recomputed_after_it_died(spread=True)
    result = eliminate_common_subexpressions(g, SIZES, backend="numpy")
    assert result.graph is g
    assert [(str(m), m.holds) for m in result.left] == [("exp_late into exp_early", True)]
    assert result.describe()[0].startswith("left 1 duplicate node(s) as written (they recompute what died")
    # without sizes the peak cannot be judged: left too
    assert eliminate_common_subexpressions(g).left == result.left


def test_a_recomputation_merges_where_holding_the_first_copy_costs_no_peak():
    g = _recomputed_after_it_died(spread=False)
    result = eliminate_common_subexpressions(g, SIZES, backend="numpy")
    assert [(str(m), m.holds) for m in result.merged] == [("exp_late into exp_early", True)]
    peak = lambda graph: chunkc.estimate_memory(graph, sizes=SIZES, backend="numpy").peak_bytes  # noqa: E731
    assert peak(result.graph) <= peak(g)


def _with_duplicates(graph: chunkc.Graph, rng: random.Random) -> tuple[chunkc.Graph, list[str]]:
    """A copy of ``graph`` where some nodes of pure ops are spelled twice: the copy right after
    the node, with the later readers moved to it."""
    g = graph.copy()
    added = []
    candidates = [n for n in g.nodes if n.op.pure and any(o.users for o in n.outputs)]
    for node in rng.sample(candidates, min(4, len(candidates))):
        twin = g.add_node(node.op, list(node.inputs), dict(node.attrs), name=f"{node.name}_twin", after=node,
                          source=node.source)
        for out, twin_out in zip(node.outputs, twin.outputs):
            readers = sorted(set(out.users), key=g.position)
            for reader in readers[len(readers) // 2:]:
                for k, v in enumerate(reader.inputs):
                    if v is out:
                        g.set_input(reader, k, twin_out)
        added.append(twin.name)
    return g, added


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_keep_their_values_and_their_peak_does_not_rise(seed):
    case = random_case(seed)
    g, added = _with_duplicates(case.graph, random.Random(seed))
    result = eliminate_common_subexpressions(g, case.sizes, backend="numpy")
    names = {n.name for n in result.graph.nodes}
    assert not names & set(added), f"duplicates left: {sorted(names & set(added))}"
    assert len(result.graph.nodes) <= len(case.graph.nodes)
    arrays = case.inputs()
    for got, want in zip(_values(result.graph, arrays), _values(g, arrays), strict=True):
        np.testing.assert_array_equal(got, want)
    for backend in ("numpy", "torch"):
        after = chunkc.estimate_memory(result.graph, sizes=case.sizes, backend=backend).peak_bytes
        assert after <= chunkc.estimate_memory(g, sizes=case.sizes, backend=backend).peak_bytes


def test_autochunk_plans_one_value_for_a_computation_spelled_twice():
    g = _two_reshapes()
    plan = chunkc.autochunk(g, 0.5, sizes=SIZES, backend="numpy", progress=False)
    assert plan.regions and [n.name for n in plan.graph.nodes if n.op is lookup("reshape")] == ["first"]
    assert any("second into first" in note for note in plan.notes)
    x = np.random.default_rng(1).uniform(-1, 1, (256, 64)).astype(np.float32)
    fn = chunkc.compile(g, plan, backend="numpy")
    np.testing.assert_allclose(fn(x), _values(g, [x])[0], rtol=1e-6)


def test_the_pipeline_pass_merges_at_the_pipeline_sizes():
    graph, ctx = PassManager.parse("cse,verify").run(_two_reshapes(), sizes=SIZES)
    assert [n.name for n in graph.nodes] == ["first", "exp_a", "total"]
