"""Element types NumPy holds through ml_dtypes (bf16, float8...): every op runs on them widened and
rounds once, on the interpreter and on both backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc.backends import compile as compile_graph
from chunkc.ir import Graph
from chunkc.ir.dtypes import DType
from test_ops import COVERED, INFOS, OPS, rng_for

BF16 = DType.bfloat16.numpy


def _bf16_samples(name):
    """The op's samples whose inputs include f32 arrays, with those arrays rounded to bf16."""
    out = []
    for sample in INFOS[name].samples(rng_for(name)):
        if any(a.dtype == np.float32 for a in sample.inputs):
            out.append((tuple(a.astype(BF16) if a.dtype == np.float32 else a for a in sample.inputs), sample.attrs))
    return out


# ops whose reference takes such values as they are (bits, another runtime) are tested on their own
CANDIDATES = [n for n in COVERED if INFOS[n].raises is None and not OPS[n].exact_dtypes and _bf16_samples(n)]


def _build(name, inputs, attrs):
    g = Graph(name)
    node = g.add_node(name, [g.add_input(f"x{i}", a.dtype, a.shape) for i, a in enumerate(inputs)], attrs)
    g.set_outputs(*node.outputs)
    return g


@pytest.mark.parametrize("name", CANDIDATES)
def test_an_op_on_bf16_values_is_its_f32_result_rounded_once(name):
    ran = 0
    for inputs, attrs in _bf16_samples(name):
        try:
            g = _build(name, inputs, attrs)
        except chunkc.IRError:  # an op that takes only f32/f64 (it says so) is not this test's business
            continue
        wide = [a.astype(np.float32) if a.dtype == BF16 else a for a in inputs]
        want = chunkc.interpret(_build(name, wide, attrs), *wide)
        got = chunkc.interpret(g, *inputs)
        for out, w, v in zip(got, want, g.outputs):
            assert out.dtype == v.dtype.numpy
            expected = np.asarray(w).astype(v.dtype.numpy)  # the f32 result rounded to the op's output dtype
            np.testing.assert_array_equal(out.astype(np.float64), expected.astype(np.float64), err_msg=name)
        ran += 1
    assert ran, f"{name}: no sample built with bf16 inputs"


def test_torch_runs_bf16_and_matches_the_numpy_backend():
    g = Graph("bf")
    x = g.add_input("x", "bf16", ("L", 64))
    w = g.add_constant("w", (np.random.default_rng(0).standard_normal((64, 64)) / 8).astype(BF16))
    h = g.op("softmax", g.op("matmul", g.op("gelu", x), w), axis=-1)
    g.set_outputs(g.op("layer_norm", h, num_axes=1))
    a = np.random.default_rng(1).standard_normal((9, 64)).astype(BF16)
    numpy_out = compile_graph(g, backend="numpy")(a)
    t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    torch_out = compile_graph(g, backend="torch")(t)
    assert torch_out.dtype == torch.bfloat16 and numpy_out.dtype == BF16
    np.testing.assert_allclose(torch_out.float().numpy(), numpy_out.astype(np.float32), rtol=0.05, atol=0.05)
