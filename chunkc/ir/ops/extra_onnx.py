"""Ops the ONNX importer needs beyond the core op set.

* ``size_tensor(; values, shape, dtype)``: a tensor holding (possibly symbolic)
  sizes, evaluated at run time: what an ONNX ``Shape`` becomes when its result
  is used as data rather than as a shape.
* inverse and hyperbolic trigonometry (asin, acos, asinh, acosh, atanh, sinh, cosh);
* bitwise ops on integers (bitwise_and/or/xor/not, shift_left, shift_right);
* ``cumprod(x; axis)``, the product counterpart of ``cumsum``;
* ``gather_nd(data, indices; batch_dims)`` and the scatter family
  (``scatter_elements``, ``scatter_nd``, with an optional reduction).

Elementwise ops carry every axis; the indexing ops mix (or, for the leading
batch axes, carry) theirs.  This module is registered by importing it
(``frontends.onnx`` does; see docs/frontend_onnx.md).
"""

from __future__ import annotations

import numpy as np
import sympy

from ..dims import AxisFlow, AxisSource, DimRecord, MIX, NEW
from ..dtypes import DType, dtype as to_dtype
from ..elements import exact
from ..kernel_workspace import TorchWorkspace, promoted_operands
from ..lowering import LoweringContext, torch_dtype, tuple_literal
from ..registry import _REGISTRY, OpDef, REQUIRED, register
from ..sizes import ceildiv
from ..types import TensorType
from ._common import broadcast_dims, broadcast_shapes, fail, host_array, norm_axis, open_grid, result_dtype, require_same
from .elementwise import promoted_call
from .reduce import cumulative


def _register(op: OpDef) -> OpDef:
    # a core op family may come to define the same op; its definition then wins
    return _REGISTRY[op.name] if op.name in _REGISTRY else register(op)


# -- size_tensor ------------------------------------------------------------------


def _size_tensor_infer(ins, attrs):
    values, shape = attrs["values"], tuple(attrs["shape"])
    n = 1
    for s in shape:
        if not isinstance(s, int) or s < 0:
            raise fail("size_tensor", f"shape must hold non-negative ints, got {shape}")
        n *= s
    if len(values) != n:
        raise fail("size_tensor", f"{len(values)} values do not fill shape {shape}")
    return (TensorType(to_dtype(attrs["dtype"]), shape),)


def _size_tensor_ref(xp, values, shape, dtype):
    return xp.asarray([int(v) for v in values], dtype=to_dtype(dtype).numpy).reshape(tuple(shape))


def _size_tensor_torch(ctx: LoweringContext) -> str:
    dtype = torch_dtype(ctx.out_type().dtype)
    if ctx.out_type().rank == 0:
        return f"torch.tensor({ctx.size(ctx.attrs['values'][0])}, dtype={dtype}, device={ctx.device()})"
    values = tuple_literal([ctx.size(v) for v in ctx.attrs["values"]]) if ctx.attrs["values"] else "()"
    return f"torch.tensor({values}, dtype={dtype}, device={ctx.device()}).reshape({ctx.out_shape(0)})"


_register(OpDef(name="size_tensor", infer=_size_tensor_infer, num_inputs=(0, 0),
                dims=lambda ins, attrs, outs: (tuple(NEW for _ in outs[0].shape),), torch=_size_tensor_torch,
                reference=_size_tensor_ref, attrs={"values": REQUIRED, "shape": (), "dtype": DType.int64},
                size_attrs=("values",), flops=lambda *a: 0,
                # one value: that size (a sympy expression of the size symbols)
                elements=lambda fs, attrs, ins, outs: sympy.sympify(attrs["values"][0])
                if len(attrs["values"]) == 1 and exact(outs[0]) else None,
                doc="size_tensor(values=(L, 12), shape=(2,), dtype=i64): a tensor of sizes evaluated at run time. Carries: no axis."))


# -- elementwise --------------------------------------------------------------------


def _same_dims(ins, attrs, outs) -> DimRecord:
    return (broadcast_dims(ins, outs[0]),)


def _unary(name: str, fn, float_only: bool = True, flops: int = 4) -> None:
    def infer(ins, attrs):
        if float_only and not ins[0].dtype.is_floating:
            raise fail(name, f"input must be floating point, got {ins[0]}")
        if not float_only and ins[0].dtype.is_floating:
            raise fail(name, f"input must be an integer or bool tensor, got {ins[0]}")
        return (ins[0],)
    _register(OpDef(name=name, infer=infer, dims=_same_dims, reference=fn, torch=f"torch.{name}({{0}})",
                    keeps_layout=True, flops=lambda ins, a, outs: flops * outs[0].numel(),
                    doc=f"{name}(x): elementwise ({'floating point' if float_only else 'integer or bool'}). "
                        "Carries: every axis."))


_unary("asin", lambda xp, x: xp.arcsin(x))
_unary("acos", lambda xp, x: xp.arccos(x))
_unary("asinh", lambda xp, x: xp.arcsinh(x))
_unary("acosh", lambda xp, x: xp.arccosh(x))
_unary("atanh", lambda xp, x: xp.arctanh(x))
_unary("sinh", lambda xp, x: xp.sinh(x))
_unary("cosh", lambda xp, x: xp.cosh(x))
_unary("bitwise_not", lambda xp, x: xp.invert(x), float_only=False, flops=1)


def _int_binary(name: str, fn, torch) -> None:
    def infer(ins, attrs):
        for i, t in enumerate(ins):
            if t.dtype.is_floating:
                raise fail(name, f"input {i} must be an integer or bool tensor, got {t}")
        return (TensorType(result_dtype(ins), broadcast_shapes(name, ins)),)

    def ref(xp, a, b):
        return fn(xp, a, b).astype(xp.result_type(a, b), copy=False)
    _register(OpDef(name=name, infer=infer, dims=_same_dims, reference=ref, num_inputs=(2, 2), torch=torch,
                    keeps_layout=True,
                    torch_workspace=promoted_operands((0, 1), casts_in_lowering=not isinstance(torch, str)),
                    flops=lambda ins, a, outs: outs[0].numel(),
                    doc=f"{name}(a, b): elementwise on integers or bools, broadcasting. "
                        "Carries: every axis not broadcast from size 1."))


_int_binary("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b), "torch.bitwise_and({0}, {1})")
_int_binary("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b), "torch.bitwise_or({0}, {1})")
_int_binary("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b), "torch.bitwise_xor({0}, {1})")
_int_binary("shift_left", lambda xp, a, b: xp.left_shift(a, b), promoted_call("torch.bitwise_left_shift"))
_int_binary("shift_right", lambda xp, a, b: xp.right_shift(a, b), promoted_call("torch.bitwise_right_shift"))


# -- cumprod ------------------------------------------------------------------------


def _cumprod_infer(ins, attrs):
    norm_axis("cumprod", attrs["axis"], ins[0].rank)
    return (ins[0],)


def _cumprod_dims(ins, attrs, outs) -> DimRecord:
    axis = norm_axis("cumprod", attrs["axis"], ins[0].rank)
    return (tuple(MIX if k == axis else AxisFlow("carry", (AxisSource(0, k),)) for k in range(ins[0].rank)),)


_register(OpDef(name="cumprod", infer=_cumprod_infer, dims=_cumprod_dims,
                reference=lambda xp, x, axis: xp.cumprod(x, axis=axis).astype(x.dtype, copy=False),
                attrs={"axis": -1}, torch=cumulative("torch.cumprod"),
                doc="cumprod(x, axis=-1): running product along an axis (keeps the dtype). "
                    "Carries: every axis but `axis`."))


# -- gather_nd ----------------------------------------------------------------------


def _gather_nd_parts(data: TensorType, idx: TensorType, b: int):
    if idx.rank < 1 or not isinstance(idx.shape[-1], int):
        raise fail("gather_nd", f"indices must have rank >= 1 and a static last axis, got {idx}")
    k = idx.shape[-1]
    if not 0 <= b < min(data.rank, idx.rank):
        raise fail("gather_nd", f"batch_dims {b} out of range for data {data} and indices {idx}")
    if b + k > data.rank:
        raise fail("gather_nd", f"indices {idx} index {k} axes of data {data} after {b} batch axes")
    for a in range(b):
        require_same("gather_nd", data.shape[a], idx.shape[a], f"batch axis {a}")
    return k, idx.shape[:-1] + data.shape[b + k:]


def _gather_nd_infer(ins, attrs):
    data, idx = ins
    if idx.dtype not in (DType.int64, DType.int32):
        raise fail("gather_nd", f"indices must be int32 or int64, got {idx}")
    _, shape = _gather_nd_parts(data, idx, attrs["batch_dims"])
    return (TensorType(data.dtype, shape),)


def _gather_nd_dims(ins, attrs, outs) -> DimRecord:
    b = attrs["batch_dims"]
    flows = [AxisFlow("carry", (AxisSource(0, a), AxisSource(1, a))) for a in range(b)]
    flows += [MIX] * (outs[0].rank - b)
    return (tuple(flows),)


def _gather_nd_ref(xp, data, indices, batch_dims):
    b = batch_dims
    batch_shape = data.shape[:b]
    nb = 1
    for s in batch_shape:
        nb *= s
    d = data.reshape((nb,) + data.shape[b:])
    idx = indices.reshape((nb,) + indices.shape[b:])
    k = idx.shape[-1]
    out = []
    for n in range(nb):
        ix = idx[n].reshape(-1, k)
        dims = d.shape[1:1 + k]
        ix = xp.where(ix < 0, ix + xp.asarray(dims, dtype=ix.dtype), ix)
        picked = d[n][tuple([ix[:, j] for j in range(k)])]
        out.append(picked.reshape(idx.shape[1:-1] + d.shape[1 + k:]))
    return xp.stack(out).reshape(indices.shape[:-1] + data.shape[b + k:])


# -- what the runtime's index ops allocate: the index converted to int64, and its negative
# entries wrapped (a bool mask, the index plus the size, the result of the where) -----------


def _wrapped_index(index: TensorType) -> tuple[int, int]:
    """(bytes at the wrapping's peak, bytes of the wrapped index kept)."""
    n = index.numel()
    converted = 0 if index.dtype == DType.int64 else n * 8
    return converted + n * (1 + 8 + 8), n * 8


def _gather_nd_workspace(ins, attrs, outs):
    wrapping, kept = _wrapped_index(ins[1])
    out = outs[0].numel() * outs[0].dtype.itemsize
    batch = 1
    for s in ins[0].shape[:attrs["batch_dims"]]:
        batch = batch * s
    return max(wrapping - out, kept + batch * 8)  # then the row numbers of the batch


def _scatter_elements_workspace(ins, attrs, outs):
    wrapping, kept = _wrapped_index(ins[1])
    return max(wrapping - outs[0].numel() * outs[0].dtype.itemsize, kept)


def _scatter_elements_numpy_workspace(ins, attrs, outs):
    """The NumPy reference builds each update's flat position in one copy of the index (8-byte
    ints) beside the mask of negative entries; the assignment that follows takes nothing more."""
    n = ins[1].numel()
    return ceildiv(n * (1 + 8), outs[0].dtype.itemsize)


def _scatter_nd_workspace(ins, attrs, outs):
    # the output (a copy of the data) first; then the wrapping, and the linear position of each
    # update (its running value and two temporaries per step)
    wrapping, kept = _wrapped_index(ins[1])
    updates = ins[1].numel() // ins[1].shape[-1]
    return max(wrapping, kept + 3 * updates * 8)


_register(OpDef(name="gather_nd", infer=_gather_nd_infer, dims=_gather_nd_dims, reference=_gather_nd_ref,
                num_inputs=(2, 2), attrs={"batch_dims": 0}, torch="rt.gather_nd({0}, {1}, {batch_dims})",
                torch_workspace=TorchWorkspace(lowering=_gather_nd_workspace),
                doc="gather_nd(data, indices, batch_dims=0): ONNX GatherND. Carries: the leading batch_dims axes."))


# -- scatter ------------------------------------------------------------------------

_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _check_reduction(op, r):
    if r not in _REDUCTIONS:
        raise fail(op, f"reduction must be one of {_REDUCTIONS}, got {r!r}")


def _scatter_elements_infer(ins, attrs):
    data, idx, upd = ins
    _check_reduction("scatter_elements", attrs["reduction"])
    norm_axis("scatter_elements", attrs["axis"], data.rank)
    if idx.rank != data.rank or upd.rank != data.rank:
        raise fail("scatter_elements", f"data {data}, indices {idx} and updates {upd} must have one rank")
    for a, b in zip(idx.shape, upd.shape):
        require_same("scatter_elements", a, b, "indices and updates shapes")
    return (data,)


def _apply_reduction(xp, out, index, upd, reduction):
    if reduction == "none":
        out[index] = upd
    elif reduction == "add":
        xp.add.at(out, index, upd)
    elif reduction == "mul" and xp.__name__ != "numpy":  # CuPy has no multiply.at: on the host
        host = host_array(out)
        np.multiply.at(host, tuple(host_array(i) for i in index), host_array(upd))
        out[...] = xp.asarray(host)
    elif reduction == "mul":
        xp.multiply.at(out, index, upd)
    elif reduction == "max":
        xp.maximum.at(out, index, upd)
    else:
        xp.minimum.at(out, index, upd)


def _scatter_elements_ref(xp, data, indices, updates, axis, reduction):
    out = data.copy()  # C order
    axis = norm_axis("scatter_elements", axis, data.ndim)
    # each update's flat position in out, built in place in one fresh copy of the index (a fancy
    # index of one array per axis makes two index-sized buffers more; xp.where buffers 8192
    # entries of an index that is a broadcast view, an expand): negatives wrapped, the axis
    # scaled by its stride, the other axes' positions added
    flat = xp.empty(indices.shape, dtype=xp.intp)
    xp.copyto(flat, indices)
    xp.add(flat, data.shape[axis], out=flat, where=flat < 0)
    strides = [s // out.itemsize for s in out.strides]
    flat *= strides[axis]
    for k, g in enumerate(open_grid(xp, indices.shape)):
        if k != axis:
            flat += g * strides[k]
    _apply_reduction(xp, out.reshape(-1), (flat,), updates, reduction)
    return out


def _scatter_dims(ins, attrs, outs) -> DimRecord:
    return (tuple(MIX for _ in outs[0].shape),)


_register(OpDef(name="scatter_elements", infer=_scatter_elements_infer, dims=_scatter_dims,
                reference=_scatter_elements_ref, num_inputs=(3, 3), attrs={"axis": 0, "reduction": "none"},
                workspace=_scatter_elements_numpy_workspace,
                torch="rt.scatter_elements({args}, {axis}, {reduction})",
                torch_workspace=TorchWorkspace(lowering=_scatter_elements_workspace),
                doc="scatter_elements(data, indices, updates, axis=0, reduction='none'): ONNX ScatterElements. Carries: no axis."))


def _scatter_nd_infer(ins, attrs):
    data, idx, upd = ins
    _check_reduction("scatter_nd", attrs["reduction"])
    if idx.rank < 1 or not isinstance(idx.shape[-1], int) or idx.shape[-1] > data.rank:
        raise fail("scatter_nd", f"indices {idx} must end in a static axis of at most rank(data) = {data.rank}")
    want = idx.shape[:-1] + data.shape[idx.shape[-1]:]
    if upd.rank != len(want):
        raise fail("scatter_nd", f"updates {upd} must have shape {want}")
    for a, b in zip(upd.shape, want):
        require_same("scatter_nd", a, b, "updates shape")
    return (data,)


def _scatter_nd_ref(xp, data, indices, updates, reduction):
    out = data.copy()
    k = indices.shape[-1]
    ix = indices.reshape(-1, k)
    ix = xp.where(ix < 0, ix + xp.asarray(data.shape[:k], dtype=ix.dtype), ix)
    upd = updates.reshape((ix.shape[0],) + data.shape[k:])
    if reduction == "none":
        for n in range(ix.shape[0]):  # later updates win, as in the ONNX reference
            out[tuple(ix[n])] = upd[n]
    else:
        _apply_reduction(xp, out, tuple([ix[:, j] for j in range(k)]), upd, reduction)
    return out


_register(OpDef(name="scatter_nd", infer=_scatter_nd_infer, dims=_scatter_dims, reference=_scatter_nd_ref,
                num_inputs=(3, 3), attrs={"reduction": "none"}, torch="rt.scatter_nd({args}, {reduction})",
                torch_workspace=TorchWorkspace(lowering=_scatter_nd_workspace),
                doc="scatter_nd(data, indices, updates, reduction='none'): ONNX ScatterND. Carries: no axis."))

