"""Calling an op's NumPy reference, for the interpreter and the NumPy/CuPy backend.

NumPy holds bf16, the float8 and float4 formats and the sub-byte integers
through ``ml_dtypes``, whose ufunc coverage is partial (no einsum, no scipy
special functions, dtype-kind tests that see a void type).  So a node that
reads or writes such a value runs its reference *widened*: each such input is
converted to ``DType.wide`` (f32, i8 or u8, which hold every value exactly),
the reference computes there, and each output is rounded once to the dtype the
IR gives it.  That is the usual semantics of these types (PyTorch computes bf16
ops in f32 and rounds the result).  An op whose reference handles these types
itself (it reinterprets bits, or hands the arrays to another runtime) says so
with ``OpDef.exact_dtypes``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Mapping, Sequence

from .dtypes import DType, dtype as to_dtype
from .registry import OpDef


# NumPy's ufunc iterator allocates a buffer of up to ``numpy.getbufsize()`` elements (8192 by
# default) for each operand it cannot stride through in one loop -- a broadcast operand, a
# transposed or sliced view, a cast -- and frees it when the call returns: up to 3 x 64 KiB per
# call that no op record declares, which dwarf the slices of a chunk loop.  Whatever runs the
# references on NumPy (the interpreters, the NumPy backend's programs) runs them with buffers of
# UFUNC_BUFFER elements instead: at most a few hundred bytes per operand, and no slower.
UFUNC_BUFFER = 64


@contextlib.contextmanager
def small_ufunc_buffers(xp) -> Iterator[None]:
    """Run the block with NumPy's ufunc buffers set to :data:`UFUNC_BUFFER` elements (restored
    after); other array modules have no such buffers and are left alone."""
    if getattr(xp, "__name__", "") != "numpy":
        yield
        return
    old = xp.getbufsize()
    xp.setbufsize(UFUNC_BUFFER)
    try:
        yield
    finally:
        xp.setbufsize(old)


def needs_widening(op: OpDef, dtypes: Sequence[DType]) -> bool:
    """Whether a node of ``op`` whose inputs and outputs have ``dtypes`` runs widened."""
    return not op.exact_dtypes and any(dt.from_ml_dtypes for dt in dtypes)


def call_widened(reference: Callable, xp, args: Sequence[Any], attrs: Mapping[str, Any],
                 out_dtypes: Sequence[DType]) -> tuple:
    """Run ``reference`` on the widened ``args``; round each result to its IR dtype."""
    wide = [_widen(xp, a) for a in args]
    out = reference(xp, *wide, **attrs)
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    return tuple(xp.asarray(o).astype(dt.numpy, copy=False) for o, dt in zip(outs, out_dtypes))


def _widen(xp, a):
    try:
        dt = to_dtype(a.dtype)
    except (TypeError, AttributeError):
        return a
    return a.astype(dt.wide) if dt.from_ml_dtypes else a


def widened(op: OpDef, out_dtypes: Sequence[str]) -> Callable:
    """``op``'s reference as a function of ``(xp, *args, **attrs)`` that runs widened and
    returns its outputs in ``out_dtypes`` (short names): the NumPy backend's call for a
    node that has ml_dtypes values."""
    dts = [to_dtype(d) for d in out_dtypes]

    def call(xp, *args, **attrs):
        outs = call_widened(op.reference, xp, args, attrs, dts)
        return outs if op.num_outputs != 1 else outs[0]
    call.__name__ = f"{op.name}_widened"
    return call


__all__ = ["needs_widening", "call_widened", "widened", "small_ufunc_buffers", "UFUNC_BUFFER"]
