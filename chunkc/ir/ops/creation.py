"""Creation and masking: arange, full (no inputs), full_like, triu, tril.

``full`` reads no input and every slice of it is the same constant: its axes
carry with no source.  ``arange`` makes any slice of itself from the slice's
start (a positional axis: its ``slice_attrs`` move start and end).
``full_like`` reads only its input's shape, so running it on a slice gives the
slice: its axes carry.  ``triu``/``tril`` depend on absolute row and column
positions: their last two axes are positional (a slice of the rows is the
same op with the diagonal moved by the slice's start), the leading axes carry.

Build the input-less ops with ``graph.op("arange", end="L")`` or
``chunkc.ops.arange(end="L", graph=graph)``.
"""

from __future__ import annotations

import math

import sympy

from ..dims import ANY_SLICE, NEW, POSITION, AxisSource, DimRecord, at_position
from ..dtypes import DType, dtype as to_dtype
from ..elements import constant, exact, index
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, ceildiv, normalize
from ..types import TensorType
from ._common import carry_from, fail, identity_dims


def _dtype_attr(op: str, value, default: DType) -> DType:
    if value is None:
        return default
    try:
        return to_dtype(value)
    except TypeError as exc:
        raise fail(op, f"dtype: {exc}") from None


def _number(op: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, sympy.Expr)):
        raise fail(op, f"{name} must be a number or a size expression, got {v!r}")


def _value_dtype(value) -> DType:
    if isinstance(value, bool):
        return DType.bool
    return DType.int64 if isinstance(value, int) else DType.float32


# -- arange -----------------------------------------------------------------------------------


def _arange_infer(ins, attrs):
    start, end, step = attrs["start"], attrs["end"], attrs["step"]
    for name in ("start", "end", "step"):
        _number("arange", name, attrs[name])
    if isinstance(step, (int, float)) and step == 0:
        raise fail("arange", "step must not be 0")
    exact = all(isinstance(v, (int, sympy.Expr)) for v in (start, end, step))
    dt = _dtype_attr("arange", attrs["dtype"], DType.int64 if exact else DType.float32)
    if all(isinstance(v, (int, float)) for v in (start, end, step)):
        n: Size = max(0, math.ceil((end - start) / step))
    elif exact and isinstance(step, int):
        span = normalize(end - start if step > 0 else start - end)
        n = ceildiv(span, abs(step))
        if isinstance(n, int):
            n = max(n, 0)
    else:
        raise fail("arange", f"symbolic bounds need integer start, end and step; got start={start}, "
                             f"end={end}, step={step}")
    return (TensorType(dt, (n,)),)


def _arange_ref(xp, start=0, end=None, step=1, dtype=None):
    dt = _dtype_attr("arange", dtype, DType.int64 if all(isinstance(v, int) for v in (start, end, step))
                     else DType.float32)
    return xp.arange(start, end, step, dtype=dt.numpy)


def _arange_dims(ins, attrs, outs) -> DimRecord:
    # integer bounds: the slice [a, b) is arange(start + a*step, start + b*step, step)
    exact = all(isinstance(attrs[k], (int, sympy.Expr)) for k in ("start", "step"))
    return ((POSITION if exact else NEW,),)


def _arange_slice(attrs, ins, axis, start, length):
    first = normalize(attrs["start"] + start * attrs["step"])
    return {**attrs, "start": first, "end": normalize(first + length * attrs["step"])}


def _arange_elements(fs, attrs, ins, outs):
    if not exact(outs[0]) or not all(isinstance(attrs[k], (int, sympy.Expr)) for k in ("start", "step")):
        return None
    return attrs["start"] + attrs["step"] * index(0)


register(OpDef(
    name="arange", infer=_arange_infer, dims=_arange_dims, reference=_arange_ref, slice_attrs=_arange_slice,
    elements=_arange_elements,
    num_inputs=(0, 0), attrs={"start": 0, "end": REQUIRED, "step": 1, "dtype": None},
    size_attrs=("start", "end", "step"),
    torch="torch.arange({start}, {end}, {step}, dtype={out_dtype}, device={device})",
    doc="arange(start=0, end, step=1, dtype=None): [start, start+step, ...) up to end; bounds may be size "
        "expressions; dtype defaults to i64 for integer bounds, else f32. Carries: its axis, positionally, "
        "for integer start and step (a slice is an arange from the slice's start)."))


# -- full / full_like ---------------------------------------------------------------------------


def _check_value(op: str, value) -> None:
    if not isinstance(value, (bool, int, float)):
        raise fail(op, f"value must be a number or a bool, got {value!r}")


def _full_infer(ins, attrs):
    shape = attrs["shape"]
    _check_value("full", attrs["value"])
    if not isinstance(shape, tuple) or any(isinstance(s, int) and s < 0 for s in shape):
        raise fail("full", f"shape must be a tuple of sizes >= 0, got {shape!r}")
    return (TensorType(_dtype_attr("full", attrs["dtype"], _value_dtype(attrs["value"])), shape),)


def _full_ref(xp, shape, value, dtype=None):
    dt = _dtype_attr("full", dtype, _value_dtype(value))
    return xp.full(tuple([int(s) for s in shape]), value, dtype=dt.numpy)


register(OpDef(
    name="full", infer=_full_infer, dims=lambda ins, a, outs: (tuple(ANY_SLICE for _ in outs[0].shape),),
    reference=_full_ref, num_inputs=(0, 0), attrs={"shape": REQUIRED, "value": REQUIRED, "dtype": None},
    elements=lambda fs, attrs, ins, outs: constant(attrs["value"], outs[0]),
    size_attrs=("shape",), shape_attr="shape", flops=lambda *a: 0,
    torch="torch.full({out_shape}, {value}, dtype={out_dtype}, device={device})",
    doc="full(shape, value, dtype=None): a constant tensor; dtype defaults from value (bool, i64 or f32). "
        "Carries: every axis, from nothing (any slice is the same constant)."))


def _full_like_infer(ins, attrs):
    _check_value("full_like", attrs["value"])
    return (ins[0].with_dtype(_dtype_attr("full_like", attrs["dtype"], ins[0].dtype)),)


def _full_like_ref(xp, x, value, dtype=None):
    dt = x.dtype if dtype is None else to_dtype(dtype).numpy
    return xp.full(x.shape, value, dtype=dt)


register(OpDef(
    name="full_like", infer=_full_like_infer,
    dims=lambda ins, a, outs: (tuple(carry_from(AxisSource(0, k)) for k in range(ins[0].rank)),),
    reference=_full_like_ref, attrs={"value": REQUIRED, "dtype": None}, flops=lambda *a: 0,
    torch="torch.full_like({0}, {value}, dtype={out_dtype})",
    doc="full_like(x, value, dtype=None): x's shape filled with value. Carries: every axis (only the shape "
        "of x is read, so a slice of x gives the slice)."))


# -- triu / tril -----------------------------------------------------------------------------------


def _tri_infer(name):
    def infer(ins, attrs):
        x = ins[0]
        if x.rank < 2:
            raise fail(name, f"input must have rank >= 2, got {x}")
        d = attrs["diagonal"]
        if isinstance(d, bool) or not isinstance(d, int):
            raise fail(name, f"diagonal must be an int, got {d!r}")
        return (x,)
    return infer


def _tri_dims(ins, attrs, outs) -> DimRecord:
    r = ins[0].rank
    flows = identity_dims(r)
    return (flows[:-2] + tuple(at_position(f) for f in flows[-2:]),)


def _tri_slice(attrs, ins, axis, start, length):
    # element (i, j) is kept by j - i <= diagonal (tril) or >= (triu): a slice starting at
    # row s is the same test with the diagonal moved up by s; at column s, down by s
    shift = start if axis == ins[0].rank - 2 else -start
    return {**attrs, "diagonal": normalize(attrs["diagonal"] + shift)}


def _tri_ref(lower: bool):
    """Zero, row by row, the part of a C-ordered copy outside the triangle (``xp.tril`` and
    ``xp.triu`` build a rows x columns boolean mask first: a temporary no record declares)."""
    def ref(xp, x, diagonal=0):
        out = xp.array(x, copy=True, order="C")
        rows, cols = x.shape[-2], x.shape[-1]
        if lower:  # keep column j of row i when j - i <= diagonal
            for i in range(max(0, min(rows, cols - diagonal - 1))):
                out[..., i, max(0, i + diagonal + 1):] = 0
        else:  # keep column j of row i when j - i >= diagonal
            for i in range(max(0, 1 - diagonal), rows):
                out[..., i, :min(cols, i + diagonal)] = 0
        return out
    return ref


for _name, _keep in (("triu", "on and above"), ("tril", "on and below")):
    register(OpDef(
        name=_name, infer=_tri_infer(_name), dims=_tri_dims, slice_attrs=_tri_slice,
        reference=_tri_ref(_name == "tril"),
        attrs={"diagonal": 0}, flops=lambda *a: 0, torch=f"torch.{_name}({{0}}, diagonal={{diagonal}})",
        doc=f"{_name}(x, diagonal=0): keep the elements {_keep} the diagonal of the last two axes, zero the "
            "rest. Carries: every axis; the last two positionally (a slice moves the diagonal)."))
