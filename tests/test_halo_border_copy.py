"""A window op's padded copy at the image border replaces the loop chunk it reads
(chunkc.backends.halo_loop, chunkc.passes.memory ``_freed_by_copy``).

In a halo loop a convolution reads its input rows padded at the border: a copy
(``take_rows``).  When the convolution is the chunk's last reader in the loop, the
generated code takes the padded rows and drops the chunk before the convolution runs, so
the copy is not held beside the rows it copies.  Checked on a conv -> SiLU -> conv -> SiLU
-> conv stack (2 -> 32 -> 32 -> 2 channels), NumPy and PyTorch, values against the unchunked result and the estimate
against ``measure_peak``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.backends import compile as compile_graph
from chunkc.ir.interpreter import interpret
from chunkc.measure import measure_peak
from chunkc.passes import memory
from chunkc.passes.plan import Plan
from chunkc.passes.search import GraphIndex, consistent_extent, walk_regions

SIDE, WIDTH, CHANNELS, OUTER = 32, 256, 32, 2


def _stack(seed: int = 0) -> chunkc.Graph:
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("conv_stack")
    h = g.add_input("x", "f32", (1, OUTER, SIDE, WIDTH))
    for k, (c_in, c_out) in enumerate(((OUTER, CHANNELS), (CHANNELS, CHANNELS), (CHANNELS, OUTER))):
        w = g.add_constant(f"w{k}", (rng.standard_normal((c_out, c_in, 3, 3)) / (3 * c_in)).astype(np.float32))
        h = O.conv(h, w, padding=((1, 1), (1, 1)))
        if k < 2:
            h = O.silu(h)
    g.set_outputs(h)
    return g


def _plan(g: chunkc.Graph, chunk: int) -> Plan:
    cands = [c for c in walk_regions(GraphIndex(g), len(g.nodes) - 1, 2) if consistent_extent(c)]
    longest = cands[-1]  # the longest span: the whole stack
    assert longest.start == 0, longest
    return Plan(g, (longest.to_region(g, chunk),))


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_the_padded_copy_replaces_the_chunk_it_copies(backend, monkeypatch):
    torch.set_num_threads(1)
    g = _stack()
    x = np.random.default_rng(1).uniform(-1, 1, (1, OUTER, SIDE, WIDTH)).astype(np.float32)
    arg = torch.from_numpy(x) if backend == "torch" else x
    want = interpret(g, x)[0]
    allowance = 4096 if backend == "numpy" else 0  # tracemalloc counts Python objects too
    for chunk in (2, 5):
        plan = _plan(g, chunk)
        fn = compile_graph(g, plan, backend=backend)
        np.testing.assert_allclose(np.asarray(fn(arg)), want, rtol=1e-4, atol=1e-4)
        measured = measure_peak(fn, arg)
        estimate = chunkc.estimate_memory(g, plan, backend=backend).peak_bytes
        assert abs(estimate - measured) <= 0.02 * measured + allowance, (chunk, estimate, measured)
        with monkeypatch.context() as m:  # the estimate of a loop that held the chunk beside its copy
            m.setattr(memory.MemoryModel, "_freed_by_copy", lambda *a: 0)
            held = chunkc.estimate_memory(g, plan, backend=backend).peak_bytes
        # at the border, the chunk the copy replaces is gone (the peak moves to an inner iteration)
        assert measured < held, (chunk, measured, held)
