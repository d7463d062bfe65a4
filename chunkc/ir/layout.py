"""The memory layout of an elementwise op's fresh output, as NumPy and PyTorch choose it.

Neither library makes the output of an elementwise op C-contiguous when its operands are
not: NumPy's ufuncs (``order='K'``) and PyTorch's TensorIterator both order the output's
axes like the operands' strides.  ``exp(permute(x))`` is then laid out like the permuted
``x``, and a later ``reshape`` of it copies where the C-ordered output would have been a
view -- so the memory estimator must know.  The two libraries break ties differently:

* PyTorch: axes are insertion-sorted (innermost first) by the first operand whose strides
  on the two axes differ, skipping operands broadcast on either (stride 0); equal strides
  put the smaller axis inside.  The output comes first among the operands only when it is
  given, so here the inputs decide, in argument order.  Two fast paths come first: if every
  operand is C-contiguous (size-1 axes aside) so is the output; if every operand has the
  same strides and they are non-overlapping and dense, the output takes them as they are.
* NumPy: the same insertion sort, but every operand not broadcast on either axis votes,
  and on a conflict C order wins (the axes stay as they are).

``output_strides(out_shape, operand_strides, backend)`` gives the output's strides (in
elements, C order over the chosen axis order).  ``operand_strides`` are the inputs'
strides aligned to the output's axes, 0 on axes an input is broadcast on.

``fresh_strides(policy, ...)`` answers for an op record's ``layout`` policy (None: C
order); ``empty_strided(xp, shape, strides, dtype)`` allocates an array laid out so.
"""

from __future__ import annotations

from typing import Sequence

Strides = tuple[int, ...]


def contiguous(shape: Sequence[int]) -> Strides:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= max(int(s), 1)
    return tuple(reversed(out))


def aligned(in_shape: Sequence[int], in_strides: Sequence[int], out_shape: Sequence[int]) -> Strides:
    """An input's strides against the output's axes: 0 where it is broadcast."""
    lead = len(out_shape) - len(in_shape)
    out = [0] * lead
    for s, st, o in zip(in_shape, in_strides, out_shape[lead:]):
        out.append(0 if s == 1 and o != 1 else st)
    return tuple(out)


def output_strides(out_shape: Sequence[int], operands: Sequence[Sequence[int]], backend: str) -> Strides:
    """Strides of the fresh output of an elementwise op on operands with these (aligned)
    strides, on ``backend`` ("torch", or a NumPy-like array module's name)."""
    ndim = len(out_shape)
    if ndim < 2 or not operands:
        return contiguous(out_shape)
    if backend == "torch":
        if all(_contiguous_view(out_shape, o) for o in operands):
            return contiguous(out_shape)  # TensorIterator's first fast path
        first = tuple(operands[0])
        if all(tuple(o) == first for o in operands) and _dense(out_shape, first):
            return first  # its second: the common non-overlapping, dense layout as it is
        perm = _sorted_axes(out_shape, operands, _torch_should_swap)
    else:  # NumPy's iterator gives every axis of one element stride 0: those never vote
        ones = [int(s) == 1 for s in out_shape]
        operands = [tuple(0 if one else st for one, st in zip(ones, o)) for o in operands]
        perm = _sorted_axes(out_shape, operands, _numpy_should_swap)
    strides = [0] * ndim
    acc = 1
    for axis in perm:  # innermost first
        strides[axis] = acc
        acc *= max(int(out_shape[axis]), 1)
    return tuple(strides)


def fresh_strides(policy: str | None, out_shape: Sequence[int], in_shapes: Sequence[Sequence[int]],
                  in_strides: Sequence[Sequence[int]], backend: str) -> Strides:
    """Strides of a fresh output 0 under an op record's ``layout`` policy (see OpDef)."""
    if policy == "elementwise":
        return output_strides(out_shape, [aligned(s, st, out_shape) for s, st in zip(in_shapes, in_strides)],
                              backend)
    return contiguous(out_shape)


def empty_strided(xp, shape: Sequence[int], strides: Sequence[int], dtype):
    """A fresh array of ``shape`` whose axes are ordered like ``strides`` (dense)."""
    order = sorted(range(len(shape)), key=lambda a: (-abs(strides[a]), a))  # outermost first, C order on ties
    base = xp.empty([shape[a] for a in order], dtype=dtype)
    inverse = [0] * len(order)
    for k, a in enumerate(order):
        inverse[a] = k
    return base.transpose(inverse)


def _sorted_axes(shape, operands, should_swap) -> list[int]:
    perm = list(range(len(shape)))[::-1]  # innermost first: C order
    for i in range(1, len(perm)):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(shape, operands, perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    return perm


def _torch_should_swap(shape, operands, a0: int, a1: int) -> int:
    """1: axis a0 goes outside a1; -1: it stays inside; 0: no operand says."""
    for st in operands:
        s0, s1 = abs(st[a0]), abs(st[a1])
        if s0 == 0 or s1 == 0:
            continue
        if s0 < s1:
            return -1
        if s0 > s1:
            return 1
        if shape[a0] > shape[a1]:
            return 1
    return 0


def _numpy_should_swap(shape, operands, a0: int, a1: int) -> int:
    ambiguous, swap = True, False
    for st in operands:
        s0, s1 = abs(st[a0]), abs(st[a1])
        if s0 != 0 and s1 != 0:
            if s0 <= s1:  # on a conflict, C order wins
                swap = False
            elif ambiguous:
                swap = True
            ambiguous = False
    if ambiguous:
        return 0
    return 1 if swap else -1


def _contiguous_view(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """C-contiguous, size-1 axes aside (PyTorch's is_contiguous)."""
    expected = 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if int(s) != 1:
            if st != expected:
                return False
            expected *= int(s)
    return True


def _dense(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Non-overlapping and dense: some order of the axes is contiguous."""
    dims = sorted((abs(st), int(s)) for s, st in zip(shape, strides) if int(s) != 1)
    expected = 1
    for st, s in dims:
        if st != expected:
            return False
        expected *= s
    return True


__all__ = ["output_strides", "fresh_strides", "empty_strided", "aligned", "contiguous"]
