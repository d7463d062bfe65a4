"""Contractions accumulate over their contracted axis: ``A @ B = sum_c A[:, c] @ B[c, :]``
(records' ``accumulates`` with a partner, chunkc.ir.dims.Accumulation), so a chunk loop may
slice both operands along it and keep the product whole; attention then chunks along heads
through its output projection."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.errors import ChunkcError
from chunkc.passes.accumulate import accumulating_axes
from chunkc.passes.chunked_reference import interpret_plan
from chunkc.passes.plan import ChunkedValue, ChunkRegion, Plan
from backend_cases import longest_accumulating_plan, run_on_all_backends

RNG = np.random.default_rng(0)


def _weight(g, name, shape):
    return g.add_constant(name, (RNG.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32))


# contractions sum in another order than the unchunked kernel: float32 needs a looser tolerance
_run_all_backends = functools.partial(run_on_all_backends, atol=1e-4, rtol=1e-4)


def _matmul_graph():
    g = chunkc.Graph("mm")
    x = g.add_input("x", "f32", (2, 6, 10))
    w = _weight(g, "w", (10, 5))
    g.set_outputs(O.matmul(O.tanh(x), O.exp(w * 0.1)))
    return g


def _linear_graph():
    g = chunkc.Graph("lin")
    x = g.add_input("x", "f32", (6, 10))
    w = _weight(g, "w", (5, 10))
    g.set_outputs(O.linear(O.sin(x), w))
    return g


def _bmm_graph():
    g = chunkc.Graph("bmm")
    a = g.add_input("a", "f32", (3, 4, 10))
    b = g.add_input("b", "f32", (3, 10, 5))
    g.set_outputs(O.bmm(O.tanh(a), b * 2.0))
    return g


def _einsum_graph():
    g = chunkc.Graph("es")
    a = g.add_input("a", "f32", (4, 10, 3))
    b = g.add_input("b", "f32", (10, 5))
    g.set_outputs(O.einsum(O.tanh(a), b, equation="ajc,jk->akc"))
    return g


CASES = {"matmul": (_matmul_graph, 2, [(2, 6, 10)]), "linear": (_linear_graph, 1, [(6, 10)]),
         "bmm": (_bmm_graph, 2, [(3, 4, 10), (3, 10, 5)]), "einsum": (_einsum_graph, 1, [(4, 10, 3), (10, 5)])}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("chunk", [3, 4, 10])
def test_contraction_over_the_chunk_axis_matches_unchunked(case, chunk):
    make, axis, shapes = CASES[case]
    g = make()
    assert axis in accumulating_axes(g.nodes[-1])
    inputs = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    expected = chunkc.interpret(g, *inputs)
    new_graph, plan = longest_accumulating_plan(g, axis, chunk)  # 10 contracted units, chunks that do not divide it
    region = plan.regions[0]
    # both operands are sliced along their contracted axes, each read as a slice
    contraction = new_graph.nodes[-1]
    for v in contraction.inputs:
        assert region.axis_of(v.name) is not None, f"%{v.name} must be sliced"
    assert region.whole_reads == ()
    _run_all_backends(new_graph, plan, inputs, expected)


def test_only_the_contracted_axis_accumulates():
    g = _matmul_graph()
    assert accumulating_axes(g.nodes[-1]) == [2]  # rows (axis 1) carry, batch (axis 0) carries


def test_a_bias_does_not_accumulate():
    g = chunkc.Graph("lin_b")
    x = g.add_input("x", "f32", (6, 10))
    out = O.linear(x, _weight(g, "w", (5, 10)), g.add_constant("b", np.ones(5, np.float32)))
    g.set_outputs(out)
    assert accumulating_axes(out.producer) == []


def test_a_value_contracted_with_itself_along_two_axes_does_not_accumulate():
    g = chunkc.Graph("square")
    a = g.add_input("a", "f32", (7, 7))
    out = O.matmul(a, a)
    g.set_outputs(out)
    assert accumulating_axes(out.producer) == []  # a[:, c] @ a[c, :] would slice a two ways
    g2 = chunkc.Graph("gram")
    b = g2.add_input("b", "f32", (5, 7))
    out2 = O.einsum(b, b, equation="ij,kj->ik")
    g2.set_outputs(out2)
    assert accumulating_axes(out2.producer) == [1]  # the same slice of b on both sides


def test_einsum_partners_every_operand_holding_the_letter():
    g = chunkc.Graph("three")
    a = g.add_input("a", "f32", (4, 9))
    b = g.add_input("b", "f32", (9, 5))
    c = g.add_input("c", "f32", (9,))
    g.set_outputs(O.einsum(O.exp(a * 0.1), b, c, equation="ij,jk,j->ik"))
    inputs = [RNG.standard_normal(s).astype(np.float32) for s in [(4, 9), (9, 5), (9,)]]
    expected = chunkc.interpret(g, *inputs)
    new_graph, plan = longest_accumulating_plan(g, 1, 4)
    assert {c.value for c in plan.regions[0].chunked} >= {"b", "c"}
    _run_all_backends(new_graph, plan, inputs, expected)


def test_plan_refuses_a_partner_read_whole():
    g = chunkc.Graph("bmm_in")
    a = g.add_input("a", "f32", (3, 4, 10))
    b = g.add_input("b", "f32", (3, 10, 5))
    out = O.bmm(O.tanh(a), b)
    g.set_outputs(out)
    tanh, bmm = [n.name for n in g.nodes]
    region = ChunkRegion(nodes=(tanh, bmm), chunked=(ChunkedValue("a", 2), ChunkedValue(tanh, 2)),
                         outputs=(bmm,), extent=10, chunk_size=3, accumulators=(bmm,))
    with pytest.raises(ChunkcError, match=f"accumulator %{bmm}: node {bmm} .bmm. contracts %{tanh} axis 2 with "
                                          "%b axis 1, so the plan must slice %b along axis 1"):
        interpret_plan(Plan(graph=g, regions=(region,)), np.zeros((3, 4, 10), np.float32),
                       np.zeros((3, 10, 5), np.float32))


def _attention_block(L=12, heads=4, d=8, causal=True, fused=False):
    """x -> q, k, v projections -> heads -> SDPA -> heads merged -> output projection."""
    c = heads * d
    g = chunkc.Graph("attn_block")
    x = g.add_input("x", "f32", (L, c))

    def heads_of(y):
        return O.permute(O.reshape(y, shape=(L, heads, d)), dims=(1, 0, 2))

    if fused:  # one projection for q, k and v, split along its columns
        q, k, v = O.split(O.matmul(x, _weight(g, "wqkv", (c, 3 * c))), sizes=(c, c, c), axis=1)
    else:
        q, k, v = (O.matmul(x, _weight(g, f"w{n}", (c, c))) for n in "qkv")
    att = O.scaled_dot_product_attention(heads_of(q), heads_of(k), heads_of(v), is_causal=causal,
                                         scale=float(1.0 / np.sqrt(d)))
    merged = O.reshape(O.permute(att, dims=(1, 0, 2)), shape=(L, c))
    g.set_outputs(O.matmul(merged, _weight(g, "wo", (c, c))))
    return g


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("chunk", [1, 3, 4])
def test_attention_chunks_along_heads_through_the_output_projection(causal, chunk):
    g = _attention_block(causal=causal)
    x = RNG.standard_normal((12, 32)).astype(np.float32)
    expected = chunkc.interpret(g, x)
    new_graph, plan = longest_accumulating_plan(g, 1, chunk)
    region = plan.regions[0]
    assert region.extent == 4  # one unit per head: the merged axis is sliced 8 columns at a time
    by_name = region.chunk_map()
    assert by_name["wo"].axis == 0 and by_name["wo"].unit == 8
    for w in ("wq", "wk", "wv"):  # each projection computes only its heads' columns
        assert by_name[w].axis == 1 and by_name[w].unit == 8
    assert "x" not in by_name  # read whole
    sdpa = next(n for n in new_graph.nodes if n.op.name == "scaled_dot_product_attention")
    assert sdpa.name in region.nodes and by_name[sdpa.outputs[0].name].axis == 0  # a head chunk per iteration
    _run_all_backends(new_graph, plan, [x], expected)


def test_head_chunked_attention_memory_matches_the_torch_measure():
    """Per iteration: the accumulator and this head chunk's partial product (both whole),
    the x read whole by the projections, and one head chunk's q, k, v and attention."""
    g = _attention_block(L=256, heads=8, d=16)
    x = torch.from_numpy(RNG.standard_normal((256, 128)).astype(np.float32))
    want = chunkc.compile(g, backend="torch")(x).numpy()
    for chunk in (1, 3):
        new_graph, plan = longest_accumulating_plan(g, 1, chunk)
        plan.backend = "torch"
        fn = chunkc.compile(new_graph, plan, backend="torch")
        measured = chunkc.measure_peak(fn, x)
        estimated = chunkc.estimate_memory(new_graph, plan, backend="torch").peak_bytes
        assert abs(measured - estimated) <= 0.02 * measured, (chunk, measured, estimated)
        np.testing.assert_allclose(fn(x).numpy(), want, atol=1e-4, rtol=1e-4)
