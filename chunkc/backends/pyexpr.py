"""Python text for sizes and attribute values, built from their structure.

Generated code never contains text taken from a model: sizes are rendered by
walking the sympy expression tree (symbols map to identifiers chosen by the
namer), and attribute values are rendered from plain Python values only
(``repr`` of ints, floats, bools, strings and None; tuples of those; dtypes
through a backend-supplied function).  Anything else is refused.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import sympy

from ..errors import ChunkcError
from ..ir.dtypes import DType
from ..ir.lowering import tuple_literal
from ..ir.sizes import Size, format_size

# Precedence levels of the Python operators we emit (higher binds tighter).
_ATOM, _MUL, _ADD, _TOP = 3, 2, 1, 0


class SizeRenderer:
    """Renders sizes as Python expressions over the identifiers bound to symbols."""

    def __init__(self, names: Mapping[str, str]):
        self.names = names  # symbol name -> identifier in the generated code

    def __call__(self, size: Size) -> str:
        return self.render(size)

    def render(self, size: Size) -> str:
        if isinstance(size, bool):
            raise ChunkcError(f"size {size!r} is a bool, not an integer")
        if isinstance(size, int):
            return str(size)
        try:
            return self._expr(sympy.sympify(size), _TOP)
        except ChunkcError:
            raise
        except Exception as exc:  # pragma: no cover - defensive: unknown sympy node
            raise ChunkcError(f"cannot write size {size} as Python: {exc}") from None

    def _expr(self, e: sympy.Expr, outer: int) -> str:
        if e.is_Integer:
            v = int(e)
            return str(v) if v >= 0 or outer <= _ADD else f"({v})"
        if e.is_Symbol:
            if e.name not in self.names:
                raise ChunkcError(f"size symbol {e.name} is not bound to a variable; "
                                  "it must be determined by the graph input shapes")
            return self.names[e.name]
        if isinstance(e, sympy.Add):
            num, den = sympy.fraction(sympy.together(e))
            if den.is_Integer and den != 1:  # (D - 1)/3 from a solved binding: exact division
                return _paren(f"{self._expr(sympy.expand(num), _MUL)} // {int(den)}", _MUL, outer)
            terms = sorted(e.args, key=sympy.default_sort_key)
            # positive terms first reads better: L - 1 rather than -1 + L
            terms.sort(key=lambda t: (_is_negative(t), bool(t.is_Number)))
            text = self._expr(terms[0], _ADD)
            for t in terms[1:]:
                if _is_negative(t):
                    text += " - " + self._expr(-t, _MUL)
                else:
                    text += " + " + self._expr(t, _ADD)
            return _paren(text, _ADD, outer)
        if isinstance(e, sympy.Mul):
            coeff, rest = e.as_coeff_Mul()
            if coeff.is_Rational and not coeff.is_Integer:
                # an exact rational multiple (a solved binding such as D/2): integer floor division
                num = self._expr(sympy.Integer(coeff.p) * rest, _MUL)
                return _paren(f"{num} // {int(coeff.q)}", _MUL, outer)
            if coeff.is_Number and coeff < 0:
                return _paren("-" + self._expr(-e, _ATOM), _MUL, outer)
            factors = sorted(sympy.Mul.make_args(rest), key=sympy.default_sort_key)
            parts = [self._expr(f, _ATOM) for f in factors]
            if coeff != 1:
                parts.insert(0, self._expr(coeff, _ATOM))
            return _paren(" * ".join(parts), _MUL, outer)
        if isinstance(e, sympy.floor):
            num, den = e.args[0].as_numer_denom()
            return _paren(f"{self._expr(num, _MUL)} // {self._expr(den, _ATOM)}", _MUL, outer)
        if isinstance(e, sympy.ceiling):
            num, den = e.args[0].as_numer_denom()
            return _paren(f"-(-{self._expr(num, _ATOM)} // {self._expr(den, _ATOM)})", _ADD, outer)
        if isinstance(e, sympy.Mod):
            return _paren(f"{self._expr(e.args[0], _MUL)} % {self._expr(e.args[1], _ATOM)}", _MUL, outer)
        if isinstance(e, sympy.Pow) and e.exp.is_Integer and int(e.exp) > 0:
            return _paren(" * ".join([self._expr(e.base, _ATOM)] * int(e.exp)), _MUL, outer)
        if isinstance(e, (sympy.Max, sympy.Min)):
            name = "max" if isinstance(e, sympy.Max) else "min"
            args = sorted(e.args, key=sympy.default_sort_key)
            return f"{name}({', '.join(self._expr(a, _TOP) for a in args)})"
        raise ChunkcError(f"size {format_size_safe(e)} uses {type(e).__name__}, which has no Python form here")


def _is_negative(t: sympy.Expr) -> bool:
    coeff, _ = t.as_coeff_Mul()
    return bool(coeff.is_Number and coeff < 0)


def _paren(text: str, level: int, outer: int) -> str:
    return f"({text})" if level < outer else text


def format_size_safe(e) -> str:
    try:
        return format_size(e)
    except Exception:
        return str(e)


# ---------------------------------------------------------------------------
# Attribute values.

def float_literal(x: float) -> str:
    """A float as Python source: ``0.125``, ``float('inf')``, ``float('nan')``."""
    x = float(x)
    if math.isnan(x):
        return "float('nan')"
    if math.isinf(x):
        return "float('inf')" if x > 0 else "-float('inf')"
    return repr(x)


def literal(value, sizes: SizeRenderer, dtype: Callable[[DType], str], where: str = "") -> str:
    """Python source for an attribute value built only from plain values."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return float_literal(value)
    if isinstance(value, str):
        return repr(str(value))  # a string literal: quotes and escapes come from repr
    if isinstance(value, DType):
        return dtype(value)
    if isinstance(value, sympy.Basic):
        return sizes.render(value)
    if isinstance(value, tuple):
        return tuple_literal([literal(v, sizes, dtype, where) for v in value])
    raise ChunkcError(f"{where}: attribute value {value!r} of type {type(value).__name__} has no literal form")


__all__ = ["SizeRenderer", "float_literal", "literal", "tuple_literal"]
