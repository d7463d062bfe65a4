"""Dynamic dims that torch.export silently pinned to one value.

torch.export may accept a ``Dim`` and still record a guard on the input sizes
that holds at the example size only (DINOv2's position table: ``h*h + 1 == 17``).
The exported program then fails at any other size, and so would chunkc's
graph.  :func:`pinned_dims` finds equality guards that are false at every other
sampled value of a symbol's range, so the import can say so up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from chunkc.ir.sizes import format_size

from .symbols import SymbolicValueError, SymbolMap, _translate, bound


@dataclass(frozen=True)
class PinnedDim:
    dim: str  # the user's name for the dimension (L, h)
    guard: str  # the guard, in chunkc's size names
    value: int  # the only value the guard allows among those sampled


def pinned_dims(shape_env, symbols: SymbolMap) -> list[PinnedDim]:
    if shape_env is None:
        return []
    hints = dict(shape_env.backed_var_to_val if hasattr(shape_env, "backed_var_to_val") else shape_env.var_to_val)
    ranges = dict(getattr(shape_env, "var_to_range", {}) or {})
    replacements = dict(getattr(shape_env, "replacements", {}) or {})
    out: list[PinnedDim] = []
    seen: set[str] = set()
    for guard in getattr(shape_env, "guards", []) or []:
        expr = guard.expr
        if not isinstance(expr, sympy.Equality):
            continue
        for _ in range(4):  # source symbols -> the symbols the shapes use
            expr = expr.xreplace(replacements)
        if expr in (sympy.true, sympy.false) or not isinstance(expr, sympy.Equality):
            continue
        for s in sorted(expr.free_symbols, key=str):
            if s not in hints or s not in symbols.table or not isinstance(symbols.table[s], sympy.Symbol):
                continue
            value = int(hints[s])
            others = _samples(value, ranges.get(s))
            base = {k: int(v) for k, v in hints.items() if k in expr.free_symbols and k != s}
            try:
                if others and not any(bool(expr.subs({**base, s: v})) for v in others):
                    text = _text(expr, symbols)
                    if text not in seen:
                        seen.add(text)
                        out.append(PinnedDim(symbols.table[s].name, text, value))
            except (TypeError, ValueError, ZeroDivisionError):
                continue
    return out


def _samples(value: int, vr) -> list[int]:
    lo = bound(vr.lower, 2) if vr is not None else 2
    hi = bound(vr.upper, max(4 * value, 64)) if vr is not None else max(4 * value, 64)
    cands = {lo, hi, value - 1, value + 1, 2 * value, (lo + hi) // 2}
    return sorted(v for v in cands if lo <= v <= hi and v != value)


def _text(expr: sympy.Equality, symbols: SymbolMap) -> str:
    try:
        lhs, rhs = (_translate(side, symbols.table) for side in expr.args)
        return f"{format_size(sympy.sympify(lhs))} == {format_size(sympy.sympify(rhs))}"
    except (SymbolicValueError, KeyError, ValueError):
        return str(expr)
