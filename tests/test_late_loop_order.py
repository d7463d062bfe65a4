"""Within a loop, work read late runs just before its reader (chunkc.passes.reorder
``late_loop_order``).

A row loop computes a light value first (``x * 2``) and reads it only after a heavy chain
(a 4x wider hidden layer): held across the chain, its chunk stands beside the chain's
peak.  Moved to just before its reader, it does not.  Checked on NumPy and PyTorch: values
against the unchunked result, the estimate against ``measure_peak``, and the peak below
that of the loop in its first order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.backends import compile as compile_graph
from chunkc.ir.interpreter import interpret
from chunkc.measure import measure_peak
from chunkc.passes.plan import Plan
from chunkc.passes.reorder import apply_regions, late_loop_order
from chunkc.passes.search import GraphIndex, consistent_extent, walk_regions

ROWS, WIDTH, HIDDEN = 512, 64, 256


def _graph() -> chunkc.Graph:
    rng = np.random.default_rng(0)
    g = chunkc.Graph("late_light")
    x = g.add_input("x", "f32", (ROWS, WIDTH))
    w1 = g.add_constant("w1", (rng.standard_normal((WIDTH, HIDDEN)) / WIDTH).astype(np.float32))
    w2 = g.add_constant("w2", (rng.standard_normal((HIDDEN, WIDTH)) / HIDDEN).astype(np.float32))
    light = O.mul(x, 2.0)
    heavy = O.matmul(O.relu(O.matmul(x, w1)), w2)
    g.set_outputs(O.add(heavy, light))
    return g


def _plan(g: chunkc.Graph, chunk: int, late: bool) -> Plan:
    cands = [c for c in walk_regions(GraphIndex(g), len(g.nodes) - 1, 0) if consistent_extent(c)]
    whole = [c for c in cands if c.start == 0 and not c.hoisted]
    assert whole, cands
    graph, regions = apply_regions(g, [(whole[-1], chunk)], sizes={} if late else None)
    return Plan(graph, regions)


def test_the_light_value_moves_to_its_reader():
    g = _graph()
    loop = list(range(len(g.nodes)))
    order = [g.nodes[k].op.name for k in late_loop_order(g, loop, g.outputs, {})]
    assert [g.nodes[k].op.name for k in loop] == ["mul", "matmul", "relu", "matmul", "add"]
    assert order == ["matmul", "relu", "matmul", "mul", "add"]


def test_heavy_work_is_not_moved_after_light_work():
    """The other way round (the heavy chain first in the schedule, the light value after it)
    stays: moving the chain would hold the light chunk beside the chain's peak."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("heavy_first")
    x = g.add_input("x", "f32", (ROWS, WIDTH))
    w1 = g.add_constant("w1", (rng.standard_normal((WIDTH, HIDDEN)) / WIDTH).astype(np.float32))
    w2 = g.add_constant("w2", (rng.standard_normal((HIDDEN, WIDTH)) / HIDDEN).astype(np.float32))
    heavy = O.matmul(O.relu(O.matmul(x, w1)), w2)
    g.set_outputs(O.add(heavy, O.mul(x, 2.0)))
    loop = list(range(len(g.nodes)))
    assert late_loop_order(g, loop, g.outputs, {}) == loop


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_late_order_lowers_the_loop_peak(backend):
    torch.set_num_threads(1)
    g = _graph()
    x = np.random.default_rng(1).uniform(-1, 1, (ROWS, WIDTH)).astype(np.float32)
    arg = torch.from_numpy(x) if backend == "torch" else x
    want = interpret(g, x)[0]
    allowance = 4096 if backend == "numpy" else 0  # tracemalloc counts Python objects too
    measured = {}
    for late in (False, True):
        plan = _plan(g, 64, late)
        names = [plan.graph.node(n).op.name for n in plan.regions[0].nodes]
        assert names[-2] == ("mul" if late else "matmul"), names
        fn = compile_graph(plan.graph, plan, backend=backend)
        np.testing.assert_allclose(np.asarray(fn(arg)), want, rtol=1e-4, atol=1e-4)
        measured[late] = measure_peak(fn, arg)
        estimate = chunkc.estimate_memory(plan.graph, plan, backend=backend).peak_bytes
        assert abs(estimate - measured[late]) <= 0.02 * measured[late] + allowance, (late, estimate, measured[late])
    # the light chunk (64 rows x 64 columns) no longer stands beside the hidden layer's
    assert measured[True] <= measured[False] - 64 * WIDTH * 4 + allowance, measured
