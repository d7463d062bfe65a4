"""Every op's NumPy reference leaves nothing behind per call.

A chunk loop calls each reference once per iteration, and NumPy programs are measured with
tracemalloc, which counts Python objects too.  A call that leaves one block behind (a tuple
built too long and shrunk, parked in CPython's free list for its new size; an
``itertools.product`` pool) adds it once per iteration, up to thousands of them: fuzz case
11000132 (``unsqueeze`` through ``np.expand_dims``), and ``flip`` and ``interpolate`` found by
this test.  Caches that fill once (dtype names, small free lists) are not the concern: each
sample is called until they are full, then the growth over as many calls again must be nil.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from chunkc.ir.reference import small_ufunc_buffers
from chunkc.ir.registry import barrier_dims, lookup

from opdb import all_infos, build, rng_for

CALLS = 300  # per window: a block per call would leave 300 of them
LEFT = CALLS * 16  # bytes the second window may leave: tracemalloc's noise (1.1 KB seen under
# xdist) stays below it, one leaked block per call (32 B or more: 9.6 KB) does not
FREE_LIST = 2000  # freed tuples CPython keeps per length (PyTuple_MAXFREELIST)

INFOS = all_infos()
NAMES = sorted(n for n, info in INFOS.items() if info.raises is None and lookup(n).reference is not None)


def _warm_calls(name: str) -> int:
    """Calls that fill what fills once.  A barrier (no axis carries through it) never runs in
    a chunk loop: once per program call, so what its reference leaves per call is bounded by
    CPython's free lists, which it may fill first.  decode_image needs that: Pillow's BMP
    and TIFF readers (Python code, not ours) build tuples of generators, one left in the
    free list per image opened.  Every other op runs per iteration and must leave nothing
    from its first calls on."""
    return FREE_LIST + CALLS if lookup(name).dims is barrier_dims else CALLS


def _left_per_window(call, warm: int) -> int:
    with small_ufunc_buffers(np):
        for _ in range(warm):  # the first window fills whatever fills once
            call()
        gc.disable()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(CALLS):
                call()
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            gc.enable()


@pytest.mark.parametrize("name", NAMES)
def test_reference_leaves_nothing_per_call(name):
    op = lookup(name)
    gc.collect()  # empties CPython's free lists: another op's calls may have filled them
    for sample in INFOS[name].samples(rng_for(name))[:2]:
        _, node = build(name, sample.inputs, sample.attrs)
        left = _left_per_window(lambda: op.reference(np, *sample.inputs, **node.attrs), _warm_calls(name))
        assert left < LEFT, f"{name} {sample}: {left} B left by {CALLS} calls"
