"""Constant, Identity, Dropout, Cast and CastLike, BitCast, and If (inlined when its condition is known)."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from chunkc.ir.dtypes import DType, dtype as to_chunkc_dtype
from chunkc.ir.registry import lookup as lookup_op

from .. import folding as F
from ..node import label
from ..types import to_dtype
from .registry import converter


def tensor_to_array(ctx, tensor, what: str) -> tuple[np.ndarray, DType]:
    dt = to_dtype(tensor.data_type, f"{ctx.node.describe()}: {what}")
    if tensor.data_location == 1:  # TensorProto.EXTERNAL
        raise ctx.fail(f"{what} keeps its data in an external file; chunkc reads self-contained models only")
    arr = numpy_helper.to_array(tensor)
    return np.asarray(arr).astype(dt.numpy, copy=False), dt


@converter("Constant")
def constant(ctx, node):
    attrs = node.attrs
    if "value" in attrs:
        data, dt = tensor_to_array(ctx, attrs["value"], "value")
    elif "value_float" in attrs:
        data, dt = np.asarray(attrs["value_float"], np.float32), DType.float32
    elif "value_floats" in attrs:
        data, dt = np.asarray(attrs["value_floats"], np.float32), DType.float32
    elif "value_int" in attrs:
        data, dt = np.asarray(attrs["value_int"], np.int64), DType.int64
    elif "value_ints" in attrs:
        data, dt = np.asarray(attrs["value_ints"], np.int64), DType.int64
    else:
        given = ", ".join(label(a) for a in sorted(attrs)) or "none"
        raise ctx.fail(f"only numeric constants are supported (value, value_float(s), value_int(s)); got {given}")
    ctx.set_known(0, data, dt)


@converter("Identity")
def identity(ctx, node):
    ctx.forward(0, 0)


@converter("Dropout")
def dropout(ctx, node):
    training = ctx.static(2, "training_mode") if ctx.has(2) else None
    ratio = ctx.static(1, "ratio") if ctx.has(1) else node.attr("ratio", 0.5)
    if training is not None and bool(np.asarray(training).reshape(-1)[0]) and float(np.asarray(ratio).reshape(-1)[0]) != 0:
        raise ctx.fail("dropout in training mode is random; chunkc imports inference graphs (training_mode=False)")
    ctx.forward(0, 0)
    if node.has_output(1):
        ctx.set(1, ctx.op("full_like", ctx.value(0), value=True, dtype=DType.bool))


def _cast_target(ctx, node) -> DType:
    if node.op_type == "CastLike":
        return ctx.dtype(1)
    return to_dtype(int(node.attr("to")), f"{node.describe()}: attribute to")


# float8 formats whose Cast saturates by default (ONNX's saturate=1): out-of-range values and
# infinities become the largest finite value, NaN stays NaN
SATURATING = (DType.float8_e4m3fn, DType.float8_e4m3fnuz, DType.float8_e5m2, DType.float8_e5m2fnuz)


def _largest(dt: DType) -> float:
    import ml_dtypes
    return float(ml_dtypes.finfo(dt.numpy).max)


def _cast_fold(ctx, arrays):
    node = ctx.node
    dt = _cast_target(ctx, node)
    a = arrays[0]
    if F.is_symbolic(a):
        if dt == DType.bool or dt.is_floating:
            return None
        return [(F.as_integers(a), dt)]
    saturate = bool(node.attr("saturate", 1))
    with np.errstate(all="ignore"):
        if dt == DType.float8_e8m0fnu:
            return [(lookup_op("cast_e8m0").reference(np, a, round_mode=node.attr("round_mode", "up"),
                                                       saturate=saturate), dt)]
        wide = a.astype(to_chunkc_dtype(a.dtype).wide)  # exact
        if dt in SATURATING and saturate and wide.dtype.kind == "f":
            wide = np.clip(wide, -_largest(dt), _largest(dt))
        return [(wide.astype(dt.numpy), dt)]


@converter("Cast", "CastLike", fold=_cast_fold, fold_inputs=(0,))
def cast(ctx, node):
    """ONNX Cast: saturating casts to the float8 formats (``saturate``, default on), and the
    exponent-only float8_e8m0fnu with its ``round_mode``."""
    dt = _cast_target(ctx, node)
    x = ctx.value(0)
    saturate, round_mode = bool(node.attr("saturate", 1)), node.attr("round_mode", "up")
    if dt == DType.float8_e8m0fnu:
        ctx.set(0, ctx.op("cast_e8m0", x, round_mode=round_mode, saturate=saturate))
        return
    if dt in SATURATING and saturate and x.dtype.is_floating:
        limit = _largest(dt)
        x = ctx.op("clamp", x, min=-limit, max=limit)
    ctx.set(0, ctx.op("cast", x, dtype=dt))


@converter("BitCast")
def bitcast(ctx, node):
    dt = to_dtype(int(node.attr("to")), f"{node.describe()}: attribute to")
    ctx.set(0, ctx.op("bitcast", ctx.value(0), dtype=dt))


@converter("If")
def if_(ctx, node):
    """An If whose condition is known at import: the taken branch's nodes, inlined.  Otherwise
    an opaque node (onnxruntime runs it), a barrier to chunking."""
    known = ctx.known(0)
    if known is None or np.asarray(known).dtype == object:
        from ..opaque import opaque_node
        for k, value in opaque_node(ctx, node).items():
            ctx.set(k, value)
        return
    cond = np.asarray(known).reshape(-1)
    if cond.size != 1:
        raise ctx.fail(f"the condition must be one boolean, got {cond!r}")
    branch = node.attr("then_branch" if bool(cond[0]) else "else_branch")
    if len(branch.output) != len(node.outputs):
        raise ctx.fail(f"the branch has {len(branch.output)} outputs, the node {len(node.outputs)}")
    ctx.run_subgraph(branch)
    for i, out in enumerate(branch.output):
        if node.has_output(i):
            ctx.env[node.outputs[i]] = ctx.slot(out.name)
