"""Minimal reproducers of the failure classes the differential fuzzer found inside the planner.

Each was shrunk from a fuzz case (``python -m chunkc.fuzz --case N --shrink``) or taken from
issue 16; each was an expected failure until the planner (chunkc/passes/search.py,
region_memory.py, selection.py, autochunk.py) was fixed, and now holds the fix.  Classes
found outside the planner were fixed at their root; their regression tests live with the code
they fixed (tests/test_reference_memory.py, tests/test_memory.py, tests/test_measure.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.errors import InfeasibleBudgetError
from chunkc.passes.memory import estimate_memory


def _chain() -> chunkc.Graph:
    """Issue 16's 8-node chain on f32[177, 96]::

        %amax: f32[177, 1] = amax(%x) {axes = -1, keepdim = true}
        %sub = sub(%x, %amax); %abs = abs(%sub); %add = add(%abs, 1.0); %div = div(%sub, %add)
        %abs_1 = abs(%div); %add_1 = add(%abs_1, 1.0); %div_1 = div(%div, %add_1)    # f32[177, 96]
    """
    g = chunkc.Graph("chain")
    x = g.add_input("x", "f32", (177, 96))
    h = O.sub(x, O.amax(x, axes=-1, keepdim=True))
    for _ in range(2):
        h = O.div(h, O.add(O.abs(h), 1.0))
    g.set_outputs(h)
    return g


def _conv_stack() -> chunkc.Graph:
    """Shrunk from fuzz case 38 (an image model's residual block)::

        %bn: f32[2, 8, S, S] = batch_norm(%x, %mean, %var, %w, %b)
        %act = silu(%bn)
        %conv1 = conv(%act, %w1, %b1) {padding = ((1, 1), (1, 1))}
        %conv2 = conv(%conv1, %w2, %b2) {padding = ((1, 1), (1, 1))}
        %res = add(%x, %conv2)
        %pool: f32[2, 8, 2, 2] = adaptive_avg_pool(%res) {output_size = (2, 2)}

    at S = 6.  Every node carries the batch axis: one region over all six nodes, in chunks
    of one batch item, halves the peak.
    """
    rng = np.random.default_rng(0)
    g = chunkc.Graph("conv_stack")
    x = g.add_input("x", "f32", (2, 8, "S", "S"))

    def c(*shape):
        return g.add_constant("w", rng.standard_normal(shape).astype(np.float32))
    var = g.add_constant("var", (np.abs(rng.standard_normal(8)) + 0.5).astype(np.float32))
    h = O.batch_norm(x, c(8), var, c(8), c(8), name="bn")
    h = O.silu(h, name="act")
    h = O.conv(h, c(8, 8, 3, 3), c(8), padding=((1, 1), (1, 1)), name="conv1")
    h = O.conv(h, c(8, 8, 3, 3), c(8), padding=((1, 1), (1, 1)), name="conv2")
    g.set_outputs(O.adaptive_avg_pool(O.add(x, h, name="res"), output_size=(2, 2), name="pool"))
    return g


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_chain_is_planned_when_its_whole_span_is_a_region(backend):
    g = _chain()
    plan = chunkc.autochunk(g, 0.9, backend=backend, progress=False)
    assert plan.estimated_peak_bytes <= plan.budget_bytes


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_larger_budget_is_planned_when_a_smaller_one_is(backend):
    """The budgets a graph can be planned for are closed upwards.  (On PyTorch this stack is
    not chunkable at all at these sizes: one image at a time, ATen convolves through an
    im2col buffer larger than what the chunks save, so every budget below the peak is
    refused, and the refusal says so.)"""
    g = _conv_stack()
    sizes = {"S": 6}
    planned = []
    peak = estimate_memory(g, sizes=sizes, backend=backend).peak_bytes
    for fraction in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        try:
            plan = chunkc.autochunk(g, fraction, sizes=sizes, backend=backend, progress=False)
        except InfeasibleBudgetError as exc:
            assert exc.lowest_peak_bytes > int(fraction * peak), str(exc)
            planned.append(False)
        else:
            assert plan.estimated_peak_bytes <= plan.budget_bytes
            planned.append(True)
    assert planned == sorted(planned), planned  # never planned, then refused at a larger budget
    if backend == "numpy":
        assert any(planned)


def test_a_refusal_never_names_a_reachable_peak_below_the_budget():
    g = _conv_stack()
    sizes = {"S": 6}
    budget = int(0.844 * estimate_memory(g, sizes=sizes, backend="torch").peak_bytes)
    try:
        plan = chunkc.autochunk(g, budget, sizes=sizes, backend="torch", progress=False)
    except InfeasibleBudgetError as exc:
        assert exc.lowest_peak_bytes >= budget, f"refused {budget} B, but says {exc.lowest_peak_bytes} B is reachable"
    else:
        assert plan.estimated_peak_bytes <= budget


def test_a_value_read_as_queries_and_as_values_is_sliced_and_read_whole():
    """SDPA reading one value as its queries (sliced) and as its values (whole): the value is
    computed before the loop and the loop reads it both ways (ChunkRegion.whole_reads)."""
    import torch

    rng = np.random.default_rng(0)
    g = chunkc.Graph("v_is_q")
    x = g.add_input("x", "f32", (1, "L", 64))

    def w():
        return g.add_constant("w", (rng.standard_normal((64, 64)) / 8).astype(np.float32))
    q = O.permute(O.reshape(O.linear(x, w(), name="q_proj"), shape=(1, "L", 2, 32)), dims=(0, 2, 1, 3), name="q")
    k = O.permute(O.reshape(O.linear(x, w()), shape=(1, "L", 2, 32)), dims=(0, 2, 1, 3), name="k")
    o = O.scaled_dot_product_attention(q, k, q, name="attn")  # v = q
    g.set_outputs(O.linear(O.reshape(O.permute(o, dims=(0, 2, 1, 3)), shape=(1, "L", 64)), w()))
    sizes = {"L": 1024}
    with pytest.raises(chunkc.InfeasibleBudgetError) as err:  # the floor (it moves with the thread count:
        chunkc.autochunk(g, 1, sizes=sizes, backend="torch", progress=False)  # attention's buffers are per thread)
    peak, lowest = chunkc.estimate_memory(g, sizes=sizes).peak_bytes, err.value.lowest_peak_bytes
    plan = chunkc.autochunk(g, lowest + (peak - lowest) // 4, sizes=sizes, backend="torch", progress=False)
    assert plan.estimated_peak_bytes <= plan.budget_bytes
    assert any(("attn", 2) in r.whole_reads for r in plan.regions), plan.regions
    xs = rng.standard_normal((1, 300, 64)).astype(np.float32)
    got = chunkc.compile(g, plan, backend="torch")(torch.from_numpy(xs)).numpy()
    np.testing.assert_allclose(got, chunkc.interpret(g, xs)[0], rtol=1e-4, atol=1e-5)
