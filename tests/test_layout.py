"""Elementwise outputs are laid out like their operands, as chunkc.ir.layout says.

NumPy's ufuncs and PyTorch's TensorIterator order a fresh output's axes like the operands'
strides (ties broken differently); the memory estimator uses chunkc.ir.layout's model of
both to tell a view from a copy downstream.  The model is checked against the libraries on
random layouts, and every op whose record has a ``layout`` policy -- its NumPy reference and
its PyTorch lowering -- against the model.  Output axes of one element are left out: their
stride never decides whether a reshape is a view, and PyTorch's choice there depends on
strides of operand axes of one element that nothing else constrains.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import chunkc
from chunkc.ir.layout import aligned, fresh_strides, output_strides
from chunkc.ir.registry import all_ops

from opdb import all_infos, rng_for


def _strided(base: np.ndarray, kind: str, rng: random.Random) -> np.ndarray:
    """A view of a fresh array with ``base``'s shape: C order, permuted, sliced or both."""
    shape = base.shape
    perm = list(range(len(shape)))
    if kind in ("permuted", "permuted_sliced"):
        rng.shuffle(perm)
    big = [shape[p] for p in perm]
    if kind in ("sliced", "permuted_sliced"):
        big[-1] *= 2
    storage = np.empty(big, base.dtype)
    view = storage[..., : shape[perm[-1]]] if kind in ("sliced", "permuted_sliced") else storage
    view = view.transpose(np.argsort(perm))
    view[...] = base
    return view


def _elements(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def _torch_view(a: np.ndarray) -> torch.Tensor:
    """A tensor with ``a``'s values and exactly its strides."""
    st = _elements(a)
    span = 1 + sum((d - 1) * abs(s) for d, s in zip(a.shape, st)) if a.size else 1
    t = torch.empty(span, dtype=torch.from_numpy(np.zeros(1, a.dtype)).dtype).as_strided(a.shape, st)
    t.copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return t


@pytest.mark.parametrize("seed", range(4))
def test_the_model_matches_numpy_and_torch_on_random_layouts(seed):
    rng = random.Random(seed)
    for _ in range(250):
        shape = tuple(rng.choice([2, 3, 5]) for _ in range(rng.randint(2, 4)))  # axes of one element: see below
        operands = []
        for k in range(rng.randint(1, 2)):
            s = shape if k == 0 else tuple(d if rng.random() < 0.6 else 1 for d in shape)[rng.randint(0, len(shape) - 1):]
            operands.append(_strided(np.random.rand(*s).astype(np.float32), rng.choice(
                ["c", "permuted", "sliced", "permuted_sliced"]), rng))
        strides = [aligned(a.shape, _elements(a), shape) for a in operands]
        got = np.negative(operands[0]) if len(operands) == 1 else np.add(*operands)
        assert _elements(got) == output_strides(shape, strides, "numpy"), (shape, strides)
        t = [_torch_view(a) for a in operands]
        tg = torch.neg(t[0]) if len(t) == 1 else torch.add(*t)
        assert tuple(tg.stride()) == output_strides(shape, strides, "torch"), (shape, strides)


# masked_fill: C order on both (PyTorch's out-of-place masked_fill makes a contiguous copy)
LAYOUT_OPS = sorted(name for name, op in all_ops().items() if op.layout and name in all_infos()) + ["masked_fill"]
SHAPE = (2, 3, 4, 5)


def _inputs(name: str, kind: str, partner: str, rng: random.Random) -> tuple[list[np.ndarray], dict]:
    sample = all_infos()[name].samples(rng_for(name))[0]
    arrays = []
    for i, a in enumerate(sample.inputs):
        shape = SHAPE if i == 0 or name == "where" and i == 1 else ((5,) if partner == "broadcast" else SHAPE)
        if a.dtype == np.bool_:
            v = np.random.default_rng(i).random(shape) < 0.5
        elif a.dtype.kind in "iu":
            v = np.random.default_rng(i).integers(1, 4, size=shape).astype(a.dtype)
        else:
            v = np.random.default_rng(i).uniform(0.5, 1.5, size=shape).astype(a.dtype)
        arrays.append(_strided(v, kind if i == 0 else ("c" if partner != "permuted" else "permuted"), rng))
    return arrays, dict(sample.attrs)


@pytest.mark.parametrize("partner", ["c", "broadcast", "permuted"])
@pytest.mark.parametrize("kind", ["permuted", "permuted_sliced"])
@pytest.mark.parametrize("name", LAYOUT_OPS)
def test_op_output_follows_the_model(name, kind, partner):
    rng = random.Random(name)
    arrays, attrs = _inputs(name, kind, partner, rng)
    g = chunkc.Graph(name)
    values = [g.add_input(f"x{i}", a.dtype, a.shape) for i, a in enumerate(arrays)]
    node = g.add_node(name, values, attrs)
    g.set_outputs(*node.outputs)
    shape = tuple(node.outputs[0].shape)
    shapes, strides = [a.shape for a in arrays], [_elements(a) for a in arrays]
    out = chunkc.interpret(g, *arrays)[0]
    assert _elements(out) == fresh_strides(node.op.layout, shape, shapes, strides, "numpy"), "numpy reference"
    fn = chunkc.compile(g, backend="torch")
    tout = fn(*[_torch_view(a) for a in arrays])
    assert tuple(tout.stride()) == fresh_strides(node.op.layout, shape, shapes, strides, "torch"), "torch lowering"
