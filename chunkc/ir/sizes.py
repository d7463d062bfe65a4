"""Sizes: a dimension is an ``int`` or a symbolic integer expression (sympy).

Symbols are positive integers (``L``, ``B``); expressions such as ``4*L`` or
``L//16`` survive shape inference, so one graph serves many input sizes.

Text never reaches ``eval``: :func:`parse_size` walks a restricted Python AST.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from fractions import Fraction
from typing import Mapping, Union

import sympy

Size = Union[int, sympy.Expr]
Shape = tuple  # tuple[Size, ...]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.lru_cache(maxsize=None)
def sym(name: str) -> sympy.Symbol:
    """The symbolic size called ``name`` (a positive integer)."""
    if not _NAME.match(name):
        raise ValueError(f"symbolic size name {name!r} must be an identifier")
    return sympy.Symbol(name, integer=True, positive=True)


def normalize(size) -> Size:
    """An int stays an int; a string becomes a symbol; a constant expression an int."""
    if isinstance(size, bool):
        raise TypeError(f"a size must be an int or a symbolic expression, not {size!r}")
    if isinstance(size, int):
        return size
    if isinstance(size, str):
        return parse_size(size)
    if hasattr(size, "__index__") and not isinstance(size, sympy.Basic):
        return int(size)
    if isinstance(size, sympy.Basic):
        expr = sympy.sympify(size)
        if expr.has(sympy.Min, sympy.Max):
            # sympy may factor Min(Max(2, L), Max(3, L)) into Max(L, Min(2, 3)) and leave the
            # inner Min unevaluated; rebuilding bottom-up gives one canonical form.
            expr = _rebuild(expr)
        if expr.is_Integer:
            return int(expr)
        if expr.is_Number:
            raise TypeError(f"size {size} is not an integer")
        if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
            raise ValueError(f"size {size} is undefined (a division by zero?)")
        return expr
    raise TypeError(f"a size must be an int or a symbolic expression, not {type(size).__name__} {size!r}")


def _rebuild(e: sympy.Basic) -> sympy.Basic:
    if not e.args:
        return e
    return e.func(*[_rebuild(a) for a in e.args])


def is_static(size: Size) -> bool:
    return isinstance(size, int)


def free_symbols(size: Size) -> frozenset[str]:
    if isinstance(size, int):
        return frozenset()
    return frozenset(s.name for s in size.free_symbols)


def sizes_equal(a: Size, b: Size) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, int) or isinstance(b, int):
        return False if sympy.sympify(a) - sympy.sympify(b) != 0 else True
    return a == b or sympy.simplify(a - b) == 0


def evaluate(size: Size, bindings: Mapping[str, int] | None = None) -> int:
    """The integer value of ``size`` given values for its symbols."""
    if isinstance(size, int):
        return size
    return _evaluate_cached(size, tuple(sorted((bindings or {}).items())))


@functools.lru_cache(maxsize=65536)
def _evaluate_cached(size: sympy.Expr, bindings: tuple) -> int:
    values = dict(bindings)
    missing = [s.name for s in size.free_symbols if s.name not in values]
    if missing:
        raise KeyError(f"no value given for symbolic size(s) {', '.join(sorted(missing))} in {format_size(size)}")
    try:  # exact rational arithmetic over the tree: sympy's value, without sympy's simplification
        exact = _exact(size, values)
    except (_Unknown, ZeroDivisionError):
        exact = None
    if exact is not None:
        if isinstance(exact, Fraction) and exact.denominator != 1:
            raise ValueError(f"size {format_size(size)} is not an integer for {values}")
        return int(exact)
    # by name: a symbol may carry other assumptions than sym()'s (a loop start that may be 0)
    result = size.subs({s: values[s.name] for s in size.free_symbols})
    if not result.is_Integer:
        # an expression built unevaluated (floor(1), min(2, 3//2)) that no symbol's substitution re-evaluated
        result = result.doit()
    if not result.is_Integer:
        raise ValueError(f"size {format_size(size)} is not an integer for {values}")
    return int(result)


class _Unknown(Exception):
    """A node :func:`_exact` does not evaluate (sympy's substitution does)."""


def _exact(e: sympy.Basic, values: Mapping[str, int]) -> int | Fraction:
    """``e``'s value with its symbols bound, in exact integers and fractions: what
    ``e.subs(...).doit()`` gives, for the nodes chunk-size expressions are made of (sums,
    products, integer powers, floor, ceiling, min, max, mod).  Substituting into a large
    unevaluated expression (a region's chunk-size formula) makes sympy simplify it after every
    replacement, which took seconds each."""
    if e.is_Symbol:
        return values[e.name]
    if e.is_Integer:
        return int(e)
    if e.is_Rational:
        return Fraction(int(e.p), int(e.q))
    func = e.func
    if func is sympy.Add:
        return sum(_exact(a, values) for a in e.args)
    if func is sympy.Mul:
        out = 1
        for a in e.args:
            out *= _exact(a, values)
        return out
    if func is sympy.Pow:
        power = e.args[1]
        if not power.is_Integer:
            raise _Unknown(e)
        base, power = _exact(e.args[0], values), int(power)
        return base ** power if power >= 0 else Fraction(1, base ** -power)
    if func is sympy.floor:
        return math.floor(_exact(e.args[0], values))
    if func is sympy.ceiling:
        return math.ceil(_exact(e.args[0], values))
    if func is sympy.Max:
        return max(_exact(a, values) for a in e.args)
    if func is sympy.Min:
        return min(_exact(a, values) for a in e.args)
    if func is sympy.Mod:
        return _exact(e.args[0], values) % _exact(e.args[1], values)
    raise _Unknown(e)


def product(sizes) -> Size:
    out: Size = 1
    for s in sizes:
        out = out * s
    return normalize(out)


def size_max(*sizes: Size) -> Size:
    """The largest of ``sizes``: an int when all are, else sympy's Max (normalized)."""
    if all(isinstance(s, int) for s in sizes):
        return max(sizes)
    return normalize(sympy.Max(*sizes))


def floordiv(a: Size, b: Size) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return normalize(sympy.floor(sympy.sympify(a) / sympy.sympify(b)))


def ceildiv(a: Size, b: Size) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    return normalize(sympy.ceiling(sympy.sympify(a) / sympy.sympify(b)))


# ---------------------------------------------------------------------------
# Text form: ``4*L``, ``L//16``, ``(H*W)//256``, ``max(L, 8)``.


def format_size(size: Size) -> str:
    if isinstance(size, int):
        return str(size)
    return _fmt(size, 0)


# precedence: 0 sum, 1 product, 2 atom
def _fmt(e: sympy.Expr, outer: int) -> str:
    if e.is_Integer:
        return str(int(e)) if int(e) >= 0 or outer == 0 else f"({int(e)})"
    if e.is_Symbol:
        return e.name
    if isinstance(e, sympy.Add):
        # symbolic terms first, the constant last: ``L - 1`` rather than ``-1 + L``
        terms = sorted(e.args, key=lambda t: (t.is_Number, sympy.default_sort_key(t)))
        first = terms[0]
        if first.as_coeff_Mul()[0] < 0 and not first.is_Number and not _sum_factors(first):
            # unary minus binds tighter than // and % in the text: -(B//L), but -2*L
            neg = -first
            text = "-" + _fmt(neg, 1 if isinstance(neg, (sympy.Mul, sympy.Symbol)) else 2)
        else:
            text = _fmt(first, 0)
        for t in terms[1:]:
            coeff, rest = t.as_coeff_Mul()
            if coeff.is_Number and coeff < 0:
                text += " - " + _fmt(-t, 1)
            else:
                text += " + " + _fmt(t, 1)
        return f"({text})" if outer > 0 else text
    if isinstance(e, sympy.Mul):
        num, den = e.as_numer_denom()
        if den != 1:
            if e.is_integer:  # sympy's Max(4, 2*B)/2: exact, so floor division spells it
                return _wrap(f"{_fmt(num, 2)}//{_fmt(den, 2)}", outer)
            raise ValueError(f"size {e} is not an integer expression")
        coeff, rest = e.as_coeff_Mul()
        factors = list(sympy.Mul.make_args(rest))
        sums = _sum_factors(e)
        if coeff != 1 and sums:
            # the text is read left to right, and a number times a sum distributes: so
            # 2*(B + H)*(B + L) would read back as (2*B + 2*H)*(B + L).  Print that form.
            factors = [f for f in factors if not (f.is_Pow and f.base in sums)] + \
                [f.base for f in factors if f.is_Pow and f.base in sums for _ in range(int(f.exp))]
            first = min((f for f in factors if isinstance(f, sympy.Add)), key=sympy.default_sort_key)
            factors.remove(first)
            factors.append(sympy.Mul(coeff, first))
            coeff = sympy.Integer(1)
        factors.sort(key=sympy.default_sort_key)
        parts = [_fmt(f, 2) for f in factors]
        if coeff != 1:
            parts.insert(0, _fmt(coeff, 2))
        text = "*".join(parts)
        return f"({text})" if outer > 1 else text
    if isinstance(e, sympy.floor):
        num, den = e.args[0].as_numer_denom()
        return _wrap(f"{_fmt(num, 2)}//{_fmt(den, 2)}", outer)
    if isinstance(e, sympy.ceiling):
        num, den = e.args[0].as_numer_denom()
        return f"ceildiv({_fmt(num, 0)}, {_fmt(den, 0)})"
    if isinstance(e, sympy.Mod):
        return _wrap(f"{_fmt(e.args[0], 2)}%{_fmt(e.args[1], 2)}", outer)
    if isinstance(e, sympy.Pow) and e.exp.is_Integer and e.exp > 0:
        return _wrap("*".join([_fmt(e.base, 2)] * int(e.exp)), outer)
    if isinstance(e, (sympy.Max, sympy.Min)):
        name = "max" if isinstance(e, sympy.Max) else "min"
        args = sorted(e.args, key=sympy.default_sort_key)
        return f"{name}({', '.join(_fmt(a, 0) for a in args)})"
    raise ValueError(f"size expression {e} cannot be written in chunkc's size syntax")


def _sum_factors(e: sympy.Expr) -> set:
    """The sums among a product's factors (also as bases of its powers)."""
    if not isinstance(e, sympy.Mul):
        return set()
    out = set()
    for f in e.args:
        base = f.base if f.is_Pow and f.exp.is_Integer and f.exp > 0 else f
        if isinstance(base, sympy.Add):
            out.add(base)
    return out


def _wrap(text: str, outer: int) -> str:
    return f"({text})" if outer > 1 else text


def parse_size(text: str) -> Size:
    """Parse ``4*L``, ``L//16``, ``max(L, 8)``... without evaluating any code."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"bad size expression {text!r}: {exc.msg}") from None
    return normalize(_build(tree.body, text))


def _build(node: ast.AST, text: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return sympy.Integer(node.value)
    if isinstance(node, ast.Name):
        return sym(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_build(node.operand, text)
    if isinstance(node, ast.BinOp):
        a, b = _build(node.left, text), _build(node.right, text)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.FloorDiv):
            return sympy.floor(a / b)
        if isinstance(node.op, ast.Mod):
            return sympy.Mod(a, b)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_build(a, text) for a in node.args]
        if node.func.id == "max" and args:
            return sympy.Max(*args)
        if node.func.id == "min" and args:
            return sympy.Min(*args)
        if node.func.id == "ceildiv" and len(args) == 2:
            return sympy.ceiling(args[0] / args[1])
    raise ValueError(f"bad size expression {text!r}: only integers, names, + - * // % max min ceildiv are allowed")


def bind_symbols(declared: Size, actual: int, bindings: dict[str, int], where: str) -> None:
    """Solve ``declared == actual`` for one unknown symbol, or check consistency."""
    if isinstance(declared, int):
        if declared != actual:
            raise ValueError(f"{where}: expected size {declared}, got {actual}")
        return
    unknown = [s for s in declared.free_symbols if s.name not in bindings]
    if not unknown:
        value = evaluate(declared, bindings)
        if value != actual:
            raise ValueError(f"{where}: expected {format_size(declared)} = {value}, got {actual}")
        return
    if len(unknown) > 1:
        return  # solved later from another dimension
    s = unknown[0]
    known = declared.subs({sym(k): v for k, v in bindings.items()})
    if known == s:
        bindings[s.name] = actual
        return
    for cand in sympy.solve(sympy.Eq(known, actual), s):
        if cand.is_Integer and cand > 0:
            bindings[s.name] = int(cand)
            return
    raise ValueError(f"{where}: no positive integer {s.name} makes {format_size(declared)} equal {actual}")


def ratio(a: Size, b: Size):
    """``a / b`` as an exact rational when it is a constant, else ``None``."""
    from fractions import Fraction

    if isinstance(a, int) and isinstance(b, int):
        return Fraction(a, b) if b else None
    q = sympy.simplify(sympy.sympify(a) / sympy.sympify(b))
    if q.is_Rational:
        return Fraction(int(q.p), int(q.q))
    return None


__all__ = [
    "Size", "sym", "normalize", "is_static", "free_symbols", "sizes_equal", "evaluate",
    "product", "floordiv", "ceildiv", "format_size", "parse_size", "bind_symbols", "ratio",
]
