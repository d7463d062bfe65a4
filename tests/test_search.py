"""Chunk-flow search: every region it calls legal computes the unchunked values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

import chunkc
from chunkc import ops as O
from chunkc.passes.chunked_reference import interpret_plan
from chunkc.passes.plan import Plan
from chunkc.passes.reorder import apply_regions
from chunkc.passes.search import GraphIndex, candidate_axes, consistent_extent, walk_regions

from graphs import attention_block, inputs_for, mlp, transformer
from strategies import random_graphs


def all_candidates(graph, limit_per_walk=None):
    index = GraphIndex(graph)
    for end, node in enumerate(graph.nodes):
        for axis in candidate_axes(node):
            for k, cand in enumerate(walk_regions(index, end, axis)):
                if limit_per_walk is not None and k >= limit_per_walk:
                    break
                yield cand


def run_candidate(graph, cand, inputs, chunk, sizes):
    new_graph, regions = apply_regions(graph, [(cand, chunk)])
    chunkc.verify(new_graph)
    plan = Plan(graph=new_graph, regions=regions, sizes=sizes)
    return interpret_plan(plan, *inputs)


def check_all_regions(graph, sizes, chunks=(1, 3), limit_per_walk=None, atol=1e-4):
    inputs = inputs_for(graph, sizes)
    expected = chunkc.interpret(graph, *inputs)
    count = 0
    for cand in all_candidates(graph, limit_per_walk):
        assert consistent_extent(cand), cand
        for chunk in chunks:
            got = run_candidate(graph, cand, inputs, chunk, sizes)
            for e, o in zip(expected, got):
                np.testing.assert_allclose(o, e, atol=atol, rtol=1e-4,
                                           err_msg=f"region {cand.start}..{cand.end} chunk {chunk}")
        count += 1
    return count


def test_attention_block_every_region_is_legal():
    assert check_all_regions(attention_block(), {"L": 13}) > 20


def test_mlp_every_region_is_legal():
    assert check_all_regions(mlp(), {"B": 2, "L": 7}) > 5


def test_transformer_regions_are_legal():
    check_all_regions(transformer(layers=1), {"L": 9}, chunks=(2,), limit_per_walk=40)


def test_attention_region_hoists_keys_and_values():
    g = attention_block()
    index = GraphIndex(g)
    end = len(g.nodes) - 1
    longest = list(walk_regions(index, end, 0))[-1]
    hoisted = {g.nodes[i].name for i in longest.hoisted}
    loop_ops = [g.nodes[i].op.name for i in longest.loop]
    assert longest.start == 0
    assert "softmax" in loop_ops
    # the K and V projections read the whole input: computed once, before the loop
    assert {"linear_1", "linear_2"} <= hoisted
    assert all(g.nodes[i].op.name != "linear" or g.nodes[i].name in ("linear", "linear_3") for i in longest.loop)


def test_softmax_axis_is_never_chunked():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", ("L", 8))
    y = O.softmax(O.exp(x), axis=0)
    g.set_outputs(y)
    index = GraphIndex(g)
    assert [c.start for c in walk_regions(index, 1, 0)] == []  # axis 0 is mixed by softmax
    assert [c.start for c in walk_regions(index, 1, 1)] == [1, 0]


def test_matmul_columns_chunk_through_the_weight():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", (4, 16))
    w = g.add_input("w", "f32", (16, "N"))
    y = O.relu(O.matmul(x, w))
    g.set_outputs(y)
    cands = list(walk_regions(GraphIndex(g), 1, 1))
    assert cands[-1].start == 0
    assert {(v.name, axis) for v, axis, _ in cands[-1].chunked} >= {("w", 1)}
    check_all_regions(g, {"N": 10})


def test_region_starts_at_node_with_several_inputs():
    g = chunkc.Graph("g")
    a = g.add_input("a", "f32", ("L", 8))
    b = g.add_input("b", "f32", ("L", 8))
    y = O.tanh(a * b + a)
    g.set_outputs(y)
    cands = list(walk_regions(GraphIndex(g), 2, 0))
    assert cands[-1].start == 0
    assert {v.name for v, _, _ in cands[-1].chunked} >= {"a", "b"}
    check_all_regions(g, {"L": 5})


def test_reshape_outer_factor_has_a_unit():
    # [L, 12] -> [L, 3, 4]: chunking the 3-axis slices the 12-axis in steps of 4
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", ("L", 12))
    y = O.sigmoid(O.reshape(O.exp(x), shape=("L", 3, 4)))
    g.set_outputs(y)
    cands = list(walk_regions(GraphIndex(g), 2, 1))
    longest = cands[-1]
    units = {v.name: (axis, unit) for v, axis, unit in longest.chunked}
    assert units["x"] == (1, 4) and longest.extent == 3
    check_all_regions(g, {"L": 3}, chunks=(1, 2))


def test_merge_reshape_scales_units_to_integers():
    # [L, 3, 4] -> [L, 12], chunk the 12-axis: whole 4-blocks map to the 3-axis
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", ("L", 3, 4))
    y = O.tanh(O.reshape(O.exp(x), shape=("L", 12)))
    g.set_outputs(y)
    longest = list(walk_regions(GraphIndex(g), 2, 1))[-1]
    units = {v.name: (axis, unit) for v, axis, unit in longest.chunked}
    assert longest.extent == 3 and units["tanh"] == (1, 4) and units["x"] == (1, 1)
    check_all_regions(g, {"L": 2}, chunks=(1, 2))


def test_reduction_with_keepdim_carries_other_axes():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", ("L", 16))
    m = O.amax(x, axes=-1, keepdim=True)
    y = O.exp(x - m)
    g.set_outputs(O.sum(y, axes=-1, keepdim=True))
    cands = list(walk_regions(GraphIndex(g), len(g.nodes) - 1, 0))
    assert cands[-1].start == 0
    check_all_regions(g, {"L": 6})


def test_sdpa_chunks_the_query_length():
    g = chunkc.Graph("g")
    q = g.add_input("q", "f32", (2, "L", 8))
    k = g.add_input("k", "f32", (2, "L", 8))
    v = g.add_input("v", "f32", (2, "L", 8))
    o = g.op("scaled_dot_product_attention", q, k, v)
    g.set_outputs(O.gelu(o))
    cands = list(walk_regions(GraphIndex(g), 1, 1))
    assert cands[-1].start == 0
    chunked = {v.name for v, _, _ in cands[-1].chunked}
    assert "q" in chunked and "k" not in chunked and "v" not in chunked
    check_all_regions(g, {"L": 7})


@settings(max_examples=25)
@given(random_graphs(max_nodes=10))
def test_random_graphs_every_legal_region_matches(case):
    """Property: the reference interpreter run chunked equals the unchunked run."""
    g = case.graph
    inputs = case.inputs()
    expected = chunkc.interpret(g, *inputs)
    for cand in all_candidates(g, limit_per_walk=12):
        for chunk in (1, 2):
            got = run_candidate(g, cand, inputs, chunk, case.sizes)
            for e, o in zip(expected, got):
                np.testing.assert_allclose(o, e, atol=1e-4, rtol=1e-4,
                                           err_msg=f"{case.description}: region {cand.start}..{cand.end}")


# -- values read both sliced and whole inside one region ------------------------------------------


def _longest(graph, end_name, axis):
    index = GraphIndex(graph)
    end = next(i for i, n in enumerate(graph.nodes) if n.name == end_name)
    return list(walk_regions(index, end, axis))[-1]


def _run_everywhere(graph, cand, sizes, chunk=3):
    """The candidate as a plan: reference interpreter, NumPy and PyTorch backends agree with unchunked."""
    inputs = inputs_for(graph, sizes)
    expected = chunkc.interpret(graph, *inputs)
    new_graph, regions = apply_regions(graph, [(cand, chunk)])
    plan = Plan(graph=new_graph, regions=regions, sizes=sizes)
    outs = [interpret_plan(plan, *inputs)]
    for backend in ("numpy", "torch"):
        fn = chunkc.compile(graph, plan=plan, backend=backend)
        got = fn(*([__import__("torch").from_numpy(a) for a in inputs] if backend == "torch" else inputs))
        got = got if isinstance(got, tuple) else (got,)
        outs.append([np.asarray(g) for g in got])
    for got in outs:
        for e, o in zip(expected, got):
            np.testing.assert_allclose(o, e, atol=1e-5, rtol=1e-5)
    return plan


def test_value_sliced_by_the_loop_and_read_whole_before_it():
    # rotary-like: cos/sin tables computed once, used by q (chunked along L) and k (whole)
    g = chunkc.Graph("rotary")
    x = g.add_input("x", "f32", ("L", 8))
    pos = g.add_input("pos", "f32", ("L", 1))
    cos = O.cos(pos * 0.5, name="cos")
    q = O.mul(O.exp(x), cos, name="q")
    k = O.mul(O.tanh(x), cos, name="k")
    s = O.softmax(O.matmul(q, O.transpose(k, 0, 1)), axis=-1, name="p")
    g.set_outputs(O.matmul(s, x, name="out"))
    cand = _longest(g, "out", 0)
    hoisted = {g.nodes[i].name for i in cand.hoisted}
    loop = {g.nodes[i].name for i in cand.loop}
    assert "k" in hoisted and {"q", "p", "out"} <= loop and "cos" not in loop
    assert "cos" in {v.name for v, _, _ in cand.chunked}  # the loop reads slices of the whole table
    _run_everywhere(g, cand, {"L": 10})


def test_attention_whose_values_are_its_queries():
    # v = q: the loop reads q sliced (queries) and whole (values); q is computed before the loop
    g = chunkc.Graph("v_is_q")
    x = g.add_input("x", "f32", (2, "L", 8))
    q = O.tanh(x, name="q")
    k = O.exp(x * 0.1, name="k")
    y = O.scaled_dot_product_attention(q, k, q, name="attn")
    g.set_outputs(O.relu(y, name="out"))
    cand = _longest(g, "out", 1)
    assert [g.nodes[i].name for i in cand.loop] == ["attn", "out"]
    region = cand.to_region(g, 3)
    assert region.whole_reads == (("attn", 2),)
    _run_everywhere(g, cand, {"L": 11})


def test_unused_output_of_a_loop_node_is_chunked_too():
    # topk's indices are never read: the loop still computes them a slice at a time
    g = chunkc.Graph("topk_unused")
    x = g.add_input("x", "f32", ("L", 16))
    values, _ = O.topk(O.exp(x), k=4, axis=-1, name="top")
    g.set_outputs(O.relu(values, name="out"))
    cand = _longest(g, "out", 0)
    assert cand.start == 0
    _run_everywhere(g, cand, {"L": 7})
