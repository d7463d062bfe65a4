"""measure_peak: bytes allocated during one call, inputs and weights excluded, on
NumPy (tracemalloc), PyTorch CPU (the allocator's events through the profiler; the
storage-level tracker beside it), CUDA and CuPy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chunkc.measure import (AllocatorTrace, PoolCounter, StorageTracker, detect_device, measure_peak,
                            measure_storage_peak, trace_allocations)
from chunkc.measure.allocator import Allocation

MiB = 2**20
SLACK = 64 * 1024  # Python objects made during a call (tracemalloc counts them too)


def _near(measured: int, expected: int) -> bool:
    return expected <= measured <= expected + SLACK


# -- NumPy ----------------------------------------------------------------------------------


def test_numpy_peak_counts_temporaries_alive_together():
    x = np.ones((1024, 256), np.float32)  # 1 MiB

    def f(x):
        a = x * 2
        b = a + 1  # a and b live together: 2 MiB
        del a
        c = np.exp(b)  # b and c: 2 MiB
        del b
        return c

    assert _near(measure_peak(f, x), 2 * MiB)


def test_numpy_inputs_and_views_of_them_are_free():
    x = np.ones((1024, 256), np.float32)
    assert measure_peak(lambda x: x[:, :128].T.reshape(128, 1024, order="F"), x) < SLACK
    assert _near(measure_peak(lambda x: x[:512] + 1, x), MiB // 2)


def test_numpy_freed_result_still_counts_at_peak():
    def f():
        big = np.zeros(4 * MiB, np.uint8)
        big[0] = 1
        del big
        return np.zeros(MiB, np.uint8)

    assert _near(measure_peak(f), 4 * MiB)


def test_numpy_is_the_default_device():
    assert detect_device(lambda: None, (np.ones(3), 2.0)) == "numpy"
    assert detect_device(lambda: None, ()) == "numpy"


# -- PyTorch on the CPU: the allocator's events ------------------------------------------------

SCALARS = 64  # 0-d tensors PyTorch wraps Python numbers in (8 bytes each), allocated too


def test_torch_cpu_counts_live_blocks():
    x = torch.ones(1024, 256)

    def f(x):
        a = x * 2
        b = a + 1
        del a
        return torch.exp(b)

    assert 2 * MiB <= measure_peak(f, x) <= 2 * MiB + SCALARS


def test_torch_cpu_sees_temporaries_inside_one_op():
    """SDPA on the CPU turns a bool mask into a float mask and its flash kernel takes a
    buffer per thread, inside one call: the allocator sees both; the storages ATen ops
    return show the float mask (a composite op's inner op) but not the kernel's buffer."""
    q = torch.ones(1, 4, 256, 64)
    mask = torch.ones(256, 256, dtype=torch.bool).tril()

    def f(q):
        return F.scaled_dot_product_attention(q, q, q, attn_mask=mask)

    out = q.numel() * 4
    peak = measure_peak(f, q)
    assert peak >= out + 256 * 256 * 4  # the output and the float copy of the mask, at least
    assert measure_storage_peak(f, q) < peak
    trace = trace_allocations(f, q)
    assert trace.peak == peak
    ops = [op for op, _ in trace.live_at_peak()]
    assert any("aten::_scaled_dot_product_flash_attention_for_cpu > aten::empty" in op for op in ops), trace.format()


def test_torch_views_and_in_place_ops_are_not_new_memory():
    x = torch.ones(1024, 256)

    def f(x):
        y = x[:, :128].t()  # a view of the input: free
        z = y.contiguous()  # a copy: 0.5 MiB
        z.mul_(2)  # in place: nothing new but the wrapped 2
        return z.view(-1)  # a view of z: nothing new

    assert MiB // 2 <= measure_peak(f, x) <= MiB // 2 + SCALARS


def test_torch_module_parameters_and_buffers_are_not_counted():
    lin = torch.nn.Linear(256, 1024)
    lin.register_buffer("scale", torch.ones(1024))

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            w = self.lin.weight[:512]  # a slice of a weight: free
            return self.lin(x) * self.lin.scale + (x @ w.t()).sum()

    x = torch.ones(256, 256)
    m = M()
    peak = measure_peak(m, x)
    out = 256 * 1024 * 4
    # linear's output, the product, then the sum's operand ([256, 512]) while both live
    assert out * 2 <= peak <= out * 2 + 256 * 512 * 4 + 4096
    assert measure_storage_peak(m, x) <= peak
    assert detect_device(M(), (x,)) == "cpu"
    assert detect_device(torch.nn.Identity(), ()) == "cpu"  # a module makes torch tensors


def test_torch_weights_in_closures_are_not_counted_through_views():
    w = torch.ones(4096, 256)  # 4 MiB, captured by the closure, not passed
    x = torch.ones(16, 256)
    assert measure_peak(lambda x: x @ w[:1024].t(), x) == 16 * 1024 * 4
    assert measure_storage_peak(lambda x: x @ w[:1024].t(), x) == 16 * 1024 * 4


def test_torch_freed_temporaries_count_at_the_peak_only():
    def f(x):
        for _ in range(3):
            t = torch.empty(MiB, dtype=torch.uint8)
            del t
        return torch.empty(10, dtype=torch.uint8)

    assert measure_peak(f, torch.ones(1)) == MiB
    assert measure_storage_peak(f, torch.ones(1)) == MiB


def test_allocator_trace_replays_events_in_order():
    trace = AllocatorTrace([Allocation(100, 1, 0, ("aten::a",)), Allocation(50, 2, 1, ("aten::b", "aten::empty")),
                            Allocation(-100, 1, 2, ()), Allocation(30, 3, 3, ())])
    assert trace.curve() == [100, 150, 50, 80]
    assert trace.peak == 150
    assert trace.live_at_peak() == [("aten::a", 100), ("aten::b > aten::empty", 50)]
    assert AllocatorTrace([Allocation(-8, 1, 0, ())]).peak == 0  # a free of a block from before the call
    assert AllocatorTrace().peak == 0


def test_kineto_session_notes_are_kept_out_of_stderr(capfd):
    x = torch.ones(16)

    def f(x):
        import sys
        print("from the call", file=sys.stderr)
        return x + 1

    measure_peak(f, x)
    err = capfd.readouterr().err
    assert "from the call" in err
    assert "profiler_start" not in err and "profiler_stop" not in err


# -- PyTorch on the CPU: the storages ATen ops return ------------------------------------------


def test_storage_tracker_follows_resize():
    tracker = StorageTracker()
    t = torch.empty(10, dtype=torch.uint8)
    tracker.observe(t, ())
    assert tracker.live == 10
    t.resize_(100)
    tracker.observe(t, (t,))
    assert tracker.live == 100 and tracker.peak == 100
    del t
    assert tracker.live == 0
    tracker.detach()


def test_storage_tracker_forgets_freed_storages():
    """A storage's id may be reused after it is freed: a forgotten entry would hide
    a later allocation."""
    tracker = StorageTracker()
    a = torch.empty(10)  # not seeded
    v = a[2:]
    tracker.observe(v, (a,))  # an alias of an input: not new
    assert tracker.live == 0 and len(tracker.known) == 1
    del a, v
    assert tracker.known == {}
    tracker.detach()


# -- CUDA and CuPy ---------------------------------------------------------------------------


def test_pool_counter_tracks_pool_mallocs_and_frees():
    c = PoolCounter()
    c.malloc_postprocess(device_id=0, size=1000, mem_size=1024, mem_ptr=1, pmem_id=1)
    c.malloc_postprocess(device_id=0, size=10, mem_size=512, mem_ptr=2, pmem_id=2)
    c.free_postprocess(device_id=0, mem_size=1024, mem_ptr=1, pmem_id=1)
    c.malloc_postprocess(device_id=0, size=100, mem_size=512, mem_ptr=3, pmem_id=3)
    assert (c.live, c.peak) == (1024, 1536)


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        measure_peak(lambda: None, device="tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_from_the_allocator():
    x = torch.ones(1024, 256, device="cuda")

    def f(x):
        a = x * 2
        b = a + 1
        del a
        return torch.exp(b)

    assert detect_device(f, (x,)) == "cuda"
    assert measure_peak(f, x) == 2 * MiB


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="needs CuPy and a GPU")
def test_cupy_peak_from_the_pool():
    import cupy

    x = cupy.ones((1024, 256), cupy.float32)

    def f(x):
        a = x * 2
        b = a + 1
        del a
        return cupy.exp(b)

    assert detect_device(f, (x,)) == "cupy"
    assert measure_peak(f, x) == 2 * MiB


def test_numpy_measure_does_not_count_free_list_refills():
    """A call that makes 80 small dicts at once and drops them allocates no arrays.  A full
    collection before it would empty CPython's free list of dicts, and tracemalloc would count
    the call refilling it (every dict a fresh block); after a warm-up they come from the list."""
    def churn():
        held = [{"k": i} for i in range(80)]
        del held
        return np.zeros(16, np.float32)
    churn()
    assert measure_peak(churn, device="numpy") < 2048


def test_numpy_call_that_imports_a_module_is_measured_again(tmp_path, monkeypatch):
    """A first call that imports a module (a kernel's first use of scipy.special) traces the
    module's objects: a figure no later call reproduces.  Such a call is measured once more."""
    (tmp_path / "chunkc_test_heavy_module.py").write_text("TABLE = [str(i) * 8 for i in range(200_000)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "chunkc_test_heavy_module", raising=False)

    def first_use():
        import chunkc_test_heavy_module  # noqa: F401  (tens of MiB of strings, on the first call only)
        return np.zeros(MiB, np.uint8)

    assert _near(measure_peak(first_use, device="numpy"), MiB)
