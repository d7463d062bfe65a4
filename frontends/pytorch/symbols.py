"""torch.export's symbolic sizes -> chunkc sizes named after the user's ``Dim``\\ s.

torch.export names the symbols of dynamic dimensions ``s0``, ``s27``...; the
user wrote ``Dim("L")``.  The export's shape environment remembers both: every
symbol has *sources* (``L['x'].size()[1]``, or for a root ``Dim`` a constant
source called ``L``) and ``source_name_to_debug_name`` maps a source to the
text the user gave (``L``, or ``2*L`` for a derived dim).  :class:`SymbolMap`
solves each torch symbol for the user's names, so ``4*s27`` becomes ``4*L``.

Symbols nobody named (``Dim.AUTO``) are called ``<input>_dim<axis>``; unbacked
symbols (data-dependent sizes, from ``.item()`` or ``nonzero``) have no
chunkc equivalent and are refused by :meth:`SymbolMap.size`.

torch's own simplifier leaves floor divisions such as ``4*((8*h + 1)//(2*h))``
(always 16); :meth:`SymbolMap.simplify` checks a one-symbol size at every value
of the ``Dim``'s range and replaces it by a constant or ``a*h + b``.  Floats
computed from sizes (``(L - 1)/2``) become :class:`SymbolicFloat`, which a
converter can turn into a run-time tensor but never into an attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import sympy
import torch
from torch.utils._sympy import functions as tfn

from chunkc.ir.graph import sanitize_name
from chunkc.ir.sizes import Size, normalize, parse_size, sym

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNBOUNDED = 2**62


class SymbolicValueError(ValueError):
    """A torch symbolic value that chunkc cannot express (data-dependent, float)."""


@dataclass(frozen=True)
class SymbolicFloat:
    """A float computed from symbolic sizes (``(L - 1)/2``): not a chunkc attribute,
    but converters can turn it into a 0-d tensor computed at run time."""

    expr: sympy.Expr

    def __float__(self) -> float:
        raise SymbolicValueError(f"the float {self.expr} depends on symbolic sizes; this argument must be a constant")


class SymbolMap:
    """Maps torch.export's sympy symbols to chunkc size symbols."""

    def __init__(self, shape_env=None):
        self.table: dict[sympy.Symbol, sympy.Expr] = {}
        self.ranges: dict[str, tuple[int, int]] = {}  # chunkc symbol -> (min, max) from the Dim
        self._used_names: dict[str, sympy.Expr] = {}
        self._simplified: dict[sympy.Expr, Size] = {}
        self._replacements: dict = dict(getattr(shape_env, "replacements", {}) or {}) if shape_env is not None else {}
        if shape_env is not None:
            self._from_shape_env(shape_env)
            self._ranges_from(shape_env)

    # -- construction ---------------------------------------------------------
    def _from_shape_env(self, env) -> None:
        from torch._dynamo.source import ConstantSource, TensorPropertySource

        debug = dict(getattr(env, "source_name_to_debug_name", {}) or {})
        replacements = dict(getattr(env, "replacements", {}) or {})
        var_to_sources = dict(getattr(env, "var_to_sources", {}) or {})
        fallback: dict[sympy.Symbol, str] = {}
        # Root dims first (constant sources carry the user's name directly), then
        # the sources whose debug name is an expression of a root (derived dims).
        for s, sources in var_to_sources.items():
            for src in sources:
                if isinstance(src, ConstantSource) and _IDENT.match(src.name):
                    self._bind(s, sym(src.name))
        for s, sources in var_to_sources.items():
            for src in sources:
                text = debug.get(src.name)
                if text is None:
                    if isinstance(src, TensorPropertySource) and s not in fallback:
                        base = getattr(src.base, "local_name", None) or getattr(src.base, "name", "x")
                        fallback[s] = f"{sanitize_name(str(base))}_dim{src.idx}"
                    continue
                try:
                    user = parse_size(text)
                except ValueError:
                    continue
                self._solve(replacements.get(s, s), user)
        for s, name in fallback.items():
            if s not in self.table and replacements.get(s, s) == s:
                self._bind(s, sym(self._fresh(name)))

    def _ranges_from(self, env) -> None:
        for s, vr in dict(getattr(env, "var_to_range", {}) or {}).items():
            target = self.table.get(s)
            if isinstance(target, sympy.Symbol):
                self.ranges.setdefault(target.name, (bound(vr.lower, 1), bound(vr.upper, _UNBOUNDED)))

    def _fresh(self, name: str) -> str:
        base, k = name, 1
        while name in self._used_names:
            name, k = f"{base}_{k}", k + 1
        return name

    def _bind(self, s: sympy.Symbol, expr: sympy.Expr) -> None:
        if s in self.table:
            return
        if isinstance(expr, sympy.Symbol):
            owner = self._used_names.get(expr.name)
            if owner is not None and owner != s:  # two different torch symbols asked for one name
                expr = sym(self._fresh(expr.name))
            self._used_names[expr.name] = s
        self.table[s] = expr

    def _solve(self, torch_expr: sympy.Expr, user: Size) -> None:
        """Solve ``torch_expr == user`` for the one torch symbol not yet mapped."""
        if isinstance(user, int):
            return
        unknown = [s for s in torch_expr.free_symbols if s not in self.table]
        if len(unknown) != 1:
            return
        s = unknown[0]
        known = torch_expr.subs({k: v for k, v in self.table.items() if k in torch_expr.free_symbols})
        if known == s and isinstance(user, sympy.Symbol):
            self._bind(s, user)
            return
        try:
            sols = sympy.solve(sympy.Eq(known, user), s)
        except (NotImplementedError, TypeError):
            return
        for cand in sols:
            if cand.free_symbols and all(f.is_integer for f in cand.free_symbols):
                self._bind(s, sympy.simplify(cand))
                return

    # -- translation ------------------------------------------------------------
    def size(self, value: Any, where: str = "") -> Size:
        """An int, SymInt or torch sympy expression as a chunkc size."""
        if isinstance(value, bool):
            raise SymbolicValueError(f"{where}: expected a size, got the bool {value}")
        if isinstance(value, int):
            return value
        if isinstance(value, torch.SymInt):
            return self.simplify(normalize(self.expr(value.node.expr, where)))
        if isinstance(value, sympy.Basic):
            return self.simplify(normalize(self.expr(value, where)))
        raise SymbolicValueError(f"{where}: expected a size, got {type(value).__name__} {value!r}")

    def scalar(self, value: Any, where: str = "") -> Any:
        """A SymInt/SymFloat/SymBool as an int/size, float or bool; plain numbers pass."""
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        if isinstance(value, torch.SymBool):
            e = value.node.expr
            if e in (sympy.true, sympy.false):
                return bool(e)
            raise SymbolicValueError(f"{where}: a condition on symbolic sizes ({e}) is not a chunkc value")
        if isinstance(value, torch.SymFloat):
            e = self.expr(value.node.expr, where)
            if e.free_symbols:
                return SymbolicFloat(e)  # e.g. (L - 1)/2: usable as a tensor operand (see Ctx.tensor)
            return float(e)
        return self.size(value, where)

    def expr(self, e: sympy.Basic, where: str = "") -> sympy.Expr:
        for _ in range(4):  # symbols torch replaced after the value was built (s94 -> 2*s38)
            if all(s in self.table for s in e.free_symbols) or not self._replacements:
                break
            e = e.xreplace(self._replacements)
        unknown = [s for s in e.free_symbols if s not in self.table]
        if unknown:
            names = ", ".join(sorted(str(s) for s in unknown))
            raise SymbolicValueError(
                f"{where}: size {e} uses {names}, a data-dependent or unnamed size (from .item(), nonzero, "
                "masked indexing...); chunkc sizes must come from the inputs' dynamic dims")
        return _translate(e, self.table)

    def simplify(self, size: Size) -> Size:
        """A size with one symbol, checked at every value of that symbol's ``Dim`` range,
        replaced by a constant or ``a*L + b`` when it equals one there.

        torch's shapes keep unsimplified floor divisions (``4*((8*h + 1)//(2*h))``, which
        is 16): sympy cannot prove such identities, but they hold for every allowed value of
        ``h``, which the check enumerates (up to 2**16 values).
        """
        if isinstance(size, int) or len(size.free_symbols) != 1 or size.is_polynomial():
            return size
        if size in self._simplified:
            return self._simplified[size]
        (s,) = size.free_symbols
        lo, hi = self.ranges.get(s.name, (1, _UNBOUNDED))
        hi = min(hi, lo + 2**16 - 1)
        out: Size = size
        try:
            import numpy as np
            fn = sympy.lambdify(s, size, modules="numpy")
            xs = np.arange(lo, hi + 1, dtype=np.int64)
            ys = np.broadcast_to(np.asarray(fn(xs)), xs.shape)
            if np.all(ys == ys[0]):
                out = int(ys[0])
            elif len(xs) > 1:
                a, b = ys[1] - ys[0], ys[0] - (ys[1] - ys[0]) * lo
                if float(a).is_integer() and float(b).is_integer() and np.all(ys == a * xs + b):
                    out = normalize(int(a) * s + int(b))
        except (TypeError, ValueError, ZeroDivisionError, NameError, OverflowError):
            out = size
        self._simplified[size] = out
        return out

    def names(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.table.items()}


def bound(value, default: int) -> int:
    """An end of a torch value range as an int (``int_oo`` and friends give ``default``)."""
    try:
        v = int(value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return default
    return v if abs(v) < _UNBOUNDED else default


def _translate(e: sympy.Basic, table: dict) -> sympy.Expr:
    if isinstance(e, sympy.Symbol):
        return table[e]
    if e.is_Number or not e.args:
        return e
    args = [_translate(a, table) for a in e.args]
    for cls, build in _FUNCS:
        if isinstance(e, cls):
            return build(*args)
    if isinstance(e, (sympy.Add, sympy.Mul, sympy.Pow, sympy.Max, sympy.Min, sympy.floor, sympy.ceiling, sympy.Mod)):
        return e.func(*args)
    raise SymbolicValueError(f"size expression {e} uses {type(e).__name__}, which chunkc sizes cannot express")


def _floordiv(a, b):
    return sympy.floor(a / b)


_FUNCS: Iterable = (
    (tfn.FloorDiv, _floordiv),
    (tfn.CleanDiv, lambda a, b: a / b),
    (tfn.CeilDiv, lambda a, b: sympy.ceiling(a / b)),
    (tfn.ModularIndexing, lambda x, d, m: sympy.Mod(sympy.floor(x / d), m)),
    (tfn.Mod, sympy.Mod),
    (tfn.PythonMod, sympy.Mod),
    (tfn.Max, sympy.Max),
    (tfn.Min, sympy.Min),
    (tfn.IntTrueDiv, lambda a, b: a / b),
    (tfn.FloatTrueDiv, lambda a, b: a / b),
    (tfn.FloorToInt, sympy.floor),
    (tfn.CeilToInt, sympy.ceiling),
    (tfn.TruncToInt, lambda a: sympy.sign(a) * sympy.floor(sympy.Abs(a))),
    (tfn.ToFloat, lambda a: a),
    (tfn.Identity, lambda a: a),
    (tfn.PowByNatural, lambda a, b: a ** b),
    (tfn.OpaqueUnaryFn_sqrt, sympy.sqrt),
)
