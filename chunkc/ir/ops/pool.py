"""Pooling: max_pool, avg_pool and adaptive_avg_pool over the last 1 to 3 axes.

The spatial axes are the last ``len(kernel)`` axes; every leading axis (batch,
channels) carries.  A spatial axis carries too when its windows tile the
input (kernel <= stride, no padding, input = stride * output; see
:mod:`._window`).  Adaptive pooling's spatial axes mix (a slice would need
another ``output_size``).

The references visit each kernel offset once and fold a strided view of the
input into the output in place: the output is the only allocation.
"""

from __future__ import annotations

import itertools

from ..dims import AxisSource, DimRecord, MIX
from ..kernel_workspace import TorchWorkspace
from ..layout import torch_is_channels_last, torch_is_contiguous
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, product
from ..types import TensorType
from ._common import carry_from, fail, require_float
from ._window import Window, gather_ranges, output_size, spatial_flow, window, window_flow


def _nsp(op: str, x: TensorType, kernel) -> int:
    if not isinstance(kernel, tuple) or not 1 <= len(kernel) <= 3:
        raise fail(op, f"kernel must be a tuple of 1 to 3 ints (one per spatial axis), got {kernel!r}")
    if x.rank <= len(kernel):
        raise fail(op, f"input {x} needs at least one axis (batch or channels) before its "
                       f"{len(kernel)} spatial axes")
    return len(kernel)


def _pool_parts(op: str, ins, attrs) -> tuple[Window, int, tuple[Size, ...]]:
    x = ins[0]
    nsp = _nsp(op, x, attrs["kernel"])
    win = window(op, nsp, attrs["kernel"], attrs["stride"], attrs["padding"], attrs.get("dilation"),
                 stride_default=attrs["kernel"])
    for a in range(nsp):
        limit = win.effective(a) // 2
        for p in win.padding[a]:
            if not isinstance(p, int) or p > limit:
                raise fail(op, f"padding {win.padding[a]} on spatial axis {a} must be ints at most half the "
                               f"kernel's extent ({limit})")
    if not isinstance(attrs["ceil_mode"], bool):
        raise fail(op, f"ceil_mode must be a bool, got {attrs['ceil_mode']!r}")
    lead = x.rank - nsp
    out = tuple(output_size(op, x.shape[lead + a], win, a, attrs["ceil_mode"], what=f"input {x}: ")
                for a in range(nsp))
    return win, lead, x.shape[:lead] + out


def _pool_infer(op: str):
    def infer(ins, attrs):
        _, _, shape = _pool_parts(op, ins, attrs)
        if op == "avg_pool":
            require_float(op, ins[0], "input 0")
        return (ins[0].with_shape(shape),)
    return infer


def _pool_dims(op: str):
    def dims(ins, attrs, outs) -> DimRecord:
        win, lead, shape = _pool_parts(op, ins, attrs)
        x = ins[0]
        flows = [carry_from(AxisSource(0, k)) for k in range(lead)]
        for a in range(win.rank):
            flows.append(spatial_flow(lead + a, x.shape[lead + a], shape[lead + a], win, a)
                         or _pool_window(op, x, attrs, win, lead, a) or MIX)
        return (tuple(flows),)
    return dims


def _pool_window(op: str, x: TensorType, attrs, win: Window, lead: int, a: int):
    """A spatial axis as a window (chunkc.ir.dims.AxisWindow) when explicit padding rows give
    the same result: max pooling pads with -inf (floats only); average pooling pads with zeros
    only when they count in the divisor (count_include_pad) or the axis is not padded.  With
    ceil_mode the last window may hang past the padding: not a window."""
    if attrs["ceil_mode"]:
        return None
    if op == "max_pool":
        if not x.dtype.is_floating:
            return None
        return window_flow(lead + a, win, a, "padding", fill=float("-inf"))
    if not attrs.get("count_include_pad", True) and win.padding[a] != (0, 0):
        return None
    return window_flow(lead + a, win, a, "padding")


def _concrete(op: str, x, attrs) -> tuple[Window, int, tuple[int, ...]]:
    nsp = len(attrs["kernel"])
    win = window(op, nsp, attrs["kernel"], attrs["stride"], attrs["padding"], attrs.get("dilation"),
                 stride_default=attrs["kernel"])
    lead = x.ndim - nsp
    out = tuple([output_size(op, x.shape[lead + a], win, a, attrs["ceil_mode"]) for a in range(nsp)])
    return win, lead, out


def _offsets(win: Window):
    return itertools.product(*[range(k) for k in win.kernel])


# -- max_pool -----------------------------------------------------------------------------------


def _max_pool_ref(xp, x, kernel, stride=None, padding=None, dilation=None, ceil_mode=False):
    win, lead, out_sp = _concrete("max_pool", x, dict(kernel=kernel, stride=stride, padding=padding,
                                                      dilation=dilation, ceil_mode=ceil_mode))
    low = -xp.inf if x.dtype.kind == "f" else (xp.iinfo(x.dtype).min if x.dtype.kind in "iu" else False)
    out = xp.full(x.shape[:lead] + out_sp, low, dtype=x.dtype)
    keep = (slice(None),) * lead
    for offset in _offsets(win):
        ranges = gather_ranges(x.shape[lead:], out_sp, offset, win)
        if ranges is not None:
            dst = out[keep + ranges[0]]
            xp.maximum(dst, x[keep + ranges[1]], out=dst)  # NaN propagates, as in PyTorch
    return out


def _pool_torch(ctx: LoweringContext) -> str:
    """``F.max_pool{n}d`` / ``F.avg_pool{n}d`` where PyTorch takes the case (1 or 2 leading axes,
    symmetric padding), else the runtime's general pool."""
    win, lead, _ = _pool_parts(ctx.op, [ctx.in_type(0)], ctx.attrs)
    nsp = win.rank
    if lead in (1, 2) and win.symmetric:
        pad = ctx.lit(tuple(b for b, _ in win.padding))
        common = f"{ctx.arg(0)}, {ctx.attr('kernel')}, stride={ctx.lit(win.stride)}, padding={pad}"
        if ctx.op == "max_pool":
            return f"F.max_pool{nsp}d({common}, dilation={ctx.lit(win.dilation)}, ceil_mode={ctx.attr('ceil_mode')})"
        return (f"F.avg_pool{nsp}d({common}, ceil_mode={ctx.attr('ceil_mode')}, "
                f"count_include_pad={ctx.attr('count_include_pad')})")
    out_size = ctx.lit(ctx.out_type().shape[lead:])
    if ctx.op == "max_pool":
        return (f"rt.max_pool({ctx.arg(0)}, {ctx.attr('kernel')}, {ctx.lit(win.stride)}, {ctx.lit(win.padding)}, "
                f"{ctx.lit(win.dilation)}, {ctx.attr('ceil_mode')}, {out_size})")
    return (f"rt.avg_pool({ctx.arg(0)}, {ctx.attr('kernel')}, {ctx.lit(win.stride)}, {ctx.lit(win.padding)}, "
            f"{ctx.attr('ceil_mode')}, {ctx.attr('count_include_pad')}, {out_size})")


# -- what PyTorch's pools allocate besides the output ------------------------------------------


def _pool_bytes(op: str, ins, attrs, outs, device: str) -> Size:
    """``F.max_pool`` computes int64 indices too (but the CPU's 1-d one); rt's general pool
    (other leading axes, padding that differs at the two ends) pads the flattened input,
    pools it and crops the result (avg_pool without count_include_pad divides by the pooled
    mask of real elements)."""
    win, lead, shape = _pool_parts(op, ins, attrs)
    x, out = ins[0], outs[0]
    item, nsp = x.dtype.itemsize, win.rank
    indices = op == "max_pool" and not (device == "cpu" and nsp == 1)
    if lead in (1, 2) and win.symmetric:
        return out.numel() * 8 if indices else 0
    if not all(isinstance(d, int) for d in x.shape):
        return 0
    n = product(x.shape[:lead])
    spatial = x.shape[lead:]
    padded_sp = tuple(spatial[a] + b + e for a, (b, e) in enumerate(win.padding))
    flat = Window(win.kernel, win.stride, win.dilation, ((0, 0),) * nsp)
    pooled_sp = tuple(output_size(op, padded_sp[a], flat, a, attrs["ceil_mode"]) for a in range(nsp))
    pads = padded_sp != tuple(spatial)
    padded = n * product(padded_sp) * item if pads else 0
    pooled = n * product(pooled_sp) * item
    out_b = out.numel() * item
    cropped = out_b if pooled_sp != tuple(shape[lead:]) else 0  # else the pooled tensor is the output
    stages = [padded + pooled + (n * product(pooled_sp) * 8 if indices else 0), padded + pooled + cropped]
    if op == "avg_pool" and pads and not attrs["count_include_pad"]:
        mask, mask_padded, mask_pooled = product(spatial) * item, product(padded_sp) * item, product(pooled_sp) * item
        stages += [padded + pooled + mask + mask_padded, padded + mask_padded + mask_pooled + 2 * pooled,
                   padded + mask_padded + pooled + cropped]
    return max(stages) - out_b


def _pool_input_copy(op: str, ins, attrs, outs, strides) -> Size:
    """PyTorch's CPU pools (``F.max_pool``/``F.avg_pool``, as lowered) read a dense input
    only: ``max_pool1d`` (no indices) copies any input that is not contiguous, the others any
    that is neither contiguous nor channels-last (``avg_pool1d`` pools ``x.unsqueeze(-2)``).
    A chunk sliced along an axis after the first of a contiguous value, or a permuted view
    (a sequence model's ``[B, L, D] -> [B, D, L]``), is copied whole before pooling."""
    win, lead, _ = _pool_parts(op, ins, attrs)
    x = ins[0]
    if not (lead in (1, 2) and win.symmetric) or not strides or not strides[0] \
            or not all(isinstance(d, int) for d in x.shape):
        return 0  # rt's general pool pads (a fresh, dense copy counted by _pool_bytes) or reshapes
    shape, st = tuple(x.shape), tuple(strides[0])
    if torch_is_contiguous(shape, st):
        return 0
    if not (op == "max_pool" and win.rank == 1):
        if win.rank == 1:  # avg_pool1d: x.unsqueeze(-2) (the new axis has size 1: its stride is ignored)
            shape, st = shape[:-1] + (1,) + shape[-1:], st[:-1] + (1,) + st[-1:]
        if torch_is_channels_last(shape, st):
            return 0
    return x.numel() * x.dtype.itemsize


def _pool_workspace(op: str) -> TorchWorkspace:
    return TorchWorkspace(cpu=lambda ins, a, outs: _pool_bytes(op, ins, a, outs, "cpu"),
                          cuda=lambda ins, a, outs: _pool_bytes(op, ins, a, outs, "cuda"),
                          cpu_layout=lambda ins, a, outs, strides: _pool_input_copy(op, ins, a, outs, strides))


_WINDOW_DOC = ("kernel, stride (None: kernel), padding (begin, end) pairs (None: 0; at most half the kernel), "
               "ceil_mode=False")
register(OpDef(
    name="max_pool", infer=_pool_infer("max_pool"), dims=_pool_dims("max_pool"), reference=_max_pool_ref,
    attrs={"kernel": REQUIRED, "stride": None, "padding": None, "dilation": None, "ceil_mode": False},
    flops=lambda ins, a, outs: outs[0].numel() * product(a["kernel"]), torch=_pool_torch,
    torch_workspace=_pool_workspace("max_pool"),
    doc=f"max_pool(x[..., *S], {_WINDOW_DOC}, dilation=None): the maximum of each window over the last "
        "len(kernel) axes; padding never wins. Carries: every leading axis; a spatial axis whose windows tile "
        "the input (ratio stride); without ceil_mode, any other of a float input is a window (-inf padding)."))


# -- avg_pool -----------------------------------------------------------------------------------


def _avg_divisors(n_in: int, n_out: int, k: int, s: int, pb: int, pe: int, include_pad: bool) -> list[int]:
    """PyTorch's divisor per output position along one axis."""
    out = []
    for o in range(n_out):
        start = o * s - pb
        end = min(start + k, n_in + pe)
        out.append(end - start if include_pad else min(end, n_in) - max(start, 0))
    return out


def _avg_pool_ref(xp, x, kernel, stride=None, padding=None, ceil_mode=False, count_include_pad=True):
    win, lead, out_sp = _concrete("avg_pool", x, dict(kernel=kernel, stride=stride, padding=padding,
                                                      ceil_mode=ceil_mode))
    out = xp.zeros(x.shape[:lead] + out_sp, dtype=x.dtype)
    keep = (slice(None),) * lead
    for offset in _offsets(win):
        ranges = gather_ranges(x.shape[lead:], out_sp, offset, win)
        if ranges is not None:
            out[keep + ranges[0]] += x[keep + ranges[1]]
    nsp = len(out_sp)
    for a in range(nsp):  # the divisor is a product over axes: divide axis by axis, in place
        pb, pe = win.padding[a]
        d = _avg_divisors(x.shape[lead + a], out_sp[a], win.kernel[a], win.stride[a], pb, pe, count_include_pad)
        out /= xp.asarray(d, dtype=x.dtype).reshape((-1,) + (1,) * (nsp - 1 - a))
    return out


register(OpDef(
    name="avg_pool", infer=_pool_infer("avg_pool"), dims=_pool_dims("avg_pool"), reference=_avg_pool_ref,
    attrs={"kernel": REQUIRED, "stride": None, "padding": None, "ceil_mode": False, "count_include_pad": True},
    flops=lambda ins, a, outs: outs[0].numel() * product(a["kernel"]), torch=_pool_torch,
    torch_workspace=_pool_workspace("avg_pool"),
    doc=f"avg_pool(x[..., *S], {_WINDOW_DOC}, count_include_pad=True): the mean of each window (PyTorch's "
        "divisor). Carries: every leading axis; a spatial axis whose windows tile the input (ratio stride); "
        "without ceil_mode, any other is a window (zero padding; not when count_include_pad=False pads it)."))


# -- adaptive_avg_pool ------------------------------------------------------------------------------


def _adaptive_infer(ins, attrs):
    x = ins[0]
    size = attrs["output_size"]
    require_float("adaptive_avg_pool", x, "input 0")
    if not isinstance(size, tuple) or not 1 <= len(size) <= 3 or \
            any(isinstance(s, int) and s < 1 for s in size):
        raise fail("adaptive_avg_pool", f"output_size must be a tuple of 1 to 3 positive sizes, got {size!r}")
    if x.rank <= len(size):
        raise fail("adaptive_avg_pool", f"input {x} needs at least one axis before its {len(size)} spatial axes")
    return (x.with_shape(x.shape[:x.rank - len(size)] + size),)


def _adaptive_dims(ins, attrs, outs) -> DimRecord:
    x, nsp = ins[0], len(attrs["output_size"])
    return (tuple(carry_from(AxisSource(0, k)) for k in range(x.rank - nsp)) + (MIX,) * nsp,)


def _adaptive_ref(xp, x, output_size):
    nsp = len(output_size)
    lead = x.ndim - nsp
    out = xp.empty(x.shape[:lead] + tuple(output_size), dtype=x.dtype)
    spans = []
    for a, n_out in enumerate(output_size):
        n_in = x.shape[lead + a]  # window i covers [floor(i*in/out), ceil((i+1)*in/out))
        spans.append([(i, slice(i * n_in // n_out, -(-(i + 1) * n_in // n_out))) for i in range(n_out)])
    axes = tuple(range(lead, x.ndim))
    keep = (slice(None),) * lead
    for cell in itertools.product(*spans):
        index = tuple([i for i, _ in cell])
        xp.mean(x[keep + tuple([s for _, s in cell])], axis=axes, out=out[keep + index])
    return out


def _adaptive_torch(ctx: LoweringContext) -> str:
    nsp = len(ctx.attrs["output_size"])
    if ctx.in_type(0).rank - nsp in (1, 2):
        return f"F.adaptive_avg_pool{nsp}d({ctx.arg(0)}, {ctx.attr('output_size')})"
    return f"rt.adaptive_avg_pool({ctx.arg(0)}, {ctx.attr('output_size')})"


register(OpDef(
    name="adaptive_avg_pool", infer=_adaptive_infer, dims=_adaptive_dims, reference=_adaptive_ref,
    torch=_adaptive_torch,
    attrs={"output_size": REQUIRED}, size_attrs=("output_size",), flops=lambda ins, a, outs: ins[0].numel(),
    doc="adaptive_avg_pool(x[..., *S], output_size): window i of an axis covers [floor(i*S/out), "
        "ceil((i+1)*S/out)). Carries: every leading axis."))
