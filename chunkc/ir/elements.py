"""Element formulas: what one element of a value is, as an expression of its index.

A value of rank r has the formula ``f(i0, ..., i{r-1})`` (sympy, in the index symbols of
:func:`index`, which are non-negative integers) when its elements are known exactly as a
function of their position and the graph's size symbols: ``arange(0, L)`` is ``i0``, the
causal mask ``k <= q`` built from it is ``i1 <= i0``, ``x[:, None].expand(..)`` is
``x(i0, i2)``.  A value with no such formula (a float computed by arithmetic, a graph
input, a weight) appears in others' formulas as an opaque *leaf*: an undefined function
applied to its index, ``v17(i0, i1)``, so that pure data movement (expand, reshape,
slices) is still described exactly.

An op record's ``elements`` rule gives output 0's formula from its inputs' formulas
(already re-expressed in the output's indices where the rule says so); it returns None when
the result is not exact (float arithmetic rounds; integer rules assume no int64 overflow).
Rewrites use the formulas to recognise what a subgraph computes — a causal mask, a
repeat of key/value heads — and :func:`prove_equal` to check it for every index and size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import sympy

from .dtypes import DType
from .sizes import Size

if TYPE_CHECKING:
    from .graph import Graph, Value
    from .types import TensorType

Formula = sympy.Basic
# (input formulas, attributes, input types, output types) -> output 0's formula, or None
ElementsFn = Callable[[Sequence[Formula], Mapping, Sequence["TensorType"], Sequence["TensorType"]], Formula | None]

MAX_OPS = 400  # a formula larger than this becomes a leaf (keeps analyses fast)
EXACT_INTS = (DType.int64, DType.bool)  # integer dtypes whose arithmetic is taken as exact


@lru_cache(maxsize=None)
def index(k: int) -> sympy.Symbol:
    """The index symbol of axis ``k`` (a non-negative integer)."""
    return sympy.Symbol(f"idx_{k}", integer=True, nonnegative=True)


def indices(rank: int) -> tuple[sympy.Symbol, ...]:
    return tuple(index(k) for k in range(rank))


def at(f: Formula, position: Sequence[Formula]) -> Formula:
    """``f`` with index symbol k replaced by ``position[k]`` (simultaneously)."""
    return f.xreplace({index(k): p for k, p in enumerate(position)}) if position else f


def broadcast_to(f: Formula, t: "TensorType", out: "TensorType") -> Formula:
    """Formula ``f`` of a value of type ``t``, read at the index of a broadcast result ``out``."""
    lead = out.rank - t.rank
    position = [sympy.Integer(0) if _is_one(s) and not _is_one(out.shape[lead + k]) else index(lead + k)
                for k, s in enumerate(t.shape)]
    return at(f, position)


def _is_one(s: Size) -> bool:
    return isinstance(s, int) and s == 1


def constant(value, t: "TensorType") -> Formula | None:
    """The formula of a constant ``value`` of type ``t``: itself for bools and exact integers,
    0 for a floating zero (exact in every float dtype; a float zero added to a value leaves it
    as it is, which is what rewrites ask), None for other floats (rounded to the dtype)."""
    if exact(t):
        if isinstance(value, float):
            return None
        return sympy.true if value is True else sympy.false if value is False else sympy.Integer(value)
    return sympy.Integer(0) if isinstance(value, (int, float)) and value == 0 else None


def exact(t: "TensorType") -> bool:
    """Whether arithmetic in ``t``'s dtype is taken as exact (int64 and bool)."""
    return t.dtype in EXACT_INTS


def as_int(f: Formula, t: "TensorType") -> Formula:
    """The formula of a value of type ``t`` as an integer (a bool is 1 or 0)."""
    if t.dtype == DType.bool:
        return sympy.Piecewise((sympy.Integer(1), f), (sympy.Integer(0), True))
    return f


def as_bool(f: Formula, t: "TensorType") -> Formula:
    """The formula of a value of type ``t`` as a truth value (a number is true unless 0)."""
    return f if t.dtype == DType.bool else sympy.Ne(f, 0)


def pointwise(fn: Callable[..., Formula], kind: str = "int") -> ElementsFn:
    """An elementwise op's rule: ``fn`` of its inputs, broadcast and read as integers
    (``kind="int"``; only for an exact result dtype: float arithmetic rounds) or as truth
    values (``kind="bool"``)."""
    def rule(fs, attrs, ins, outs):
        if kind == "int" and not (exact(outs[0]) and all(exact(t) for t in ins)):
            return None
        if kind == "bool" and not all(exact(t) for t in ins):
            return None
        convert = as_int if kind == "int" else as_bool
        return fn(*(convert(broadcast_to(f, t, outs[0]), t) for f, t in zip(fs, ins)))
    return rule


def comparison(fn: Callable[[Formula, Formula], Formula]) -> ElementsFn:
    """A comparison's rule, on integers (floats: only when both sides are data movement of
    the same kind, which compares exactly; float arithmetic has no formula anyway)."""
    def rule(fs, attrs, ins, outs):
        a, b = (as_int(broadcast_to(f, t, outs[0]), t) for f, t in zip(fs, ins))
        return fn(a, b)
    return rule


# -- the analysis ---------------------------------------------------------------------


class ElementAnalysis:
    """Formulas of a graph's values, computed on demand and memoized.  A value whose
    producer has no ``elements`` rule (or whose rule gives None) is a leaf."""

    def __init__(self, graph: "Graph"):
        self.graph = graph
        self._memo: dict["Value", Formula] = {}
        self.leaves: dict[sympy.FunctionClass, "Value"] = {}
        self._leaf_of: dict["Value", sympy.FunctionClass] = {}

    def leaf(self, v: "Value") -> Formula:
        if v not in self._leaf_of:
            fn = sympy.Function(f"value_{len(self._leaf_of)}")
            self._leaf_of[v], self.leaves[fn] = fn, v
        fn = self._leaf_of[v]
        return fn(*indices(v.rank)) if v.rank else fn(sympy.Integer(0))

    def leaf_value(self, f: Formula) -> "Value | None":
        """The value a leaf formula stands for (None if ``f`` is not a leaf application)."""
        return self.leaves.get(f.func) if isinstance(f, sympy.core.function.AppliedUndef) else None

    def of(self, v: "Value") -> Formula:
        """``v``'s formula (a leaf when nothing better is known)."""
        stack = [v]
        while stack:  # formulas of the inputs first, without recursion (graphs are deep)
            top = stack[-1]
            if top in self._memo:
                stack.pop()
                continue
            node = top.producer
            pending = [] if node is None or node.op.elements is None else \
                [u for u in node.inputs if u not in self._memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            self._memo[top] = self._compute(top)
        return self._memo[v]

    def _compute(self, v: "Value") -> Formula:
        if v.is_constant and v.rank == 0 and v.data is not None:
            f = constant(v.data.item(), v.type)
            if f is not None:
                return f
        node = v.producer
        if node is None or node.op.elements is None or v.index != 0:
            return self.leaf(v)
        fs = [self._memo[u] for u in node.inputs]
        try:
            f = node.op.elements(fs, node.attrs, [u.type for u in node.inputs], [o.type for o in node.outputs])
        except (TypeError, ValueError, AttributeError, KeyError):  # sympy refused a combination: no formula
            f = None
        if f is None or sympy.count_ops(f) > MAX_OPS:
            return self.leaf(v)
        return f


# -- proofs ---------------------------------------------------------------------------


def prove_equal(a: Formula, b: Formula, depth: int = 6) -> bool:
    """True only if ``a == b`` at every index (indices are non-negative integers, sizes
    positive).  Piecewise branches whose condition pins an index below a small constant
    (``i < 3``, from the edges of a concat) are split into the pinned values and the rest;
    anything it cannot decide is False."""
    a, b = _fold(a), _fold(b)
    if _same(a, b):
        return True
    if depth == 0:
        return False
    split = _small_split(a) or _small_split(b)
    if split is not None:
        s, c = split
        pinned = all(prove_equal(a.xreplace({s: sympy.Integer(x)}), b.xreplace({s: sympy.Integer(x)}), depth - 1)
                     for x in range(c))
        return pinned and prove_equal(a.xreplace({s: s + c}), b.xreplace({s: s + c}), depth - 1)
    if isinstance(a, sympy.Piecewise):
        return all(prove_equal(branch, b, depth - 1) for branch, _ in a.args)
    if isinstance(b, sympy.Piecewise):
        return all(prove_equal(a, branch, depth - 1) for branch, _ in b.args)
    return False


SPLIT_LIMIT = 8  # the largest constant a split enumerates below


def _small_split(f: Formula) -> tuple[sympy.Symbol, int] | None:
    """``(i, c)`` for the first Piecewise condition ``i < c`` (or ``i <= c - 1``) in ``f``
    with ``i`` an index symbol and ``c`` a small positive integer."""
    for p in sympy.preorder_traversal(f):
        if not isinstance(p, sympy.Piecewise):
            continue
        for _, cond in p.args:
            rel = cond.canonical if cond.is_Relational else None
            if rel is None or not rel.lhs.is_Symbol or not rel.rhs.is_Integer:
                continue
            if rel.lhs.name.startswith("idx_") and rel.rel_op in ("<", "<="):
                c = int(rel.rhs) + (1 if rel.rel_op == "<=" else 0)
                if 0 < c <= SPLIT_LIMIT:
                    return rel.lhs, c
    return None


def _fold(f: Formula) -> Formula:
    f = sympy.piecewise_fold(f)
    if isinstance(f, sympy.Piecewise):
        f = f.func(*[(e, c) for e, c in f.args])  # re-evaluates branches made trivial by the fold
    return f


def _same(a: Formula, b: Formula) -> bool:
    if a == b:
        return True
    if a.is_Relational and b.is_Relational:
        return a.canonical == b.canonical
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr) and not (a.has(sympy.Piecewise) or b.has(sympy.Piecewise)):
        return sympy.expand(a - b) == 0
    return False


__all__ = ["Formula", "ElementsFn", "ElementAnalysis", "index", "indices", "at", "broadcast_to", "pointwise",
           "comparison", "as_int", "as_bool", "exact", "constant", "prove_equal"]
