"""The layout rules of elementwise kernels (chunkc.ir.layout) against the libraries themselves:
for random shapes, permutations, broadcasts and strided slices, the strides chunkc predicts are
those PyTorch's TensorIterator and NumPy's iterator give."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkc.ir.layout import numpy_layout, tensoriterator_layout

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
