"""The CuPy backend: the NumPy generator's code run with ``xp = cupy`` on a GPU
(every op's samples run on it in tests/test_op_backends.py).

Skipped, with the reason shown, where CuPy or a CUDA device is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

import chunkc
from chunkc.backends import compile as compile_graph

from backend_cases import CASES
from gpu import NEEDS_CUPY

pytestmark = NEEDS_CUPY


@pytest.mark.parametrize("name", sorted(CASES))
def test_cupy_chunked_equals_interpreter(name):
    import cupy
    case = CASES[name]()
    for plan in (None, case.plan):
        fn = compile_graph(case.graph, plan, "cupy")
        for sizes in case.sizes:
            arrays = case.inputs(sizes)
            ref = chunkc.interpret(case.graph, *arrays)
            out = fn(*[cupy.asarray(a) for a in arrays])
            out = out if isinstance(out, tuple) else (out,)
            for r, o in zip(ref, out):
                assert isinstance(o, cupy.ndarray)
                np.testing.assert_allclose(cupy.asnumpy(o), r, rtol=1e-4, atol=1e-4)


def test_cupy_measured_peak_matches_estimate():
    import cupy
    from backend_cases import attention
    case = attention(d=64, heads=4, chunk=128)
    sizes = {"B": 1, "L": 1024}
    arrays = [cupy.asarray(a) for a in case.inputs(sizes)]
    for plan in (None, case.plan):
        fn = compile_graph(case.graph, plan, "cupy")
        fn(*arrays)
        estimate = chunkc.estimate_memory(case.graph, plan, sizes=sizes).peak_bytes
        measured = chunkc.measure_peak(fn, *arrays, device="cupy")
        assert abs(measured - estimate) <= 0.05 * estimate, (plan is not None, measured, estimate)


def test_cupy_weights_live_on_the_gpu():
    import cupy
    case = CASES["mlp"]()
    fn = compile_graph(case.graph, None, "cupy")
    assert fn.xp is cupy and isinstance(fn.w1, cupy.ndarray)
