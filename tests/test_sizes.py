"""Symbolic sizes: the text form round-trips, parsing is safe, and evaluation is exact."""

from __future__ import annotations

import sympy
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import strategies  # noqa: F401  (loads the chunkc hypothesis profile)
from chunkc.ir.sizes import (bind_symbols, ceildiv, evaluate, floordiv, format_size, free_symbols, normalize,
                             parse_size, product, ratio, sizes_equal, sym)

B, L, H = sym("B"), sym("L"), sym("H")


def _expressions():
    leaves = st.one_of(st.sampled_from([B, L, H]), st.integers(0, 20).map(sympy.Integer))
    divisors = st.one_of(st.sampled_from([B, L, H]), st.integers(1, 16).map(sympy.Integer))

    def extend(children):
        return st.one_of(
            st.tuples(children, children).map(lambda t: t[0] + t[1]),
            st.tuples(children, children).map(lambda t: t[0] - t[1]),
            st.tuples(children, children).map(lambda t: t[0] * t[1]),
            st.tuples(children, divisors).map(lambda t: sympy.floor(t[0] / t[1])),
            st.tuples(children, divisors).map(lambda t: sympy.ceiling(t[0] / t[1])),
            st.tuples(children, divisors).map(lambda t: sympy.Mod(t[0], t[1])),
            st.tuples(children, children).map(lambda t: sympy.Max(t[0], t[1])),
            st.tuples(children, children).map(lambda t: sympy.Min(t[0], t[1])),
        )
    return st.recursive(leaves, extend, max_leaves=6)


@settings(max_examples=150)
@given(_expressions())
def test_format_parse_round_trip(expr):
    size = normalize(expr)
    text = format_size(size)
    back = parse_size(text)
    assert sizes_equal(back, size), (text, back, size)
    assert format_size(back) == text  # printing is a fixed point
    values = {"B": 3, "L": 7, "H": 5}
    if all(s.name in values for s in getattr(size, "free_symbols", ())):
        assert evaluate(back, values) == evaluate(size, values)


@pytest.mark.parametrize("expr", [-(B + H) * (B + L), sympy.Mul(-1, B + H, B + L, evaluate=False),
                                  2 * ((B + H) * (B + L)), 3 * (B + H) ** 2 * (B + L), L - (B + H) * (B + L)])
def test_a_number_times_a_product_of_sums_prints_as_it_reads_back(expr):
    """The text is read left to right and a number times a sum distributes, so the printed
    form folds the number into a sum (found by the round-trip property above)."""
    text = format_size(normalize(expr))
    assert format_size(parse_size(text)) == text
    assert sizes_equal(parse_size(text), normalize(expr))


@settings(max_examples=60)
@given(_expressions(), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9))
def test_parsed_text_evaluates_like_python(expr, b, l, h):
    """The text form means what Python integer arithmetic would compute on it."""
    text = format_size(normalize(expr))
    python_value = _python_value(text, {"B": b, "L": l, "H": h})
    assert evaluate(parse_size(text), {"B": b, "L": l, "H": h}) == python_value


def _python_value(text, values):
    # An independent evaluator of the (trusted, test-generated) size text with Python ints.
    import ast

    def ev(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b,
                    ast.FloorDiv: a // b if b else None, ast.Mod: a % b if b else None}[type(node.op)]
        if isinstance(node, ast.Call):
            args = [ev(a) for a in node.args]
            return {"max": max, "min": min, "ceildiv": lambda a, b: -(-a // b)}[node.func.id](*args)
        raise AssertionError(ast.dump(node))
    return ev(ast.parse(text, mode="eval").body)


@pytest.mark.parametrize("text, expected", [
    ("4*L", "4*L"), ("L//16", "L//16"), ("(H*W)//256", "(H*W)//256"), ("max(L, 8)", "max(8, L)"),
    ("L - 1", "L - 1"), ("1 + L", "L + 1"), ("ceildiv(L, 4)", "ceildiv(L, 4)"), ("L%4", "L%4"),
    ("2*(L//2)", "2*(L//2)"), ("B*(L + 1)", "B*(L + 1)"), ("5 - L", "-L + 5"), ("12", "12"), ("3*4", "12"),
])
def test_known_spellings(text, expected):
    assert format_size(parse_size(text)) == expected


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "L.real", "L[0]", "lambda: 1", "L if L else 1", "L / 2", "L ** 2",
    "2.5", "True", "'L'", "f(L)", "max(L, key=1)", "L and 1", "", "L +", "-",
])
def test_parse_size_refuses_anything_but_size_arithmetic(text):
    with pytest.raises(ValueError, match="size expression"):
        parse_size(text)


def test_normalize_and_helpers():
    assert normalize(3) == 3 and isinstance(normalize(sympy.Integer(3)), int)
    assert normalize("L") == L
    with pytest.raises(TypeError):
        normalize(True)
    with pytest.raises(TypeError):
        normalize(sympy.Rational(1, 2))
    assert free_symbols(4 * L + B) == {"L", "B"} and free_symbols(7) == frozenset()
    assert product([B, L, 4]) == 4 * B * L and product([2, 3]) == 6
    assert floordiv(7, 2) == 3 and evaluate(floordiv(L, 2), {"L": 7}) == 3
    assert ceildiv(7, 2) == 4 and evaluate(ceildiv(L, 2), {"L": 7}) == 4
    assert ratio(4 * L, L) == 4 and ratio(L, 2 * L) == sympy.Rational(1, 2) and ratio(L, B) is None
    assert sizes_equal(2 * L, L + L) and not sizes_equal(L, B) and not sizes_equal(L, 3)


def test_evaluate_names_missing_symbols():
    with pytest.raises(KeyError, match="L"):
        evaluate(4 * L, {"B": 2})


def test_bind_symbols_solves_and_checks():
    bindings = {}
    bind_symbols(L, 5, bindings, "x axis 0")
    assert bindings == {"L": 5}
    bind_symbols(2 * L + B, 13, bindings, "y axis 0")
    assert bindings == {"L": 5, "B": 3}
    with pytest.raises(ValueError, match="y axis 1"):
        bind_symbols(4 * L, 21, bindings, "y axis 1")
    with pytest.raises(ValueError, match="no positive integer H"):
        bind_symbols(2 * H, 7, bindings, "z axis 0")


def test_evaluate_folds_unevaluated_constant_expressions():
    """A run-time chunk expression of a region whose byte counts hold no symbol is built
    unevaluated (sympy's Min/Max simplification is slow) and must still evaluate."""
    expr = sympy.ceiling(2 / sympy.ceiling(2 / sympy.Max(1, sympy.Min(2, sympy.floor(sympy.Rational(5, 4),
                                                                                   evaluate=False),
                                                                      evaluate=False), evaluate=False),
                                           evaluate=False), evaluate=False)
    assert evaluate(expr, {"L": 16}) == 1


def _unevaluated(expr):
    """``expr`` rebuilt bottom-up with every floor, ceiling, Min and Max unevaluated (as
    chunkc.passes.region_memory.chunk_expression builds run-time chunk sizes)."""
    if not expr.args:
        return expr
    args = [_unevaluated(a) for a in expr.args]
    if expr.func in (sympy.floor, sympy.ceiling, sympy.Min, sympy.Max):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def _sympy_value(expr, values):
    """sympy's value of ``expr`` with its symbols bound, each node rebuilt (evaluated) on its
    arguments' values.  Not ``subs``: substituting into an unevaluated floor can drop it (sympy
    gives 9/5 for Max(1, floor(L*(B*L - 3*H)/(2*B + H))) at B=4, L=3, H=2)."""
    if expr.is_Symbol:
        return sympy.Integer(values[expr.name])
    if not expr.args:
        return expr
    return expr.func(*[_sympy_value(a, values) for a in expr.args])


@settings(max_examples=150)
@given(_expressions(), st.integers(1, 40), st.integers(1, 40), st.integers(1, 40),
       st.sampled_from([1, 2, 3, 7]))
@example(B * L, 4, 3, 2, 1)  # where sympy's subs dropped an unevaluated floor
def test_evaluate_agrees_with_sympy_substitution(expr, b, l, h, q):
    """evaluate's exact arithmetic over the tree gives sympy's own value (:func:`_sympy_value`),
    also on unevaluated formulas with rational coefficients and divisions by symbols."""
    values = {"B": b, "L": l, "H": h}
    for e in (expr, _unevaluated(sympy.ceiling(expr / q + L / (B + 1), evaluate=False)),
              _unevaluated(sympy.Max(1, sympy.floor((expr - 3 * H) * L / (2 * B + H), evaluate=False)))):
        e = sympy.sympify(e)
        if e.is_Integer:
            continue
        want = _sympy_value(e, values)
        if not want.is_Integer:
            with pytest.raises(ValueError, match="not an integer"):
                evaluate(e, values)
            continue
        assert evaluate(e, values) == int(want), e


def test_evaluate_refuses_a_fraction():
    with pytest.raises(ValueError, match="not an integer"):
        evaluate(L / 2, {"L": 3})
