"""The copies PyTorch's composite contractions make of their operands (every device).

``torch.matmul`` and ``torch.einsum`` run ``bmm`` on 3-d views of their operands; where an
operand cannot be viewed that way it is copied first:

* ``matmul`` broadcasts the batch axes and flattens them: an operand whose batch axes mix
  broadcast ones (size 1 where the other's is larger) with real ones cannot be flattened
  without a copy (a stride-0 axis does not merge with a real one);
* ``einsum`` permutes each operand to (batch, kept, contracted) order and flattens each
  group; a group whose axes are not adjacent in memory in that order is copied, and so is
  a partial result that the next contraction reads across its layout.

Both follow ATen's code (``_matmul_impl`` and ``sumproduct_pair`` in
aten/src/ATen/native/Linear.cpp, LinearAlgebra.cpp).  ``matmul_copies`` and ``einsum_peak``
take contiguous operands (``einsum_peak`` also takes their strides); ``matmul_layout_copies``
adds what ``matmul`` copies of an operand whose axes do not flatten in its own layout
(attention's heads permuted from ``[B, L, H, D]``: k^T, or a chunk of query rows, is copied
whole).
"""

from __future__ import annotations

from ..sizes import Size, normalize, product
from ..types import TensorType


def matmul_copies(a: TensorType, b: TensorType, item: int) -> Size:
    """Bytes of the operands ``torch.matmul`` copies to flatten their broadcast batch axes."""
    if a.rank < 2 or b.rank < 2 or (a.rank >= 3 and b.rank <= 2):
        return 0  # vectors, mm, or a left operand folded into a matrix
    a_batch, b_batch = a.shape[:-2], b.shape[:-2]
    n = max(len(a_batch), len(b_batch))
    a_batch = (1,) * (n - len(a_batch)) + tuple(a_batch)
    b_batch = (1,) * (n - len(b_batch)) + tuple(b_batch)
    if not all(isinstance(s, int) for s in a_batch + b_batch):
        return 0
    batch = tuple(max(x, y) for x, y in zip(a_batch, b_batch))
    total = 0
    for own, matrix in ((a_batch, a.shape[-2:]), (b_batch, b.shape[-2:])):
        kinds = {own[j] == 1 for j in range(n) if batch[j] > 1}
        if kinds == {True, False}:  # broadcast and real batch axes: expanded, then copied
            total = total + product(batch) * product(matrix) * item
    return normalize(total)


def _flattens(shape, strides) -> bool:
    """Whether the axes ``shape`` (with ``strides``) merge into one without a copy (size-1
    axes ignored; broadcast ones have stride 0 and merge with each other only)."""
    real = [(s, st) for s, st in zip(shape, strides) if s != 1]
    return all(st == s1 * st1 for (_, st), (s1, st1) in zip(real, real[1:]))


def matmul_layout_copies(a: TensorType, b: TensorType, a_strides, b_strides, item: int) -> Size:
    """Bytes ``torch.matmul`` copies of operands whose layout (strides in elements) does not
    let it view them as it needs: a rank >= 3 left operand times a matrix is folded into rows
    (``a.reshape(-1, k)``); two batched operands are expanded to the common batch and flattened
    to ``[batch, rows, cols]``.  An operand whose real batch axes do not merge is copied whole
    (the broadcast mixes ``matmul_copies`` counts are left to it)."""
    shapes = tuple(a.shape) + tuple(b.shape)
    if a.rank < 2 or b.rank < 2 or not all(isinstance(s, int) for s in shapes) or not a_strides or not b_strides:
        return 0
    if a.rank >= 3 and b.rank == 2:
        if a.rank == 3 and a_strides[-1] != 1 and a_strides[0] == a.shape[1] * a.shape[2]:
            return 0  # ATen runs bmm on the transposed matrices instead of folding
        return 0 if _flattens(a.shape[:-1], a_strides[:-1]) else normalize(a.numel() * item)
    if a.rank < 3 or b.rank < 3:
        return 0  # a matrix times a batch: folded through transposes (not counted)
    n = max(a.rank, b.rank) - 2
    a_batch = (1,) * (n - a.rank + 2) + tuple(a.shape[:-2])
    b_batch = (1,) * (n - b.rank + 2) + tuple(b.shape[:-2])
    batch = tuple(max(x, y) for x, y in zip(a_batch, b_batch))
    total = 0
    for t, own, strides in ((a, a_batch, a_strides), (b, b_batch, b_strides)):
        real = [j for j in range(n) if batch[j] > 1]
        if {own[j] == 1 for j in real} == {True, False}:
            continue  # expanded and copied anyway (matmul_copies)
        own_strides = (0,) * (n - t.rank + 2) + tuple(strides[:-2])
        if not _flattens([batch[j] for j in real], [own_strides[j] if own[j] > 1 else 0 for j in real]):
            total += product(batch) * product(t.shape[-2:]) * item
    return normalize(total)


class _View:
    """An operand as einsum sees it: for each letter of the common order, a size and a stride
    (a letter it lacks: size 1); ``owned`` bytes it holds (0: a view of an input)."""

    def __init__(self, sizes: list[int], strides: list[int], owned: int = 0):
        self.sizes, self.strides, self.owned = sizes, strides, owned

    @classmethod
    def contiguous(cls, sizes: list[int], order: list[int], owned: int) -> "_View":
        """A fresh tensor holding the axes ``order`` (indices into ``sizes``) contiguously."""
        strides = [0] * len(sizes)
        step = 1
        for d in reversed(order):
            strides[d] = step
            step *= sizes[d]
        return cls(list(sizes), strides, owned)

    def merged(self, group: list[int]) -> tuple[int, int]:
        """(size, stride) of a group of axes flattened into one (it must flatten)."""
        real = [d for d in group if self.sizes[d] != 1]
        return (product([self.sizes[d] for d in real]), self.strides[real[-1]]) if real else (1, 1)

    def flattens(self, groups: list[list[int]]) -> bool:
        """Whether each group of axes (in that order) merges into one axis without a copy."""
        for group in groups:
            real = [d for d in group if self.sizes[d] != 1]
            for d, e in zip(real, real[1:]):
                if self.strides[d] != self.sizes[e] * self.strides[e]:
                    return False
        return True


def _matrix_ok(rows: tuple[int, int], cols: tuple[int, int]) -> bool:
    """BLAS takes a matrix (size, stride per axis) that is row- or column-major; else
    ``bmm`` copies it (ATen's addmm/baddbmm checks)."""
    (r, sr), (c, sc) = rows, cols
    return (sc == 1 or c == 1) and sr >= max(1, c) or (sr == 1 or r == 1) and sc >= max(1, r)


def einsum_peak(terms: list[str], out: str, ins: list[TensorType], item: int, device: str = "cpu",
                strides: list | None = None) -> Size:
    """The most bytes ``torch.einsum`` holds besides its inputs, its output included (the
    last product); 0 for one operand or an equation with a repeated letter (diagonals).
    A batch of matrices that is neither row- nor column-major is copied by ``bmm``: one
    matrix at a time on the CPU, the whole batch on CUDA.  ``strides``: the operands' (in
    elements; None: contiguous) -- a permuted view whose groups do not merge is copied."""
    if len(ins) < 2 or any(len(set(t)) != len(t) for t in terms):
        return 0
    if not all(isinstance(s, int) for t in ins for s in t.shape):
        return 0
    size_of: dict[str, int] = {}
    for term, t in zip(terms, ins):
        for letter, s in zip(term, t.shape):
            size_of[letter] = max(size_of.get(letter, 1), int(s))
    contracted = [c for term in terms for c in term if c not in out]
    letters = list(out) + list(dict.fromkeys(contracted))
    last_use = {c: max(i for i, term in enumerate(terms) if c in term) for c in letters}
    ops = []
    for i, (term, t) in enumerate(zip(terms, ins)):
        sizes = [int(t.shape[term.index(c)]) if c in term else 1 for c in letters]
        own = [0] * len(letters)
        step = 1
        for c in reversed(term):
            own[letters.index(c)] = step if strides is None else int(strides[i][term.index(c)])
            step *= int(t.shape[term.index(c)])
        ops.append(_View(sizes, own))
    live = peak = 0

    def take(n: int) -> None:
        nonlocal live, peak
        live += n
        peak = max(peak, live)

    def reduce(view: _View, dims: list[int]) -> _View:
        """``view.sum(dims, keepdim)``: a fresh tensor (the old one freed if it was one)."""
        sizes = [1 if d in dims else s for d, s in enumerate(view.sizes)]
        fresh = _View.contiguous(sizes, list(range(len(sizes))), product(sizes) * item)
        take(fresh.owned)
        take(-view.owned)
        return fresh

    first = [d for d, c in enumerate(letters) if c not in out and last_use[c] == 0 and ops[0].sizes[d] != 1]
    result = reduce(ops[0], first) if first else ops[0]
    for i in range(1, len(ops)):
        right = ops[i]
        ending = [d for d, c in enumerate(letters) if c not in out and last_use[c] == i]
        right_only = [d for d in ending if result.sizes[d] == 1 and right.sizes[d] != 1]
        left_only = [d for d in ending if right.sizes[d] == 1 and result.sizes[d] != 1]
        if right_only:
            right = reduce(right, right_only)
        if left_only:
            result = reduce(result, left_only)
        summed = [d for d in ending if result.sizes[d] != 1 and right.sizes[d] != 1]
        if summed:
            result = _product(result, right, summed, item, take, device)
        else:  # a broadcast product
            sizes = [max(a, b) for a, b in zip(result.sizes, right.sizes)]
            fresh = _View.contiguous(sizes, list(range(len(sizes))), product(sizes) * item)
            take(fresh.owned)
            take(-result.owned - right.owned)
            result = fresh
    return peak


def _product(left: _View, right: _View, summed: list[int], item: int, take, device: str) -> _View:
    """``sumproduct_pair``: permute, flatten (copying what does not flatten), bmm."""
    dims = range(len(left.sizes))
    lro = [d for d in dims if d not in summed and left.sizes[d] != 1 and right.sizes[d] != 1]
    lo = [d for d in dims if d not in summed and left.sizes[d] != 1 and right.sizes[d] == 1]
    ro = [d for d in dims if d not in summed and left.sizes[d] == 1 and right.sizes[d] != 1]
    both = summed
    copies = 0
    batch = product([left.sizes[d] for d in lro])
    for view, rows, cols in ((left, lo, both), (right, both, ro)):
        if not view.flattens([lro, rows, cols]):
            copies += product([view.sizes[d] for d in lro + rows + cols]) * item  # contiguous now
        else:
            (r, sr), (c, sc) = view.merged(rows), view.merged(cols)
            if not _matrix_ok((r, sr), (c, sc)):
                copies += r * c * item * (batch if device == "cuda" else 1)
    sizes = [1 if d in summed else max(left.sizes[d], right.sizes[d]) for d in dims]
    result = _View.contiguous(sizes, lro + lo + ro, product(sizes) * item)
    take(copies + result.owned)
    take(-copies - left.owned - right.owned)  # the copies and the operands' own results go
    return result


__all__ = ["matmul_copies", "matmul_layout_copies", "einsum_peak"]
