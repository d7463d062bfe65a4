"""The beam's gainful regions: once a plan meets its budget, more regions are chunked while
each saves more than ``BeamSelector.gain`` of the program's predicted time."""

from __future__ import annotations

import dataclasses

import pytest

import chunkc
from chunkc import ops as O
from chunkc.passes.cost import KernelTable, TimeModel, predict_seconds
from chunkc.passes.plan import Plan
from chunkc.passes.selection import BeamSelector

MiB = float(1 << 20)


def fault_table() -> KernelTable:
    """Round numbers: 1 us a call, 10 GB/s, fresh outputs free up to 1 MiB and 1 ms per 2 MiB
    beyond (a process whose large blocks are fresh pages at every call)."""
    return KernelTable(key="test", call_s=1e-6, view_s=0.5e-6, iteration_s=0.2e-6,
                       stream=((4096.0, 1e-10), (MiB, 1e-10), (2 * MiB, 1e-10), (64 * MiB, 1e-10)),
                       alloc=((4096.0, 0.0), (MiB, 0.0), (2 * MiB, 1e-3)),
                       pointwise_flops_per_s=4e9, gemm=((1.0, 1e9), (64.0, 64e9)),
                       product_out=((4096.0, 0.0),), product_out_unaligned=((4096.0, 0.0),))


def two_chains() -> chunkc.Graph:
    """Two row-wise chains, the first (16 MiB tensors) holding the peak, the second a quarter as
    wide (4 MiB): a budget of 12 MiB needs only the first chunked; chunking the second as well
    saves its outputs' page faults."""
    g = chunkc.Graph("two_chains")
    x = g.add_input("x", "f32", (2048, 2048))
    y = g.add_input("y", "f32", (2048, 512))
    a = O.sum(O.tanh(O.exp(x)), axes=1, keepdim=True)
    b = O.sum(O.tanh(O.exp(y)), axes=1, keepdim=True)
    g.set_outputs(a, b)
    return g


def peak(g: chunkc.Graph) -> int:
    return chunkc.estimate_memory(g, backend="torch").peak_bytes


def test_a_plan_that_meets_its_budget_also_chunks_the_regions_that_save_time():
    g, table = two_chains(), fault_table()
    budget = 3 * peak(g) // 8  # 12 MiB: the first chain (two 16 MiB values) must be chunked, not the second
    stop = chunkc.autochunk(g, budget, backend="torch", machine=table, progress=False,
                            selector=BeamSelector(gain=None))
    more = chunkc.autochunk(g, budget, backend="torch", machine=table, progress=False)
    assert len(stop.regions) == 1 and len(more.regions) == 2
    assert more.estimated_peak_bytes <= budget
    total = TimeModel(g, {}, table).total
    saved = predict_seconds(stop.graph, stop, machine=table) - predict_seconds(more.graph, more, machine=table)
    # the added loop runs the second chain's tanh and sum over the peak step: its 4 MiB tanh output,
    # a fresh block at 1 ms per 2 MiB beyond the heap's 1 MiB, becomes chunks on the heap; the saving
    # is those page faults less the loop's bookkeeping, far above the margin
    whole_faults = 1e-3 * (4 * MiB) / (2 * MiB)
    assert saved > BeamSelector().gain * total
    assert saved == pytest.approx(whole_faults, rel=0.05)


def test_no_region_is_added_whose_saving_is_within_the_margin():
    """Without page faults the second chain's loop only adds its bookkeeping: not chunked."""
    g = two_chains()
    table = dataclasses.replace(fault_table(), alloc=((4096.0, 0.0), (64 * MiB, 0.0)))
    plan = chunkc.autochunk(g, 3 * peak(g) // 8, backend="torch", machine=table, progress=False)
    assert isinstance(plan, Plan) and len(plan.regions) == 1
