"""Ops on the bits of element types, for the ONNX importer.

* ``bitcast(x; dtype)``: the same bits read as another type of the same width
  (ONNX ``BitCast``);
* ``cast_e8m0(x; round_mode, saturate)``: a float to the exponent-only format
  float8_e8m0fnu (a power of two, ``2**(e - 127)``; ``0xFF`` is NaN), rounding
  the mantissa away ``up`` (default), to the ``nearest`` power (half up), or
  ``down``; with ``saturate`` a value above the largest power gives the largest
  power instead of NaN.  Only the magnitude counts (the format has no sign).

Both are elementwise: every axis carries.  Their references handle the ml_dtypes
types themselves (``exact_dtypes``): widening would change the bits.
"""

from __future__ import annotations

import numpy as np

from ..dims import DimRecord
from ..dtypes import DType, dtype as to_dtype
from ..lowering import ON_HOST, torch_dtype
from ..registry import OpDef, REQUIRED, register
from ._common import broadcast_dims, fail


def _same_dims(ins, attrs, outs) -> DimRecord:
    return (broadcast_dims(ins, outs[0]),)


# -- bitcast ------------------------------------------------------------------------------


_SUB_BYTE_BITS = {DType.int4: 4, DType.uint4: 4, DType.float4_e2m1fn: 4, DType.int2: 2, DType.uint2: 2}


def bit_width(dt: DType) -> int:
    return _SUB_BYTE_BITS.get(dt, 8 * dt.itemsize)


def _bitcast_infer(ins, attrs):
    try:
        dt = to_dtype(attrs["dtype"])
    except TypeError as exc:
        raise fail("bitcast", str(exc)) from None
    src = ins[0].dtype
    if bit_width(dt) != bit_width(src) or bit_width(dt) < 8:
        raise fail("bitcast", f"{src} ({bit_width(src)} bits) and {dt} ({bit_width(dt)} bits) must have the "
                              "same width, of whole bytes")
    return (ins[0].with_dtype(dt),)


def _bitcast_ref(xp, x, dtype):
    return x.copy().view(to_dtype(dtype).numpy)  # the copy is C-contiguous (0-d included)


def _bitcast_torch(ctx) -> str:
    return f"{ctx.arg(0)}.view({torch_dtype(to_dtype(ctx.attrs['dtype']))}).clone()"


register(OpDef(name="bitcast", infer=_bitcast_infer, dims=_same_dims, reference=_bitcast_ref,
               attrs={"dtype": REQUIRED}, exact_dtypes=True, flops=lambda *a: 0, torch=_bitcast_torch,
               doc="bitcast(x, dtype=i32): x's bits read as another type of the same width (a fresh array). "
                   "Carries: every axis."))


# -- cast_e8m0 ----------------------------------------------------------------------------

ROUND_MODES = ("up", "nearest", "down")
_F32_MANTISSA = 0x7FFFFF
_F32_HALF = 0x400000


def _cast_e8m0_infer(ins, attrs):
    if not ins[0].dtype.is_floating:
        raise fail("cast_e8m0", f"input must be floating point, got {ins[0]}")
    if attrs["round_mode"] not in ROUND_MODES:
        raise fail("cast_e8m0", f"round_mode must be one of {', '.join(ROUND_MODES)}, got {attrs['round_mode']!r}")
    if not isinstance(attrs["saturate"], bool):
        raise fail("cast_e8m0", f"saturate must be a bool, got {attrs['saturate']!r}")
    return (ins[0].with_dtype(DType.float8_e8m0fnu),)


def _cast_e8m0_ref(xp, x, round_mode="up", saturate=True):
    bits = xp.asarray(x).astype(np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.int32)
    mantissa = bits & _F32_MANTISSA
    special = exponent == 0xFF  # NaN and infinities
    if round_mode == "up":
        bump = mantissa != 0
    elif round_mode == "nearest":  # half rounds up (but not out of the subnormal range)
        bump = (mantissa > _F32_HALF) | ((mantissa == _F32_HALF) & (exponent > 0))
    else:
        bump = xp.zeros(exponent.shape, dtype=bool)
    if saturate:
        bump &= exponent != 0xFE
    exponent = exponent + bump.astype(np.int32)
    exponent = xp.where(special, 0xFF, exponent).astype(np.uint8)
    return exponent.view(DType.float8_e8m0fnu.numpy)


register(OpDef(name="cast_e8m0", infer=_cast_e8m0_infer, dims=_same_dims, reference=_cast_e8m0_ref,
               attrs={"round_mode": "up", "saturate": True}, exact_dtypes=True, flops=lambda *a: 0,
               torch=ON_HOST,  # float8_e8m0fnu has no PyTorch kernels
               doc="cast_e8m0(x, round_mode='up', saturate=True): |x| as a power of two in float8_e8m0fnu "
                   "(rounding the mantissa up, to nearest or down; NaN and inf give NaN). Carries: every axis."))
