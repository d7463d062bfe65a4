"""The layout rules of elementwise kernels (chunkc.ir.layout) against the libraries themselves:
for random shapes, permutations, broadcasts and strided slices, the strides chunkc predicts are
those PyTorch's TensorIterator and NumPy's iterator give."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chunkc
from chunkc.ir.layout import contiguous_strides, numpy_layout, tensoriterator_layout
from chunkc.ir.registry import all_ops

from opdb import all_infos, rng_for

torch = pytest.importorskip("torch")


@st.composite
def operands(draw):
    """An output shape and 1 to 3 float32 arrays that broadcast to it, each permuted, some
    with size-1 or missing axes, some a strided slice."""
    rank = draw(st.integers(1, 4))
    shape = draw(st.lists(st.sampled_from([1, 2, 3, 5]), min_size=rank, max_size=rank))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        s = [1 if draw(st.booleans()) and draw(st.booleans()) else d for d in shape]
        s = s[draw(st.integers(0, rank)):] if draw(st.booleans()) else s
        perm = draw(st.permutations(range(len(s))))
        stride_axis = draw(st.one_of(st.none(), st.integers(0, max(len(s) - 1, 0)))) if s else None
        grown = [d * 2 if k == stride_axis else d for k, d in enumerate(s)]
        base = np.zeros([grown[p] for p in perm], np.float32).transpose(np.argsort(perm))
        a = np.asarray(base[tuple(slice(None, None, 2) if k == stride_axis else slice(None) for k in range(len(s)))])
        arrays.append(a)
    out = tuple(np.broadcast_shapes(*(a.shape for a in arrays)))
    return out, arrays


def _elements(strides, itemsize=4):
    return tuple(s // itemsize for s in strides)


def _same_layout(shape, want, got) -> bool:
    return all(n == 1 or a == b for n, a, b in zip(shape, want, got))  # size-1 axes have no stride to keep


@settings(max_examples=300, deadline=None)
@given(operands())
def test_tensoriterator_rule_matches_pytorch(case):
    shape, arrays = case
    tensors = [torch.from_numpy(a) for a in arrays]
    out = tensors[0].neg() if len(tensors) == 1 else tensors[0] + tensors[1] if len(tensors) == 2 \
        else torch.where(tensors[0] > 0, tensors[1], tensors[2])
    layout = [(tuple(t.shape), tuple(t.stride())) for t in tensors]
    if len(tensors) == 3:
        mask = tensors[0] > 0
        layout[0] = (tuple(mask.shape), tuple(mask.stride()))
    got = tensoriterator_layout(tuple(out.shape), layout)
    assert _same_layout(out.shape, tuple(out.stride()), got), (layout, tuple(out.stride()), got)


@settings(max_examples=300, deadline=None)
@given(operands())
def test_numpy_rule_matches_numpy(case):
    shape, arrays = case
    out = np.negative(arrays[0]) if len(arrays) == 1 else np.add(arrays[0], arrays[1]) if len(arrays) == 2 \
        else np.where(arrays[0] > 0, arrays[1], arrays[2])
    got = numpy_layout(out.shape, [(a.shape, _elements(a.strides)) for a in arrays])
    assert _same_layout(out.shape, _elements(out.strides), got), ([a.strides for a in arrays], out.strides, got)


def test_a_permuted_input_gives_a_permuted_result():
    shape, strides = (4, 3, 2), (1, 8, 4)  # a permute(2, 0, 1) of a contiguous [3, 2, 4]
    assert tensoriterator_layout(shape, [(shape, strides)]) == strides
    assert numpy_layout(shape, [(shape, strides)]) == strides
    # with a contiguous operand of the same shape, TensorIterator follows the first input
    assert tensoriterator_layout(shape, [(shape, strides), (shape, (6, 2, 1))]) == strides
    assert numpy_layout(shape, [(shape, strides), (shape, (6, 2, 1))]) == (6, 2, 1)  # NumPy: C order wins


# -- every op record with keeps_layout: its NumPy reference and PyTorch lowering follow the rule ----


def _strided(base: np.ndarray, kind: str, rng: random.Random) -> np.ndarray:
    """A view of a fresh array with ``base``'s values: C order, permuted, or permuted and sliced."""
    shape = base.shape
    perm = list(range(len(shape)))
    if kind != "c":
        rng.shuffle(perm)
    big = [shape[p] for p in perm]
    if kind == "permuted_sliced":
        big[-1] *= 2
    storage = np.empty(big, base.dtype)
    view = storage[..., : shape[perm[-1]]] if kind == "permuted_sliced" else storage
    view = view.transpose(np.argsort(perm))
    view[...] = base
    return view


def _torch_view(a: np.ndarray) -> torch.Tensor:
    """A tensor with ``a``'s values and exactly its strides."""
    st = _elements(a.strides, a.itemsize)
    span = 1 + sum((d - 1) * abs(s) for d, s in zip(a.shape, st)) if a.size else 1
    t = torch.empty(span, dtype=torch.from_numpy(np.zeros(1, a.dtype)).dtype).as_strided(a.shape, st)
    t.copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return t


LAYOUT_OPS = sorted(name for name, op in all_ops().items() if op.keeps_layout and name in all_infos())
SHAPE = (2, 3, 4, 5)


def _group_norm_apply_inputs(kind: str, partner: str, rng: random.Random) -> tuple[list[np.ndarray], dict]:
    """x in the layout under test; its moments, weight and bias are small whole tensors (the
    output follows x alone: they are not elementwise partners)."""
    from chunkc.ir.ops.norm import _moments_ref
    x = _strided(np.random.default_rng(0).uniform(0.5, 1.5, size=SHAPE).astype(np.float32), kind, rng)
    affine = np.random.default_rng(1).uniform(0.5, 1.5, size=(SHAPE[1],)).astype(np.float32)
    return [x, _moments_ref(np, np.ascontiguousarray(x), num_groups=3), affine, affine + 1], {"num_groups": 3}


ELEMENTWISE_IN_X_ONLY = {"group_norm_apply": _group_norm_apply_inputs}


def _inputs(name: str, kind: str, partner: str, rng: random.Random) -> tuple[list[np.ndarray], dict]:
    if name in ELEMENTWISE_IN_X_ONLY:
        return ELEMENTWISE_IN_X_ONLY[name](kind, partner, rng)
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
        arrays.append(_strided(v, kind if i == 0 else ("permuted" if partner == "permuted" else "c"), rng))
    return arrays, dict(sample.attrs)


@pytest.mark.parametrize("partner", ["c", "broadcast", "permuted"])
@pytest.mark.parametrize("kind", ["permuted", "permuted_sliced"])
@pytest.mark.parametrize("name", LAYOUT_OPS + ["masked_fill"])
def test_op_output_follows_the_backend_rule(name, kind, partner):
    """What the estimator assumes of a fresh output is what each backend's kernel makes:
    ops with ``keeps_layout`` follow the backend's rule, others (masked_fill) are C-ordered."""
    rng = random.Random(name)
    arrays, attrs = _inputs(name, kind, partner, rng)
    g = chunkc.Graph(name)
    values = [g.add_input(f"x{i}", a.dtype, a.shape) for i, a in enumerate(arrays)]
    node = g.add_node(name, values, attrs)
    g.set_outputs(*node.outputs)
    shape = tuple(node.outputs[0].shape)
    layout = [(a.shape, _elements(a.strides, a.itemsize)) for a in arrays[:1 if name in ELEMENTWISE_IN_X_ONLY else None]]
    keeps = node.op.keeps_layout
    out = chunkc.interpret(g, *arrays)[0]
    want = numpy_layout(shape, layout) if keeps else contiguous_strides(shape)
    assert _same_layout(shape, want, _elements(out.strides, out.itemsize)), "numpy reference"
    tout = chunkc.compile(g, backend="torch")(*[_torch_view(a) for a in arrays])
    want = tensoriterator_layout(shape, layout) if keeps else contiguous_strides(shape)
    assert _same_layout(shape, want, tuple(tout.stride())), "torch lowering"
