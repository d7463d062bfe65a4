"""Arithmetic on known values, symbolic sizes included.

Known arrays of dtype ``object`` hold ints and sympy expressions of chunkc's
positive size symbols.  These helpers compute ONNX semantics on them (integer
division truncates, comparisons are decided only when the sign of the
difference is known) and raise :class:`Undecided` when an answer depends on
run-time sizes; the caller then builds IR ops instead.
"""

from __future__ import annotations

import math

import numpy as np
import sympy


class Undecided(Exception):
    """The result depends on the run-time values of symbolic sizes."""


def is_symbolic(*arrays) -> bool:
    return any(a is not None and np.asarray(a).dtype == object for a in arrays)


def to_object(a: np.ndarray) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object:
        return arr
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(arr.reshape(-1)):
        flat[i] = _exact(v)
    return out


def _exact(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise Undecided
        return int(f) if f.is_integer() else sympy.Rational(str(f))
    return v


def _sym(v):
    return v if isinstance(v, sympy.Basic) else sympy.sympify(v)


def elementwise(fn, *arrays) -> np.ndarray:
    """Apply a scalar function elementwise with NumPy broadcasting (object arrays)."""
    objs = [to_object(a) for a in arrays]
    shape = np.broadcast_shapes(*(o.shape for o in objs))
    result = np.frompyfunc(fn, len(objs), 1)(*objs)  # a bare object for 0-d inputs
    if isinstance(result, np.ndarray):
        return result.astype(object).reshape(shape)
    out = np.empty((), dtype=object)
    out[()] = result
    return out


def trunc_div(a, b):
    """ONNX integer Div: the quotient rounded toward zero."""
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        q = _sym(a) / _sym(b)
        if q.is_integer:
            return sympy.simplify(q)
        if (q.is_nonnegative):
            return sympy.floor(q)
        raise Undecided
    if b == 0:
        raise Undecided
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def floor_mod(a, b):
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        return sympy.Mod(_sym(a), _sym(b))
    if b == 0:
        raise Undecided
    return a % b


def true_div(a, b):
    if b == 0:
        raise Undecided
    return _sym(a) / _sym(b)


def decide(expr) -> bool:
    """A relation's truth value, or Undecided when it depends on run-time sizes."""
    if isinstance(expr, (bool, np.bool_)):
        return bool(expr)
    if expr is sympy.true:
        return True
    if expr is sympy.false:
        return False
    raise Undecided


def compare(kind: str):
    def fn(a, b):
        if not (isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic)):
            return {"eq": a == b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[kind]
        d = sympy.simplify(_sym(a) - _sym(b))
        if kind == "eq":
            z = d.is_zero
            if z is None:
                raise Undecided
            return bool(z)
        test = {"lt": d.is_negative, "le": d.is_nonpositive, "gt": d.is_positive, "ge": d.is_nonnegative}[kind]
        if test is None:
            raise Undecided
        return bool(test)
    return fn


def floor_fn(a):
    return sympy.floor(a) if isinstance(a, sympy.Basic) else math.floor(a)


def ceil_fn(a):
    return sympy.ceiling(a) if isinstance(a, sympy.Basic) else math.ceil(a)


def sym_max(a, b):
    if not (isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic)):
        return max(a, b)
    return sympy.Max(_sym(a), _sym(b))


def sym_min(a, b):
    if not (isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic)):
        return min(a, b)
    return sympy.Min(_sym(a), _sym(b))


def as_integers(arr: np.ndarray) -> np.ndarray:
    """Object results that must be integer sizes: ints stay ints, integer expressions stay; else Undecided."""
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(np.asarray(arr, dtype=object).reshape(-1)):
        if isinstance(v, (bool, np.bool_)):
            flat[i] = int(v)
        elif isinstance(v, (int, np.integer)):
            flat[i] = int(v)
        elif isinstance(v, sympy.Basic):
            v = sympy.simplify(v)
            if v.is_Integer:
                flat[i] = int(v)
            elif v.is_integer:
                flat[i] = v
            else:
                raise Undecided
        else:
            raise Undecided
    return out


def as_bools(arr: np.ndarray) -> np.ndarray:
    return np.asarray([decide(v) for v in np.asarray(arr, dtype=object).reshape(-1)], dtype=bool).reshape(np.shape(arr))
