"""Output layouts of elementwise kernels: the strides a fresh result gets from its inputs.

Most kernels write a fresh, C-contiguous result.  Elementwise kernels do not: PyTorch's
TensorIterator and NumPy's iterator (``order='K'``) lay the result out in the order of
the inputs' strides, so that ``exp(x.permute(2, 0, 1))`` is itself a permuted tensor and
a ``contiguous()`` after it really copies.  An op record says that its results follow
this rule (``OpDef.keeps_layout``); a backend record says whose rule applies
(``Backend.layout``).  The memory estimator asks both.

A rule is ``rule(shape, operands) -> strides``: the result's shape and, per input in
order, its ``(shape, strides)`` (broadcast to ``shape`` by NumPy's rules); strides are in
elements, the result is dense.  Every size here is a concrete int.
"""

from __future__ import annotations

from typing import Callable, Sequence

Strides = tuple[int, ...]
Operand = tuple[Sequence[int], Sequence[int]]  # (shape, strides) of one input
LayoutRule = Callable[[Sequence[int], Sequence[Operand]], Strides]


def contiguous_strides(shape: Sequence[int]) -> Strides:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return tuple(reversed(out))


def _dense_in_order(shape: Sequence[int], order: Sequence[int]) -> Strides:
    """Dense strides with ``order[0]`` the fastest-moving axis."""
    strides = [0] * len(shape)
    acc = 1
    for d in order:
        strides[d] = acc
        acc *= shape[d]
    return tuple(strides)


def _aligned(shape: Sequence[int], operand: Operand, zero_size_one: bool) -> list[int]:
    """The operand's strides on the result's axes: 0 where it is broadcast (a missing leading
    axis, or size 1 against a larger size; NumPy also zeroes every size-1 axis)."""
    oshape, ostrides = operand
    off = len(shape) - len(oshape)
    row = [0] * off
    for i, (s, st) in enumerate(zip(oshape, ostrides)):
        broadcast = s == 1 and (zero_size_one or shape[off + i] != 1)
        row.append(0 if broadcast else int(st))
    return row


def _torch_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    expected = 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if s != 1 and st != expected:
            return False
        expected *= s
    return True


def _torch_dense(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """``Tensor.is_non_overlapping_and_dense``: a permutation of a contiguous layout."""
    order = sorted((d for d in range(len(shape)) if shape[d] > 1), key=lambda d: strides[d])
    expected = 1
    for d in order:
        if strides[d] != expected:
            return False
        expected *= shape[d]
    return True


def non_overlapping(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether every index of an array of ``shape`` with ``strides`` (in elements) addresses its
    own element: no broadcast (a stride 0 on an axis longer than 1), no axes that interleave.
    Sufficient, as ``Tensor.is_non_overlapping_and_dense`` without the density: sorted by
    stride, each axis must step past the whole span of the ones before it."""
    order = sorted((d for d in range(len(shape)) if shape[d] > 1), key=lambda d: abs(strides[d]))
    span = 1
    for d in order:
        if abs(strides[d]) < span:
            return False
        span += abs(strides[d]) * (shape[d] - 1)
    return True


def split_view_result(result, n_out: int) -> list[tuple[int, ...] | None]:
    """Per output, its strides when it aliases input 0.  ``view_strides`` returns one
    strides tuple (shared by every output: split keeps the input's strides), or,
    for a multi-output op, one entry per output (None for an output that copies)."""
    if result is None:
        return [None] * n_out
    if n_out == 1 or all(not isinstance(r, (tuple, list)) and r is not None for r in result):
        return [tuple(int(s) for s in result)] * n_out
    return [None if r is None else tuple(int(s) for s in r) for r in result]


def torch_is_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """``Tensor.is_contiguous()``: C order, size-1 axes ignored."""
    return _torch_contiguous(shape, strides)


def torch_is_channels_last(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """``Tensor.is_contiguous(memory_format=torch.channels_last)`` (rank 4) or
    ``channels_last_3d`` (rank 5): dense with the channels (axis 1) fastest, then the spatial
    axes from the last, then the batch; size-1 axes ignored.  False at other ranks."""
    if len(shape) not in (4, 5):
        return False
    expected = 1
    for d in (1, *range(len(shape) - 1, 1, -1), 0):
        if shape[d] != 1 and strides[d] != expected:
            return False
        expected *= shape[d]
    return True


def torch_suggests_channels_last(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether ``Tensor.suggest_memory_format()`` is channels-last for a rank-4 tensor: its
    strides *order* the axes as channels-last does (channels fastest, then width, height,
    batch), dense or not (a slice of rows of a channels-last tensor too).  Ambiguous orders
    (size-1 axes with equal strides) count as contiguous, as ATen's
    ``is_channels_last_strides_2d`` does.  False at other ranks."""
    if len(shape) != 4 or strides[1] == 0:
        return False
    bound = 0
    for d in (1, 3, 2, 0):
        if shape[d] == 0 or strides[d] < bound:
            return False
        if d == 0 and bound == strides[1]:
            return False  # [N, 1, 1, 1] or a slice of [N, 1, 1, W]: contiguous by default
        bound = strides[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def tensoriterator_layout(shape: Sequence[int], operands: Sequence[Operand]) -> Strides:
    """PyTorch's rule (TensorIterator, for an output it allocates).

    Inputs of the result's shape that are all contiguous give a contiguous result; all
    non-overlapping and dense with the same strides, those strides.  Otherwise the axes
    are sorted by the inputs' strides, fastest first: for each pair of axes the first input
    with a nonzero stride on both decides (a smaller stride moves first; equal strides put
    the smaller size first), broadcast axes abstain, and undecided pairs keep C order.
    """
    n = len(shape)
    if n == 0:
        return ()
    if operands and all(tuple(s) == tuple(shape) for s, _ in operands):
        if all(_torch_contiguous(s, st) for s, st in operands):
            return contiguous_strides(shape)
        first = tuple(int(x) for x in operands[0][1])
        if all(_torch_dense(s, st) and tuple(st) == first for s, st in operands):
            return first
    rows = [_aligned(shape, op, zero_size_one=False) for op in operands]

    def should_swap(d0: int, d1: int) -> int:
        for row in rows:
            s0, s1 = row[d0], row[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(n - 1, -1, -1))  # fastest first: C order to begin with
    for i in range(1, n):  # insertion sort that tolerates undecided pairs
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    return _dense_in_order(shape, perm)


def numpy_layout(shape: Sequence[int], operands: Sequence[Operand]) -> Strides:
    """NumPy's rule (the iterator's ``order='K'``, which ufuncs, ``where`` and ``astype`` use).

    Axes are sorted by the inputs' absolute strides, fastest first; an axis moves ahead of
    another only when every input with nonzero strides on both agrees (on a conflict C
    order wins); broadcast and size-1 axes abstain.
    """
    n = len(shape)
    if n == 0:
        return ()
    rows = [_aligned(shape, op, zero_size_one=True) for op in operands]
    perm = list(range(n - 1, -1, -1))
    for i0 in range(1, n):
        j0 = perm[i0]
        pos = i0
        for i1 in range(i0 - 1, -1, -1):
            j1 = perm[i1]
            decided, swap = False, False
            for row in rows:
                if row[j0] and row[j1]:
                    if abs(row[j1]) <= abs(row[j0]):
                        swap = False
                    elif not decided:
                        swap = True
                    decided = True
            if decided:
                if not swap:
                    break
                pos = i1
        if pos != i0:
            perm[pos + 1: i0 + 1] = perm[pos: i0]
            perm[pos] = j0
    return _dense_in_order(shape, perm)


def contiguous_layout(shape: Sequence[int], operands: Sequence[Operand]) -> Strides:
    """A backend whose kernels always write C-contiguous results."""
    return contiguous_strides(shape)




def empty_strided(xp, shape: Sequence[int], strides: Sequence[int], dtype):
    """A fresh dense array of ``shape`` whose axes are ordered like ``strides`` (outermost
    first, C order on ties): how a reference kernel allocates the result a layout rule gives."""
    order = sorted(range(len(shape)), key=lambda a: (-abs(strides[a]), a))
    base = xp.empty([shape[a] for a in order], dtype=dtype)
    inverse = [0] * len(order)
    for k, a in enumerate(order):
        inverse[a] = k
    return base.transpose(inverse)


__all__ = ["LayoutRule", "contiguous_layout", "contiguous_strides", "empty_strided", "non_overlapping", "numpy_layout",
           "split_view_result", "tensoriterator_layout"]
