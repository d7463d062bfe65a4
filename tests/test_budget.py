"""Budgets for the backend that runs and the sizes it runs at (chunkc/backends/budget.py):
a plan compiled for another backend is re-checked there, and a compiled program says, before it
allocates, when its plan's budget cannot hold at a call's sizes."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.backends.budget import plan_for_backend
from chunkc.backends.registry import get_backend, reference_workspace, register_backend, unregister_backend
from chunkc.errors import BudgetExceededError, BudgetWarning, InfeasibleBudgetError

from graphs import attention_block, inputs_for

torch = pytest.importorskip("torch")


def sdpa_graph(d=64, heads=4) -> chunkc.Graph:
    """Attention through scaled_dot_product_attention: its NumPy reference holds the [L, L]
    scores (declared workspace), PyTorch's kernel does not."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("sdpa")
    x = g.add_input("x", "f32", (1, "L", d))
    L = chunkc.sym("L")

    def w(name):
        return g.add_constant(name, (rng.standard_normal((d, d)) / 8).astype(np.float32))

    def split(t):
        return O.permute(O.reshape(t, shape=(1, L, heads, d // heads)), dims=(0, 2, 1, 3))

    q, k, v = (split(O.linear(x, w(n))) for n in ("wq", "wk", "wv"))
    o = O.reshape(O.permute(O.scaled_dot_product_attention(q, k, v), dims=(0, 2, 1, 3)), shape=(1, L, d))
    g.set_outputs(O.add(O.linear(o, w("wo")), x))
    return g


SIZES = {"L": 512}
SCALAR_SLACK = 64  # bytes: 0-d tensors made from Python numbers during a call (tests/test_torch_memory.py)


# -- another backend ------------------------------------------------------------------------------


def test_a_plan_whose_budget_holds_elsewhere_is_kept():
    g = attention_block()
    plan = chunkc.autochunk(g, 0.3, sizes={"L": 256}, backend="numpy", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        kept = plan_for_backend(g, plan, "torch")
        chunkc.compile(g, plan, backend="torch")
    assert kept.regions == plan.regions and kept.backend == "torch"
    assert kept.estimated_peak_bytes == chunkc.estimate_memory(plan.graph, plan, backend="torch").peak_bytes
    assert kept.estimated_peak_bytes <= plan.budget_bytes


def test_a_plan_over_budget_on_another_backend_is_planned_again():
    g = sdpa_graph()
    plan = chunkc.autochunk(g, 0.9, sizes=SIZES, progress=False)  # for torch, the default
    assert plan.backend == "torch"
    assert chunkc.estimate_memory(plan.graph, plan, backend="numpy").peak_bytes > plan.budget_bytes
    with pytest.warns(BudgetWarning, match=r"made for backend 'torch'; on backend 'numpy' its estimated peak"):
        again = plan_for_backend(g, plan, "numpy")
    assert again.backend == "numpy" and again.budget_bytes == plan.budget_bytes
    assert chunkc.estimate_memory(again.graph, again, backend="numpy").peak_bytes <= plan.budget_bytes
    with pytest.warns(BudgetWarning):
        fn = chunkc.compile(g, plan, backend="numpy")
    x = inputs_for(g, SIZES)[0]
    fn(x)
    # tracemalloc counts the call's Python objects too (docs/memory.md): a few tens of KiB
    assert chunkc.measure_peak(fn, x) <= plan.budget_bytes * 1.15
    np.testing.assert_allclose(fn(x), chunkc.interpret(g, x)[0], rtol=1e-4, atol=1e-4)


# each attention op's keys: SDPA's input 1, input 0 of its split over the keys
_KEYS_AT = {"scaled_dot_product_attention": 1, "attention_partial": 0}


def _square_scores_workspace(op):
    """A backend whose attention kernels hold the whole square of scores per head (the keys'
    full length squared), however few queries or keys they get: no chunking lowers that."""
    def square(ins, attrs, outs):
        k = ins[_KEYS_AT[op.name]]
        return k.shape[-3] * SIZES["L"] * SIZES["L"] if k.rank >= 3 else 0
    return square if op.name in _KEYS_AT else reference_workspace(op)


def test_a_budget_no_plan_reaches_on_another_backend_is_refused():
    g = sdpa_graph()
    plan = chunkc.autochunk(g, 0.8, sizes=SIZES, progress=False)
    numpy = get_backend("numpy")
    register_backend(dataclasses.replace(numpy, name="square_scores", workspace=_square_scores_workspace))
    try:
        with pytest.raises(InfeasibleBudgetError, match=r"made for backend 'torch'.*no plan for backend 'square_scores' "
                                                        r"reaches.*scaled_dot_product_attention"):
            chunkc.compile(g, plan, backend="square_scores")
        with pytest.raises(InfeasibleBudgetError):
            chunkc.backends.emit_source(g, plan, backend="square_scores")
    finally:
        unregister_backend("square_scores")


# -- sizes at run time ----------------------------------------------------------------------------


def _planned():
    g = attention_block()
    return g, chunkc.autochunk(g, 0.3, sizes={"L": 256}, progress=False)


def test_a_call_where_the_budget_cannot_hold_warns_once():
    g, plan = _planned()
    fn = chunkc.compile(g, plan)
    big = torch.from_numpy(inputs_for(g, {"L": 2048})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        fn(torch.from_numpy(inputs_for(g, {"L": 256})[0]))  # the planned size
        fn(torch.from_numpy(inputs_for(g, {"L": 200})[0]))  # smaller: the budget holds
    with pytest.warns(BudgetWarning) as record:
        fn(big)
    message = str(record[0].message)
    peak = chunkc.estimate_memory(plan.graph, plan, sizes={"L": 2048}).peak_bytes
    assert peak > plan.budget_bytes
    assert "at L=2048" in message and f"budget of {plan.budget_bytes / 2**20:.2f} MiB" in message
    assert f"about {peak / 2**20:.2f} MiB" in message and "chunk size falls to 1" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        fn(big)  # once
    # the peak it said the call would reach (the allocator also sees 0-d tensors wrapping Python numbers)
    assert peak <= chunkc.measure_peak(fn, big) <= peak + SCALAR_SLACK


def test_strict_raises_before_anything_is_allocated():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += 1
            return func(*args, **(kwargs or {}))

    g, plan = _planned()
    fn = chunkc.compile(g, plan, strict=True)
    big = torch.from_numpy(inputs_for(g, {"L": 2048})[0])
    for _ in range(2):  # at every such call
        with Ops() as ops, pytest.raises(BudgetExceededError) as info:
            fn(big)
        assert ops.count == 0
    assert info.value.sizes == {"L": 2048} and info.value.budget_bytes == plan.budget_bytes
    assert info.value.peak_bytes > plan.budget_bytes
    fn(torch.from_numpy(inputs_for(g, {"L": 256})[0]))  # within the budget: runs


def test_the_numpy_program_checks_too():
    g, plan = _planned()
    fn = chunkc.compile(g, plan, backend="numpy", strict=True)
    with pytest.raises(BudgetExceededError, match="at L=2048"):
        fn(inputs_for(g, {"L": 2048})[0])


def test_the_estimator_runs_once_per_distinct_shape(monkeypatch):
    import chunkc.passes.memory as memory

    g, plan = _planned()
    fn = chunkc.compile(g, plan)
    calls = []
    real = memory.estimate_memory
    monkeypatch.setattr(memory, "estimate_memory", lambda *a, **k: calls.append(k.get("sizes")) or real(*a, **k))
    for L in (300, 300, 128, 300, 128, 256):
        fn(torch.from_numpy(inputs_for(g, {"L": L})[0]))
    assert calls == [{"L": 300}, {"L": 128}]  # the planned size needs none


def test_no_check_without_a_budget_or_symbols():
    g = attention_block(L=64)
    plan = chunkc.autochunk(g, 0.5, sizes={}, progress=False)
    assert chunkc.compile(g, plan).chunkc_budget is None  # static sizes: the plan was checked at them
    assert chunkc.compile(attention_block()).chunkc_budget is None
