"""Written-out attention rewritten into scaled_dot_product_attention (chunkc/passes/written_attention.py):
the same values on NumPy and PyTorch, fully masked rows included; what it must not rewrite stays;
autochunk's nested fallback uses it on GPT-2 with eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.ir import Graph
from chunkc.passes.written_attention import rewrite_written_attention

H, E, L = 2, 8, 12
LOWEST = float(np.finfo(np.float32).min)


def written_graph(mask: str, scale: str) -> Graph:
    """softmax(q @ k^T [* or / c] [masked]) @ v as eager attention writes it out.  ``mask``:
    "none"; "causal_where" / "causal_add" (where(causal, s, lowest) / s + where(causal, 0, lowest),
    causal built from positions); "bool_where" / "bool_add" (the same with a bool input ``b``);
    "bool_where_inf" (where(b, s, -inf)); "float_input" (s + a float input)."""
    g = Graph(f"written_{mask}_{scale}")
    q = g.add_input("q", "f32", (1, H, L, E))
    k = g.add_input("k", "f32", (1, H, L, E))
    v = g.add_input("v", "f32", (1, H, L, E))
    s = O.matmul(q, O.permute(k, dims=(0, 1, 3, 2)))
    if scale == "mul":
        s = O.mul(s, g.scalar(E ** -0.5, "f32"))
    elif scale == "div":
        s = O.div(s, g.scalar(E ** 0.5, "f32"))
    if mask.startswith("causal"):
        pos = g.op("arange", end=L)
        b = O.reshape(O.le(O.unsqueeze(pos, axis=0), O.unsqueeze(pos, axis=1)), shape=(1, 1, L, L))
    elif mask.startswith("bool"):
        b = g.add_input("b", "bool", (1, 1, L, L))
    if mask in ("causal_where", "bool_where"):
        s = O.where(b, s, g.scalar(LOWEST, "f32"))
    elif mask == "bool_where_inf":
        s = O.where(b, s, g.scalar(float("-inf"), "f32"))
    elif mask in ("causal_add", "bool_add"):
        s = O.add(s, O.where(b, g.op("full", shape=(), value=0.0), g.scalar(LOWEST, "f32")))
    elif mask == "float_input":
        s = O.add(s, g.add_input("m", "f32", (1, 1, L, L)))
    g.set_outputs(O.matmul(O.softmax(s, axis=3), v))
    chunkc.verify(g)
    return g


def _inputs(g: Graph) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for x in g.inputs:
        shape = x.type.concrete_shape({})
        if x.dtype.is_floating:
            out.append(rng.standard_normal(shape).astype(np.float32))
        else:
            b = rng.integers(0, 2, size=shape).astype(bool)
            b[..., 3, :] = False  # a row masked at every key: eager's softmax is uniform there
            out.append(b)
    return out


def _ops(g: Graph) -> list[str]:
    return [n.op.name for n in g.nodes]


@pytest.mark.parametrize("scale", ["none", "mul", "div"])
@pytest.mark.parametrize("mask", ["none", "causal_where", "causal_add", "bool_where", "bool_add"])
def test_rewritten_attention_matches_written_out(mask, scale):
    g = written_graph(mask, scale)
    r, names = rewrite_written_attention(g)
    assert names == [g.nodes[-1].name]
    assert "scaled_dot_product_attention" in _ops(r) and "softmax" not in _ops(r)
    sdpa = next(n for n in r.nodes if n.op.name == "scaled_dot_product_attention")
    assert sdpa.attrs["is_causal"] == mask.startswith("causal")
    assert len(sdpa.inputs) == (4 if mask.startswith("bool") else 3)  # bool masks become float masks
    assert sdpa.attrs["scale"] == pytest.approx(1.0 if scale == "none" else E ** -0.5)
    ins = _inputs(g)
    want = chunkc.interpret(g, *ins)[0]
    if mask.startswith("bool"):  # the fully masked row: uniform weights, the mean of v
        np.testing.assert_allclose(want[0, :, 3], ins[2][0].mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(chunkc.interpret(r, *ins)[0], want, atol=1e-5, rtol=1e-5)
    args = [torch.from_numpy(a) for a in ins]
    want_torch = chunkc.compile(g, backend="torch")(*args)
    torch.testing.assert_close(chunkc.compile(r, backend="torch")(*args), want_torch, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(want_torch, torch.from_numpy(want), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mask", ["bool_where_inf", "float_input"])
def test_masks_that_could_differ_on_fully_masked_rows_stay_written_out(mask):
    """-inf at every key of a row: eager's softmax gives NaN, SDPA zeros; such masks (or float
    masks whose values are unknown) are left as written."""
    g = written_graph(mask, "mul")
    r, names = rewrite_written_attention(g)
    assert names == [] and r is g


def test_pipeline_pass_rewrites_written_attention():
    from chunkc.passes.manager import PassManager
    g = written_graph("causal_where", "div")
    r, _ = PassManager.parse("written_attention,verify").run(g)
    sdpa = [n for n in r.nodes if n.op.name == "scaled_dot_product_attention"]
    assert len(sdpa) == 1 and sdpa[0].attrs["is_causal"] and sdpa[0].name == g.nodes[-1].name


def test_attention_read_elsewhere_stays_written_out():
    """Probabilities that are also an output are not attention's private temporaries."""
    g = written_graph("causal_add", "mul")
    probs = g.nodes[-1].inputs[0]
    g.set_outputs(g.outputs[0], probs)
    assert rewrite_written_attention(g) == (g, [])


@pytest.fixture(scope="module")
def gpt2_eager():
    from chunkc import zoo
    case = zoo.gpt2(n_layer=2, n_embd=256, n_head=4, n_positions=16384)
    graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    return case, graph


def test_gpt2_eager_attention_becomes_causal_sdpa(gpt2_eager):
    case, g = gpt2_eager
    r, names = rewrite_written_attention(g)
    sdpa = [n for n in r.nodes if n.op.name == "scaled_dot_product_attention"]
    assert len(names) == 2 and len(sdpa) == 2
    assert all(n.attrs["is_causal"] and len(n.inputs) == 3 and n.attrs["scale"] == 0.125 for n in sdpa)
    args = case.make_inputs(40)
    with torch.inference_mode():
        want = case.module(*args)
    torch.testing.assert_close(chunkc.compile(r, backend="torch")(*args), want, atol=1e-5, rtol=1e-5)


def test_autochunk_nests_loops_in_gpt2_with_eager_attention(gpt2_eager):
    """Below the flat floor, autochunk's nested fallback rewrites the written-out attention and
    makes a nested plan: within its budget by estimate and by measurement, outputs as eager's."""
    torch.set_num_threads(1)
    case, g = gpt2_eager
    size = 1024
    with pytest.raises(chunkc.InfeasibleBudgetError) as err:
        chunkc.autochunk(g, budget=1, sizes={"L": size}, backend="torch", nested=False)
    budget = int(err.value.lowest_peak_bytes * 0.8)
    plan = chunkc.autochunk(g, budget=budget, sizes={"L": size}, backend="torch")
    assert any(r.inner for r in plan.regions)
    assert plan.estimated_peak_bytes <= budget
    assert any("written-out attention" in note for note in plan.notes)
    fn = chunkc.compile(plan.graph, plan, backend="torch")
    args = case.make_inputs(size)
    assert chunkc.measure_peak(fn, *args) <= 1.02 * budget
    with torch.inference_mode():
        want = case.module(*args)
    torch.testing.assert_close(fn(*args), want, atol=1e-4, rtol=1e-4)
