"""Attention split over its keys (chunkc/ir/ops/attention_keys.py): attention_partial
accumulates over the key axis in one pass (softmax_merge), so a chunk loop slices K and V
(and the projections that make them) by keys; causal keys are placed by ``key_offset``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.backends import emit_source
from chunkc.errors import ChunkcError, IRError
from chunkc.passes.plan import Plan
from chunkc.passes.reorder import apply_regions
from chunkc.passes.search import GraphIndex, walk_regions
from chunkc.passes.split_statistics import split_statistics
from backend_cases import estimate_and_measure, run_on_all_backends

KINDS = ("causal", "bool_mask", "float_mask", "plain")


def _attention(kind: str, L: int = 24, d: int = 16, heads: int = 2, gqa: bool = False, fused_kv: bool = False,
               seed: int = 0) -> chunkc.Graph:
    """x -> q (linear), layer_norm -> K and V (linears, or one linear split in two) -> SDPA -> linear."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph(f"attention_{kind}")
    x = g.add_input("x", "f32", (1, L, d))

    def w(name, *shape):
        return g.add_constant(name, (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32))

    dh, kv_heads = d // heads, 1 if gqa else heads

    def heads_of(t, n):
        return O.permute(O.reshape(t, shape=(1, L, n, dh)), dims=(0, 2, 1, 3))

    q = heads_of(O.linear(x, w("wq", d, d)), heads)
    h = O.layer_norm(x, num_axes=1)
    if fused_kv:
        k, v = O.split(O.linear(h, w("wkv", 2 * kv_heads * dh, d)), sizes=(kv_heads * dh, kv_heads * dh), axis=-1)
    else:
        k, v = O.linear(h, w("wk", kv_heads * dh, d)), O.linear(h, w("wv", kv_heads * dh, d))
    ins = [q, heads_of(k, kv_heads), heads_of(v, kv_heads)]
    if kind == "bool_mask":
        ins.append(g.add_input("mask", "bool", (1, 1, L, L)))
    elif kind == "float_mask":
        ins.append(g.add_input("mask", "f32", (1, 1, 1, L)))
    o = O.scaled_dot_product_attention(*ins, is_causal=kind == "causal", enable_gqa=gqa)
    g.set_outputs(O.linear(O.reshape(O.permute(o, dims=(0, 2, 1, 3)), shape=(1, L, d)), w("wo", d, d)))
    return g


def _inputs(g: chunkc.Graph, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for v in g.inputs:
        shape = v.type.concrete_shape({})
        if v.dtype.is_floating:
            out.append(rng.standard_normal(shape).astype(np.float32))
        else:
            out.append(rng.integers(0, 2, size=shape).astype(bool) | np.eye(shape[-1], dtype=bool))
    return out


def _key_plan(g: chunkc.Graph, chunk: int) -> Plan:
    """The split graph with one key loop: the longest region ending at attention_partial,
    accumulating over the keys."""
    split, splits = split_statistics(g, "split_accumulating")
    assert [s.op for s in splits] == ["scaled_dot_product_attention"]
    regions, graph = [], split
    for op in ("attention_partial",):
        end = next(i for i, n in enumerate(graph.nodes) if n.op.name == op)
        key_axis = graph.nodes[end].inputs[0].rank - 2
        cand = list(walk_regions(GraphIndex(graph), end, key_axis, accumulate=True))[-1]
        assert [v.producer.op.name for v in cand.accumulators] == [op]
        graph, made = apply_regions(graph, [(cand, chunk)])
        regions += made
    return Plan(graph=graph, regions=tuple(regions))


@pytest.mark.parametrize("gqa", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_split_equals_sdpa(kind, gqa):
    g = _attention(kind, gqa=gqa)
    inputs = _inputs(g)
    expected = chunkc.interpret(g, *inputs)
    split, _ = split_statistics(g, "split_accumulating")
    assert "scaled_dot_product_attention" not in {n.op.name for n in split.nodes}
    run_on_all_backends(split, Plan(graph=split), inputs, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fused_kv", [False, True])
@pytest.mark.parametrize("gqa", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_key_loops_match_unchunked(kind, gqa, fused_kv):
    g = _attention(kind, gqa=gqa, fused_kv=fused_kv)
    inputs = _inputs(g)
    expected = chunkc.interpret(g, *inputs)
    plan = _key_plan(g, 5)  # 24 keys in chunks of 5: a shorter last chunk
    if not fused_kv:  # the loop computes the K and V projections a key chunk at a time
        assert [plan.graph.node(n).op.name for n in plan.regions[0].nodes].count("linear") == 2
    assert [r.accumulators for r in plan.regions] == [("scaled_dot_product_attention_partial",)]
    text = str(plan)
    assert "accumulated over the chunk axis (whole, merged each iteration): %scaled_dot_product_attention_partial" in text
    run_on_all_backends(plan.graph, plan, inputs, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["causal", "bool_mask"])
def test_query_loop_runs_the_split_ops_on_query_rows(kind):
    """The split ops carry the query axis as SDPA does (causal queries placed by query_offset)."""
    g = _attention(kind)
    inputs = _inputs(g)
    split, _ = split_statistics(g, "split_accumulating")
    cand = list(walk_regions(GraphIndex(split), len(split.nodes) - 1, 1))[-1]
    graph, regions = apply_regions(split, [(cand, 5)])
    ops = {graph.node(n).op.name for n in regions[0].nodes}
    assert {"attention_partial", "slice"} <= ops and not regions[0].accumulators
    plan = Plan(graph=graph, regions=tuple(regions))
    run_on_all_backends(graph, plan, inputs, chunkc.interpret(g, *inputs), atol=1e-5, rtol=1e-4)


def test_causal_key_chunk_moves_the_key_offset():
    """A causal key chunk past every query attends nothing: its partial is 0 with an lse of
    -inf, and the merge leaves the result alone; the generated code passes the chunk's start
    as key_offset."""
    g = _attention("causal", L=12)
    plan = _key_plan(g, 4)
    source = emit_source(plan.graph, plan, "torch")
    calls = [line for line in source.splitlines() if "rt.attention_" in line]
    assert len(calls) == 1 and all(", start, " in line for line in calls)  # key_offset: the key chunk's start
    inputs = _inputs(g)
    run_on_all_backends(plan.graph, plan, inputs, chunkc.interpret(g, *inputs), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("kind", ["causal", "bool_mask", "plain"])
def test_key_loop_estimate_matches_measure(kind, backend):
    torch.set_num_threads(1)
    g = _attention(kind, L=1024, d=64, heads=4, gqa=kind == "plain")
    plan = _key_plan(g, 160)
    measured, estimated = estimate_and_measure(plan, _inputs(g), backend)
    tolerance = 0.001 if backend == "torch" else 0.02
    assert abs(measured - estimated) <= tolerance * measured, (measured, estimated)


def _cross_attention(S: int = 2048, Lq: int = 16, d: int = 64) -> chunkc.Graph:
    """Short queries over long keys, one head: K and V are projected from a long input, and a
    loop over query rows holds them whole (as one over their columns holds the scores)."""
    rng = np.random.default_rng(3)
    g = chunkc.Graph("cross")
    x = g.add_input("x", "f32", (1, S, d))
    q = g.add_input("q", "f32", (1, 1, Lq, d))

    def w(name):
        return g.add_constant(name, (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32))

    def heads(t):
        return O.reshape(t, shape=(1, 1, S, d))

    h = O.layer_norm(x, num_axes=1)
    o = O.scaled_dot_product_attention(q, heads(O.linear(h, w("wk"))), heads(O.linear(h, w("wv"))))
    g.set_outputs(O.reshape(o, shape=(1, Lq, d)))
    return g


def test_autochunk_slices_keys_where_the_budget_needs_it():
    """The budget is below what K and V take whole, so only loops over the keys meet it: the
    search plans the split graph by itself, and the plan's estimate is what its program takes."""
    torch.set_num_threads(1)
    g = _cross_attention()
    kv_bytes = 2 * 2048 * 64 * 4
    budget = int(0.9 * kv_bytes)
    plan = chunkc.autochunk(g, budget=budget, backend="torch")
    accumulated = {plan.graph.value(v).producer.op.name for r in plan.regions for v in r.accumulators}
    assert "attention_partial" in accumulated
    assert any("split 1 op(s) over an axis they mix" in n for n in plan.notes)
    inputs = _inputs(g)
    fn = chunkc.compile(plan.graph, plan, backend="torch")
    args = [torch.from_numpy(a) for a in inputs]
    np.testing.assert_allclose(fn(*args).numpy(), chunkc.interpret(g, *inputs)[0], atol=1e-5, rtol=1e-4)
    measured = chunkc.measure_peak(fn, *args)
    assert plan.estimated_peak_bytes <= budget
    assert abs(measured - plan.estimated_peak_bytes) <= 0.02 * measured, (measured, plan.estimated_peak_bytes)


def test_autochunk_keeps_sdpa_whole_where_query_loops_meet_the_budget():
    g = _attention("causal", L=512, d=64, heads=4)
    plan = chunkc.autochunk(g, budget=0.5, backend="torch")
    assert "scaled_dot_product_attention" in {n.op.name for n in plan.graph.nodes}


def test_the_partial_checks_its_inputs():
    g = chunkc.Graph("bad")
    k = g.add_input("k", "f32", (2, 8, 4))
    q = g.add_input("q", "f32", (2, 3, 4))
    v32 = g.add_input("v32", "f32", (2, 8, 5))
    with pytest.raises(IRError, match="attention_partial: key_offset places causal keys; it needs is_causal=True"):
        O.attention_partial(k, v32, q, key_offset=2)
    v = g.add_input("v", "f64", (2, 8, 4))
    with pytest.raises(IRError, match="attention_partial: q, k, v and a float mask must share one dtype"):
        O.attention_partial(k, v, q)


def test_heads_broadcast_without_grouping_take_the_score_tile_and_the_record_says_so():
    """One key/value head broadcast over the query heads without enable_gqa: the CPU flash
    kernel does not take them (chunkc.ir.ops.attention.cpu_flash_takes), so
    rt.attention_partial computes a score tile, and the record counts that tile."""
    g = chunkc.Graph("broadcast_heads")
    q = g.add_input("q", "f32", (1, 8, 256, 32))
    k = g.add_input("k", "f32", (1, 1, 512, 32))
    v = g.add_input("v", "f32", (1, 1, 512, 32))
    g.set_outputs(O.attention_partial(k, v, q, is_causal=True, query_offset=300))
    fn = chunkc.compile(g, backend="torch")
    rng = np.random.default_rng(0)
    args = [torch.from_numpy(rng.standard_normal(x.type.concrete_shape({})).astype(np.float32)) for x in g.inputs]
    np.testing.assert_allclose(fn(*args).numpy(), chunkc.interpret(g, *(a.numpy() for a in args))[0],
                               atol=1e-5, rtol=1e-4)
    assert chunkc.estimate_memory(g, backend="torch").peak_bytes == chunkc.measure_peak(fn, *args)


def test_a_plan_slicing_the_keys_without_the_values_is_refused():
    g = _attention("plain")
    plan = _key_plan(g, 5)
    region = plan.regions[0]
    value_chunk = next(c for c in region.chunked if plan.graph.value(c.value).users
                       and plan.graph.value(c.value).users[0].op.name == "attention_partial"
                       and plan.graph.value(c.value).users[0].inputs[1].name == c.value)
    from dataclasses import replace
    broken = replace(region, chunked=tuple(c for c in region.chunked if c != value_chunk))
    with pytest.raises(ChunkcError, match="contracts"):
        chunkc.estimate_memory(plan.graph, Plan(graph=plan.graph, regions=(broken,)))
