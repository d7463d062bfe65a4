"""Every op of the op database (tests/opdb.py) on every backend: NumPy, PyTorch, CuPy.

Per op and backend:

* each sample, compiled as a one-node graph, matches the independent reference
  (the same check tests/test_ops.py makes of the interpreter), with the inferred
  dtype and shape;
* each sample graph (symbolic sizes, weights, several nodes) matches the reference
  interpreter at two sizes.

The CuPy runs skip, with the reason shown, where CuPy or a CUDA device is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
import torch

import chunkc
from chunkc.backends import compile as compile_graph
from chunkc.ir.registry import all_ops

from gpu import NEEDS_CUPY
from opdb import GRAPH_SIZES, SampleGraph, all_infos, as_tuple, assert_close, build, graph_samples, samples_of


@dataclass(frozen=True)
class Runner:
    """How a backend takes NumPy inputs and gives NumPy outputs back."""

    name: str
    to_backend: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]


def _cupy_runner() -> Runner:
    import cupy
    return Runner("cupy", cupy.asarray, cupy.asnumpy)


def _torch_to_numpy(t) -> np.ndarray:
    if isinstance(t, np.ndarray):  # a dtype PyTorch cannot compute in stays a NumPy array (host_call.py)
        return t
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


RUNNERS = {
    "numpy": lambda: Runner("numpy", lambda a: np.array(a, copy=True), np.asarray),
    "torch": lambda: Runner("torch", lambda a: torch.from_numpy(np.array(a, copy=True)), _torch_to_numpy),
    "cupy": _cupy_runner,
}
BACKENDS = ["numpy", "torch", pytest.param("cupy", marks=NEEDS_CUPY)]
INFOS = all_infos()
# opaque's samples name targets that do not exist: tests/test_backend_torch.py checks it
OPS = sorted(name for name in INFOS if name in all_ops() and INFOS[name].raises is None)


def _run(runner: Runner, fn, arrays) -> list[np.ndarray]:
    out = fn(*[runner.to_backend(a) for a in arrays])
    return [runner.to_numpy(o) for o in as_tuple(out)]


def _compile(graph, backend: str):
    """``graph`` compiled for ``backend``; None where CuPy refuses a dtype it has no arrays of
    (bf16, float8, ...), which it must do by naming the value (the other backends run it)."""
    if backend == "cupy" and any(v.dtype.from_ml_dtypes for v in graph.values()):
        with pytest.raises(chunkc.ChunkcError, match="which CuPy cannot hold; use backend='numpy' or backend='torch'"):
            compile_graph(graph, None, backend)
        return None
    return compile_graph(graph, None, backend)


def _check_dtypes(name: str, what, outputs, got) -> None:
    for value, a in zip(outputs, got):
        assert a.dtype == value.dtype.numpy, f"{name} {what}: %{value.name} is {a.dtype}, the IR says {value.type}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPS)
def test_samples_match_reference(name, backend):
    runner, info = RUNNERS[backend](), INFOS[name]
    for sample in samples_of(name):
        g, node = build(name, sample.inputs, sample.attrs)
        fn = _compile(g, backend)
        if fn is None:
            continue
        got = _run(runner, fn, sample.inputs)
        want = [np.asarray(w) for w in as_tuple(info.ref(*sample.inputs, **sample.attrs))]
        assert len(got) == len(want), f"{backend} {sample}: number of outputs"
        _check_dtypes(name, sample, node.outputs, got)
        for k, (s, n) in enumerate(zip(got, node.outputs)):
            if all(isinstance(d, int) for d in n.shape):
                assert s.shape == tuple(n.type.concrete_shape()), f"{backend} {sample}: output {k} shape"
            else:  # a size known only once the node has run (decode_image's height and width)
                assert s.ndim == n.rank, f"{backend} {sample}: output {k} rank"
        if info.compare is not None:
            info.compare(got, want, sample)
        else:
            for k, (a, w) in enumerate(zip(got, want)):
                assert_close(a, w, info, f"{name} on {backend}, {sample} output {k}: ")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPS)
def test_sample_graphs_match_interpreter(name, backend):
    runner, checked, refused, refused_by_cupy = RUNNERS[backend](), 0, [], 0
    for build_graph in graph_samples(name):
        s = SampleGraph(name)
        try:
            outs = [o for o in build_graph(s) if o is not None]
        except chunkc.IRError as exc:  # an automatic variant the op refuses (integer input to a float op)
            if not getattr(build_graph, "automatic", False):
                raise
            refused.append(str(exc))
            continue
        s.graph.set_outputs(*outs)
        fn = _compile(s.graph, backend)
        if fn is None:
            refused_by_cupy += 1
            continue
        for sizes in GRAPH_SIZES:
            arrays = s.arrays(sizes)
            ref = chunkc.interpret(s.graph, *arrays)
            got = _run(runner, fn, arrays)
            _check_dtypes(name, sizes, s.graph.outputs, got)
            for value, r, a in zip(s.graph.outputs, ref, got):
                tol = 2e-3 if value.dtype.name == "float16" else 1e-4
                a, r = a.astype(value.dtype.wide), np.asarray(r).astype(value.dtype.wide)  # bf16, f8...: compare wide
                assert a.shape == np.asarray(r).shape, (name, value, a.shape, np.asarray(r).shape)
                np.testing.assert_allclose(a, r, rtol=tol, atol=tol, equal_nan=True,
                                           err_msg=f"{name} on {backend} at {sizes}: %{value.name}")
                checked += 1
    assert checked or refused_by_cupy, f"op {name}: no sample graph built: {refused}"
