"""Reductions (several axes, keepdim), argmax/argmin, softmax/log_softmax, cumsum.

Kept axes carry; reduced axes disappear (or stay as size-1 ``mix`` axes with
``keepdim``); softmax-like ops keep their shape and mix their one axis.

Integer and bool inputs of ``sum``, ``prod`` and ``cumsum`` give int64, as in
PyTorch.  float16 sums accumulate in float32 (a temporary the size of the
output, declared as workspace).

``sum``, ``mean``, ``amax``, ``amin``, ``prod``, ``any`` and ``all`` accumulate over
every axis they reduce (their records' ``accumulates``, chunkc.ir.dims.Accumulation):
a chunk loop may slice that axis and merge the partial results.  ``var`` does not
(merging variances needs each slice's count and mean; group norm's statistics op,
``group_norm_moments``, keeps those).  A float16 partial is rounded to float16 before
it merges, so a float16 sum chunked this way rounds more often than the unchunked one.
"""

from __future__ import annotations

import sympy

from ..dims import MEAN, SUM, Accumulation, AxisFlow, AxisSource, DimRecord, MIX
from ..dtypes import DType
from ..elements import as_int, exact, prove_equal
from ..kernel_workspace import TorchWorkspace
from ..layout import torch_is_contiguous
from ..lowering import LoweringContext, LoweringFn, TorchLowering, torch_dtype
from ..registry import OpDef, register
from ..sizes import Size, normalize, product
from ..types import TensorType
from ._common import fail, identity_dims, norm_axes, norm_axis, quiet

KEPT = " Carries: every axis that is not reduced."


def _reduced_shape(op, t: TensorType, attrs):
    axes = norm_axes(op, attrs["axes"], t.rank)
    if attrs["keepdim"]:
        return axes, tuple(1 if k in axes else s for k, s in enumerate(t.shape))
    return axes, tuple(s for k, s in enumerate(t.shape) if k not in axes)


def _reduced_flows(rank: int, axes, keepdim: bool) -> DimRecord:
    """Kept axes carry; reduced ones vanish, or stay as size-1 ``mix`` axes with ``keepdim``."""
    flows = []
    for k in range(rank):
        if k not in axes:
            flows.append(AxisFlow("carry", (AxisSource(0, k),)))
        elif keepdim:
            flows.append(MIX)
    return (tuple(flows),)


def _reduce_dims(ins, attrs, outs) -> DimRecord:
    rank = ins[0].rank
    return _reduced_flows(rank, norm_axes("reduce", attrs["axes"], rank), attrs["keepdim"])


def _acc(dtype):
    """The accumulation dtype for a float result: float32 for float16."""
    return "float32" if dtype == "float16" else dtype


def _sum(xp, x, ax, kd, dt):
    return _reduce_into(xp, xp.sum, x, ax, kd, dt)


def _reduce_into(xp, fn, x, ax, kd, dt):
    """``fn`` (xp.sum or xp.prod) accumulated in float32 for float16, returned in ``dt``."""
    res = fn(x, axis=ax, keepdims=kd, dtype=_acc(dt))
    return res if res.dtype == dt else res.astype(dt)


def _mean(xp, x, ax, kd, dt):
    out = _reduce_into(xp, xp.sum, x, ax, kd, dt)
    n = 1
    for a in ax:
        n *= x.shape[a]
    with quiet(xp):
        out /= n
    return xp.asarray(out)


def _var(xp, x, ax, kd, dt, correction=1):
    # one input-sized temporary (x - mean), declared as workspace
    n = 1
    for a in ax:
        n *= x.shape[a]
    mean = xp.mean(x, axis=ax, keepdims=True, dtype=_acc(dt))
    d = xp.asarray(xp.subtract(x, mean, dtype=dt))  # a 0-d input gives a NumPy scalar
    del mean
    xp.square(d, out=d)
    out = _reduce_into(xp, xp.sum, d, ax, kd, dt)
    del d
    with quiet(xp):
        out /= max(n - correction, 0)
    return xp.asarray(out)


def _f16_acc_workspace(ins, attrs, outs) -> Size:
    # the float32 accumulator of a float16 reduction, in float16 elements
    return 2 * outs[0].numel() if outs[0].dtype == DType.float16 else 0


def _var_workspace(ins, attrs, outs) -> Size:
    return ins[0].numel() + _f16_acc_workspace(ins, attrs, outs)


def _accumulates_as(acc: Accumulation):
    """A reduction's ``accumulates``: every reduced axis of its input merges with ``acc``."""
    def accumulates(ins, attrs, input: int, axis: int) -> Accumulation | None:
        rank = ins[0].rank
        return acc if input == 0 and rank and axis in norm_axes("reduce", attrs["axes"], rank) else None
    return accumulates


def reduction(name: str, fn, out_dtype=None, float_only=False, int64_for_ints=False, workspace=None, doc="",
              torch: TorchLowering | None = None, torch_workspace=None, saves: tuple = ("inputs",),
              accumulates: Accumulation | None = None):
    def dtype_of(t: TensorType) -> DType:
        if out_dtype is not None:
            return out_dtype
        if int64_for_ints and not t.dtype.is_floating:
            return DType.int64
        return t.dtype

    def infer(ins, attrs):
        t = ins[0]
        if float_only and not t.dtype.is_floating:
            raise fail(name, f"input must be floating point, got {t}")
        if name == "var" and (isinstance(attrs["correction"], bool) or not isinstance(attrs["correction"], int)):
            raise fail(name, f"correction must be an int, got {attrs['correction']!r}")
        _, shape = _reduced_shape(name, t, attrs)
        return (TensorType(dtype_of(t), shape),)

    def ref(xp, x, axes, keepdim, **kw):
        dt = out_dtype.numpy if out_dtype is not None else (
            xp.dtype("int64") if int64_for_ints and x.dtype.kind in "biu" else x.dtype)
        out = fn(xp, x, norm_axes(name, axes, x.ndim), keepdim, str(xp.dtype(dt)), **kw)
        return xp.asarray(out)

    attrs = {"axes": None, "keepdim": False}
    if name == "var":
        attrs["correction"] = 1
    return register(OpDef(name=name, infer=infer, dims=_reduce_dims, reference=ref, attrs=attrs, workspace=workspace,
                          torch=torch, torch_workspace=torch_workspace, flops=lambda ins, a, outs: ins[0].numel(),
                          doc=doc + KEPT, saves=saves,
                          accumulates=None if accumulates is None else _accumulates_as(accumulates)))


# -- PyTorch lowerings of the reductions --------------------------------------------------


def _reduced_axes(ctx: LoweringContext) -> tuple[int, ...]:
    """The axes a node reduces; none for a 0-d input."""
    rank = ctx.in_type(0).rank
    return _reduced_shape(ctx.op, ctx.in_type(0), ctx.attrs)[0] if rank else ()


def _reduce_call(fn: str, fix_dtype: bool = False) -> LoweringFn:
    def lower(ctx: LoweringContext) -> str:
        x, out = ctx.arg(0), ctx.out_type().dtype
        dims = _reduced_axes(ctx)
        if not dims:  # nothing to reduce: a fresh copy (torch would reduce every axis)
            return f"{x}.to({torch_dtype(out)}, copy=True)"
        extra = ""
        if "correction" in ctx.attrs:
            extra = f", correction={ctx.attr('correction')}"
        text = f"{fn}({x}, dim={ctx.lit(dims)}{extra}, keepdim={ctx.attr('keepdim')})"
        if fix_dtype and not ctx.in_type(0).dtype.is_floating:
            text += f".to({torch_dtype(out)})"  # torch sums integers and bools as int64
        return text
    return lower


def _prod_torch(ctx: LoweringContext) -> str:
    x, out = ctx.arg(0), ctx.out_type().dtype
    dims = _reduced_axes(ctx)
    fix = "" if ctx.in_type(0).dtype.is_floating else f".to({torch_dtype(out)})"
    if not dims:
        return f"{x}.to({torch_dtype(out)}, copy=True)"
    if len(dims) == 1:
        return f"torch.prod({x}, dim={dims[0]}, keepdim={ctx.attr('keepdim')}){fix}"
    return f"rt.prod({x}, {ctx.lit(dims)}, {ctx.attr('keepdim')}){fix}"


# -- what the PyTorch reductions allocate besides their result --------------------------------


def _reduces(ins, attrs) -> bool:
    return ins[0].rank > 0 and bool(_reduced_shape("reduce", ins[0], attrs)[0])


def _input_in_result_dtype(ins, attrs, outs) -> Size:
    """An integer or bool input reduced (or accumulated) to i64: ATen first converts it
    (every device)."""
    x = ins[0]
    if x.dtype.is_floating or x.dtype == outs[0].dtype:
        return 0
    if "axis" not in attrs and not _reduces(ins, attrs):  # no axis to reduce: a plain copy
        return 0
    return x.numel() * outs[0].dtype.itemsize


def _half_mean_on_cpu(ins, attrs, outs) -> Size:
    """The CPU mean of half floats sums a float copy of the input into a float result."""
    x = ins[0]
    if x.dtype not in (DType.float16, DType.bfloat16) or not _reduces(ins, attrs):
        return 0
    return (x.numel() + outs[0].numel()) * DType.float32.itemsize


def _non_bool_any_on_cpu(ins, attrs, outs) -> Size:
    """The CPU any/all of a non-bool input reduce a bool copy of it (CUDA reads it as it is)."""
    x = ins[0]
    return x.numel() if x.dtype != DType.bool and _reduces(ins, attrs) else 0


def _prod_steps(ins, attrs, outs) -> Size:
    """rt.prod reduces one axis at a time, the last first: each step's result lives with the
    next; an integer input is converted to i64 by the first step."""
    x = ins[0]
    axes = sorted(_reduced_shape("prod", x, attrs)[0], reverse=True) if x.rank else []
    if len(axes) < 2:
        return 0
    shape, item = list(x.shape), outs[0].dtype.itemsize
    sizes = []
    for a in axes:
        if attrs["keepdim"]:
            shape[a] = 1
        else:
            del shape[a]
        sizes.append(product(shape) * item)
    converted = _input_in_result_dtype(ins, attrs, outs)
    out = sizes[-1]
    peak = converted + sizes[0]
    for before, after in zip(sizes, sizes[1:]):
        peak = _larger(peak, before + after)
    return normalize(peak - out)


def _larger(a: Size, b: Size) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return sympy.Max(a, b)


_AX = "(x, axes=None|int|tuple, keepdim=False)"
reduction("sum", _sum, int64_for_ints=True, workspace=_f16_acc_workspace, doc=f"sum{_AX}; integers sum to i64.",
          torch=_reduce_call("torch.sum", fix_dtype=True), torch_workspace=TorchWorkspace(aten=_input_in_result_dtype),
          saves=(), accumulates=SUM)
reduction("mean", _mean, float_only=True, workspace=_f16_acc_workspace, doc=f"mean{_AX}.",
          torch=_reduce_call("torch.mean"), torch_workspace=TorchWorkspace(cpu=_half_mean_on_cpu), saves=(),
          accumulates=MEAN)
reduction("amax", lambda xp, x, ax, kd, dt: xp.max(x, axis=ax, keepdims=kd), doc=f"amax{_AX}.",
          torch=_reduce_call("torch.amax"), saves=("inputs", "outputs"), accumulates=Accumulation("maximum"))
reduction("amin", lambda xp, x, ax, kd, dt: xp.min(x, axis=ax, keepdims=kd), doc=f"amin{_AX}.",
          torch=_reduce_call("torch.amin"), saves=("inputs", "outputs"), accumulates=Accumulation("minimum"))
reduction("prod", lambda xp, x, ax, kd, dt: _reduce_into(xp, xp.prod, x, ax, kd, dt), int64_for_ints=True,
          workspace=_f16_acc_workspace, doc=f"prod{_AX}; integers multiply to i64.", torch=_prod_torch,
          torch_workspace=TorchWorkspace(lowering=_prod_steps,
                                         aten=lambda ins, a, outs: 0 if _prod_steps(ins, a, outs) else
                                         _input_in_result_dtype(ins, a, outs)),
          saves=("inputs", "outputs"), accumulates=Accumulation("multiply"))
reduction("any", lambda xp, x, ax, kd, dt: xp.any(x, axis=ax, keepdims=kd), out_dtype=DType.bool,
          doc=f"any{_AX} -> bool.", torch=_reduce_call("torch.any"),
          torch_workspace=TorchWorkspace(cpu=_non_bool_any_on_cpu), accumulates=Accumulation("logical_or"))
reduction("all", lambda xp, x, ax, kd, dt: xp.all(x, axis=ax, keepdims=kd), out_dtype=DType.bool,
          doc=f"all{_AX} -> bool.", torch=_reduce_call("torch.all"),
          torch_workspace=TorchWorkspace(cpu=_non_bool_any_on_cpu), accumulates=Accumulation("logical_and"))
reduction("var", _var, float_only=True, workspace=_var_workspace, torch=_reduce_call("torch.var"),
          doc="var(x, axes=None|int|tuple, keepdim=False, correction=1): divides by n - correction.")


def _arg_infer(name):
    def infer(ins, attrs):
        t = ins[0]
        axis = norm_axis(name, attrs["axis"], t.rank)
        shape = tuple(1 if k == axis else s for k, s in enumerate(t.shape)) if attrs["keepdim"] else \
            tuple(s for k, s in enumerate(t.shape) if k != axis)
        return (TensorType(DType.int64, shape),)
    return infer


def _arg_dims(ins, attrs, outs) -> DimRecord:
    rank = ins[0].rank
    return _reduced_flows(rank, (norm_axis("argmax", attrs["axis"], rank),), attrs["keepdim"])


def _arg_ref(fn: str):
    def ref(xp, x, axis, keepdim):
        out = getattr(xp, fn)(x, axis=axis, keepdims=keepdim)
        return xp.asarray(out).astype("int64", copy=False)
    return ref


for _name in ("argmax", "argmin"):
    register(OpDef(name=_name, infer=_arg_infer(_name), dims=_arg_dims, attrs={"axis": -1, "keepdim": False},
                   torch=f"torch.{_name}({{0}}, dim={{axis}}, keepdim={{keepdim}})",
                   reference=_arg_ref(_name), flops=lambda ins, a, outs: ins[0].numel(),
                   doc=f"{_name}(x, axis=-1, keepdim=False) -> i64; the first index on ties." + KEPT))


def _along_axis_infer(name, float_only=True, int64_for_ints=False):
    def infer(ins, attrs):
        t = ins[0]
        if float_only and not t.dtype.is_floating:
            raise fail(name, f"input must be floating point, got {t}")
        norm_axis(name, attrs["axis"], t.rank)
        if int64_for_ints and not t.dtype.is_floating:
            return (t.with_dtype(DType.int64),)
        return (t,)
    return infer


def _along_axis_dims(ins, attrs, outs) -> DimRecord:
    t = ins[0]
    return (identity_dims(t.rank, skip=(norm_axis("softmax", attrs["axis"], t.rank),)),)


def _softmax(xp, x, axis):
    out = xp.subtract(x, xp.max(x, axis=axis, keepdims=True))
    xp.exp(out, out=out)
    out /= xp.sum(out, axis=axis, keepdims=True)
    return out


def _log_softmax(xp, x, axis):
    # out = x - (max + log(sum(exp(x - max)))), computed without a second full-size array
    m = xp.max(x, axis=axis, keepdims=True)
    out = xp.subtract(x, m)
    xp.exp(out, out=out)
    s = xp.sum(out, axis=axis, keepdims=True)
    with quiet(xp):
        xp.log(s, out=s)
    s += m
    del m
    xp.subtract(x, s, out=out)
    return out


def _softmax_workspace(ins, attrs, outs) -> Size:
    # the max and the sum along the axis (kept dims) live beside the output
    t = ins[0]
    axis = norm_axis("softmax", attrs["axis"], t.rank)
    return 2 * product(s for k, s in enumerate(t.shape) if k != axis)


def cumulative(fn: str) -> LoweringFn:
    """The lowering of a running sum or product along ``axis``, in the IR's result dtype."""
    def lower(ctx: LoweringContext) -> str:
        fix = "" if ctx.in_type(0).dtype.is_floating else f", dtype={torch_dtype(ctx.out_type().dtype)}"
        return f"{fn}({ctx.arg(0)}, dim={ctx.attr('axis')}{fix})"  # torch would give int64 for integers
    return lower


_ALONG = " Carries: every axis but `axis`."


def _softmax_input_copy(ins, attrs, outs, strides) -> Size:
    """The CPU's ``softmax``/``log_softmax`` kernels read a contiguous input: a copy of one
    that is not (a permuted or sliced view, a chunk of one along an axis after the first)."""
    x = ins[0]
    if not x.dtype.is_floating or not strides or not strides[0] or not all(isinstance(d, int) for d in x.shape):
        return 0
    return 0 if torch_is_contiguous(tuple(x.shape), tuple(strides[0])) else x.numel() * x.dtype.itemsize


_SOFTMAX_TORCH_WORKSPACE = TorchWorkspace(cpu_layout=_softmax_input_copy)
register(OpDef(name="softmax", infer=_along_axis_infer("softmax"), dims=_along_axis_dims, reference=_softmax,
               attrs={"axis": -1}, flops=lambda ins, a, outs: 5 * outs[0].numel(), workspace=_softmax_workspace,
               torch="F.softmax({0}, dim={axis})", saves=("outputs",), torch_workspace=_SOFTMAX_TORCH_WORKSPACE,
               doc="softmax(x, axis=-1)." + _ALONG))
register(OpDef(name="log_softmax", infer=_along_axis_infer("log_softmax"), dims=_along_axis_dims,
               reference=_log_softmax, attrs={"axis": -1}, flops=lambda ins, a, outs: 5 * outs[0].numel(),
               workspace=_softmax_workspace, torch="F.log_softmax({0}, dim={axis})", saves=("outputs",),
               torch_workspace=_SOFTMAX_TORCH_WORKSPACE,
               doc="log_softmax(x, axis=-1)." + _ALONG))
def _cumsum_elements(fs, attrs, ins, outs):
    # only the running sum of zeros (transformers' packed-sequence test on plain positions)
    if not exact(outs[0]) or not prove_equal(as_int(fs[0], ins[0]), sympy.Integer(0)):
        return None
    return sympy.Integer(0)


register(OpDef(name="cumsum", infer=_along_axis_infer("cumsum", float_only=False, int64_for_ints=True),
               dims=_along_axis_dims, elements=_cumsum_elements,
               reference=lambda xp, x, axis: xp.cumsum(x, axis=axis, dtype=x.dtype if x.dtype.kind == "f" else "int64"),
               attrs={"axis": -1}, torch=cumulative("torch.cumsum"), saves=(),
               torch_workspace=TorchWorkspace(aten=_input_in_result_dtype),
               doc="cumsum(x, axis=-1); integers sum to i64." + _ALONG))
