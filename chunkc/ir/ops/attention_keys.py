"""Attention split over its key axis, so that a chunk loop can slice the keys.

``scaled_dot_product_attention`` mixes its key axis (a softmax over it), so no loop
slices K and V: a loop over query rows reads them whole.  Its record's
``split_accumulating`` rewrites it into one op that *accumulates* over the keys in one
pass (chunkc.ir.dims.Accumulation; keys are input 0, the values and a mask's key axis
are sliced chunk for chunk with them),

* ``attention_partial(k, v, q, mask?)`` -> ``[..., L, Ev + 1]``: the attention over the given
  keys normalized over them, with its log-sum-exp as one more last column (zeros and -inf
  where a query attends no key); slices merge with ``softmax_merge`` (chunkc.ir.dims.Combine:
  the online softmax of flash attention),

and ``slice(.., -1, 0, Ev)`` of it (the keys' loop ends at the partial, an outer loop over
queries runs the slice).  The split is planned only where the budget needs it
(chunkc.passes.autochunk: a fallback variant, chunkc.passes.split_statistics fuses back
splits no region runs).  With ``is_causal``, query i (at row i + ``query_offset``)
attends key j (at row j + ``key_offset``) when j + key_offset <= i + query_offset; a
loop over keys moves ``key_offset`` (the record's ``offset_attr``), one over queries
``query_offset`` (``slice_attrs``).  Attributes and other rules are SDPA's.

The NumPy reference runs two passes over the scores: their log-sum-exp over the keys, then
the sum over the keys of exp(score - lse) * v (zeros where lse is -inf, as PyTorch's safe
softmax); its workspace counts both.
"""

from __future__ import annotations

import math

from ..dims import Accumulation, AxisFlow, AxisSource, DimRecord
from ..dtypes import DType
from ..kernel_workspace import TorchWorkspace, acc_dtype, autograd_records
from ..lowering import LoweringContext
from ..registry import OpDef, register
from ..sizes import Size, ceildiv, normalize, product, size_max
from ..types import TensorType
from ._common import fail, is_one
from .attention import (_apply_mask, _flash_cpu_call, _groups, _parts, _sdpa_dims, _sdpa_slice, attended_numel,
                        cpu_flash_takes)

_ATTRS = {"is_causal": False, "scale": None, "query_offset": 0, "key_offset": 0, "enable_gqa": False}
PARTIAL = "attention_partial"
_SDPA_POSITIONS = (2, 0, 1, 3)  # the input positions of SDPA's (q, k, v, mask)


def _as_sdpa(ins) -> list:
    """The op's inputs in SDPA's order (q, k, v[, mask])."""
    return [ins[p] for p in _SDPA_POSITIONS[:len(ins)]]


def _sdpa_attrs(attrs) -> dict:
    return {k: v for k, v in attrs.items() if k != "key_offset"}


def _check(ins, attrs):
    sdpa = _as_sdpa(ins)
    offset = attrs["key_offset"]
    if not (isinstance(offset, int) and offset == 0) and not attrs["is_causal"]:
        raise fail(PARTIAL, "key_offset places causal keys; it needs is_causal=True")
    if isinstance(offset, bool) or (isinstance(offset, int) and offset < 0):
        raise fail(PARTIAL, f"key_offset must be a size >= 0, got {offset!r}")
    dtypes = {t.dtype for t in sdpa[:3]} | ({sdpa[3].dtype} if len(sdpa) == 4 and sdpa[3].dtype != DType.bool else set())
    if len(dtypes) != 1:
        raise fail(PARTIAL, f"q, k, v and a float mask must share one dtype, got {', '.join(str(t) for t in sdpa)}")
    sdpa_attrs = _sdpa_attrs(attrs)
    return sdpa, sdpa_attrs, _parts(sdpa, sdpa_attrs)[2]


def _partial_infer(ins, attrs):
    sdpa, _, batch = _check(ins, attrs)
    q, v = sdpa[0], sdpa[2]
    return (TensorType(q.dtype, batch + (q.shape[-2], normalize(v.shape[-1] + 1))),)


def _remap(flow: AxisFlow) -> AxisFlow:
    """An SDPA axis flow with its inputs renumbered to the op's (each source once)."""
    sources: list[AxisSource] = []
    for s in flow.sources:
        moved = AxisSource(_SDPA_POSITIONS[s.input], s.axis, s.ratio, s.window)
        if moved not in sources:
            sources.append(moved)
    return AxisFlow(flow.kind, tuple(sources), flow.positional) if sources else AxisFlow("new")


def _dims(ins, attrs, outs) -> DimRecord:
    sdpa, sdpa_attrs, _ = _check(ins, attrs)
    v = sdpa[2]
    sdpa_out = TensorType(outs[0].dtype, outs[0].shape[:-1] + (v.shape[-1],))
    flows = [_remap(f) for f in _sdpa_dims(sdpa, sdpa_attrs, (sdpa_out,))[0]]
    flows[-1] = AxisFlow("new")  # the values with the log-sum-exp column beside them
    return (tuple(flows),)


def _accumulates(ins, attrs, input: int, axis: int) -> Accumulation | None:
    k = ins[0]
    if input != 0 or axis != k.rank - 2:
        return None
    partners = [(1, ins[1].rank - 2)]
    mask = _SDPA_POSITIONS[3]
    if len(ins) > mask and ins[mask].rank >= 1 and not is_one(ins[mask].shape[-1]):
        partners.append((mask, ins[mask].rank - 1))
    # causal keys are placed: a loop moves key_offset to its slice's first key
    return Accumulation("softmax_merge", partners=tuple(partners),
                        offset_attr="key_offset" if attrs["is_causal"] else None)


def _scale(q, scale) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


# -- the NumPy reference: the scores [..., L, S] once per pass, worked on in place ---------------


def _ref_scores(xp, q, k, mask, is_causal, scale, query_offset, key_offset, enable_gqa):
    if enable_gqa:
        k = xp.repeat(k, q.shape[-3] // k.shape[-3], axis=-3)
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2))
    scores *= _scale(q, scale)
    if is_causal:
        rows = xp.arange(scores.shape[-2])[:, None] + query_offset
        cols = xp.arange(scores.shape[-1])[None, :] + key_offset
        xp.copyto(scores, -xp.inf, where=cols > rows)
    elif mask is not None:
        _apply_mask(xp, scores, mask)
    return scores


def _lse_ref(xp, k, q, mask=None, is_causal=False, scale=None, query_offset=0, key_offset=0, enable_gqa=False):
    """The first pass: log of the sum over the keys of exp(score), [..., L, 1] (-inf where a
    query attends no key)."""
    scores = _ref_scores(xp, q, k, mask, is_causal, scale, query_offset, key_offset, enable_gqa)
    m = xp.max(scores, axis=-1, keepdims=True)
    m[xp.isneginf(m)] = 0
    scores -= m
    xp.exp(scores, out=scores)
    total = xp.sum(scores, axis=-1, keepdims=True)
    del scores
    empty = total == 0  # no key attended: -inf (log of 1 there, then replaced: no warning)
    out = xp.log(xp.where(empty, 1, total).astype(total.dtype))
    out[empty] = -xp.inf
    out += m
    return out


def _apply_ref(xp, k, v, q, lse, mask=None, is_causal=False, scale=None, query_offset=0, key_offset=0,
               enable_gqa=False):
    """The second pass: the sum over the keys of exp(score - lse) * v, [..., L, Ev] (zeros
    where lse is -inf)."""
    scores = _ref_scores(xp, q, k, mask, is_causal, scale, query_offset, key_offset, enable_gqa)
    scores -= xp.where(xp.isneginf(lse), 0, lse).astype(scores.dtype)
    xp.exp(scores, out=scores)
    if enable_gqa:
        v = xp.repeat(v, q.shape[-3] // v.shape[-3], axis=-3)
    return xp.matmul(scores, v)


def _partial_ref(xp, k, v, q, mask=None, is_causal=False, scale=None, query_offset=0, key_offset=0, enable_gqa=False):
    attrs = dict(is_causal=is_causal, scale=scale, query_offset=query_offset, key_offset=key_offset,
                 enable_gqa=enable_gqa)
    lse = _lse_ref(xp, k, q, mask, **attrs)
    out = _apply_ref(xp, k, v, q, lse, mask, **attrs)
    return xp.concatenate([out, xp.broadcast_to(lse, out.shape[:-1] + (1,)).astype(out.dtype)], axis=-1)


def _rows_scores(sdpa: list, attrs) -> tuple[Size, Size]:
    """Elements of the query rows (every batch axis) and of the scores [..., L, S] of SDPA's
    inputs ``sdpa`` (q, k, v[, mask])."""
    batch = _parts(sdpa, _sdpa_attrs(attrs))[2]
    rows = normalize(product(batch) * sdpa[0].shape[-2])
    return rows, normalize(rows * sdpa[1].shape[-2])


def _mask_bools(sdpa: list, attrs) -> Size:
    """Bytes of the bool mask the scores are filled through: the causal rows, or a bool mask negated."""
    if attrs["is_causal"]:
        return normalize(sdpa[0].shape[-2] * sdpa[1].shape[-2])
    if len(sdpa) == 4 and sdpa[3].dtype == DType.bool:
        return sdpa[3].numel()
    return 0


def _pass_workspace(sdpa: list, attrs, out: TensorType, values_read: bool) -> Size:
    """Elements a pass of the reference over SDPA's inputs ``sdpa`` (q, k, v[, mask]) takes
    beside its result ``out``: the scores with the repeated keys and the mask's bools, before
    the result exists; then the scores beside it, with the values repeated for grouped queries
    (``values_read``: the second pass) or a few rows."""
    rows, scores = _rows_scores(sdpa, attrs)
    k, v = sdpa[1], sdpa[2]
    groups = _groups(sdpa) if attrs["enable_gqa"] else 1
    keys = normalize(groups * k.numel()) if groups > 1 else 0
    values = normalize(groups * v.numel()) if groups > 1 and values_read else 0
    masking = normalize(scores + keys + ceildiv(_mask_bools(sdpa, attrs), out.dtype.itemsize) - out.numel())
    return size_max(masking, normalize(scores + values + 2 * rows))


def _partial_numpy_workspace(ins, attrs, outs) -> Size:
    # the log-sum-exp pass (which reads no values: k stands in for them); the second pass
    # beside its lse; both beside the output (the concat)
    sdpa = _as_sdpa(ins)
    q, k, v, mask = sdpa[0], sdpa[1], sdpa[2], sdpa[3:]
    out = outs[0]
    lse = TensorType(out.dtype, out.shape[:-1] + (1,))
    values = TensorType(out.dtype, out.shape[:-1] + (v.shape[-1],))
    first = _pass_workspace([q, k, k] + mask, attrs, lse, values_read=False) + lse.numel()
    second = lse.numel() + _pass_workspace([q, k, v] + mask, attrs, values, values_read=True) + values.numel()
    return normalize(size_max(first, second, lse.numel() + values.numel() + out.numel()) - out.numel())


def _partial_rows(ins, attrs, outs) -> tuple[Size, Size, Size, Size]:
    """Bytes of (the keys and values repeated for grouped queries, the normalized values [.., L, Ev],
    one float log-sum-exp per row, the [.., L, S] score tile)."""
    sdpa, _, batch = _check(ins, attrs)
    q, k, v = sdpa[:3]
    item = outs[0].dtype.itemsize
    groups = _groups(sdpa) if attrs["enable_gqa"] else 1
    repeated = normalize(groups * (k.numel() + v.numel()) * item) if groups > 1 else 0
    rows = normalize(product(batch) * q.shape[-2])
    values = normalize(rows * v.shape[-1] * item)
    return repeated, values, normalize(rows * acc_dtype(outs[0].dtype).itemsize), normalize(rows * k.shape[-2] * item)


def _partial_runs_flash(ins, attrs, outs) -> bool:
    """Whether rt.attention_partial runs the CPU flash kernel: no mask, and the kernel takes the
    operands (:func:`cpu_flash_takes`; grouped key and value heads read in place)."""
    sdpa = _as_sdpa(ins)
    if len(sdpa) == 4:
        return False
    q, k, v = sdpa
    return cpu_flash_takes(q.shape, k.shape, v.shape, outs[0].dtype.name, autograd_records(attrs),
                           grouped=attrs["enable_gqa"])


def _partial_scores_workspace(ins, attrs, outs) -> Size:
    """The reference formula, before the output exists: the score tile with the mask's bools,
    then with the row maxima and sums and the normalized values beside it; then the values and
    the two row columns beside the output."""
    repeated, values, lse, scores = _partial_rows(ins, attrs, outs)
    rows = 2 * ceildiv(lse, acc_dtype(outs[0].dtype).itemsize) * outs[0].dtype.itemsize
    tile = repeated + scores + size_max(_mask_bools(_as_sdpa(ins), attrs), rows + values)
    return normalize(size_max(tile - outs[0].numel() * outs[0].dtype.itemsize, repeated + values + rows))


def _partial_cpu_workspace(ins, attrs, outs) -> Size:
    """The CPU flash kernel, before the output exists: one call; or, causal keys placed past the
    rows' first, two merged, the first call's values and lse beside the second's and its
    buffers, then the row merge's few [.., L] columns; or, keys placed past the first rows,
    zeros and -inf for those rows beside a call on the others; then the values and lse beside
    the output."""
    if not _partial_runs_flash(ins, attrs, outs):
        return _partial_scores_workspace(ins, attrs, outs)
    _, values, lse, _ = _partial_rows(ins, attrs, outs)  # (grouped key heads read in place)
    q, k, v = _as_sdpa(ins)[:3]
    values_type = TensorType(outs[0].dtype, outs[0].shape[:-1] + (v.shape[-1],))
    shift, keys = attrs["query_offset"] - attrs["key_offset"], k.shape[-2]
    known = isinstance(shift, int) and isinstance(keys, int)
    if not attrs["is_causal"] or (known and (shift == 0 or shift >= keys - 1)):
        calls = values + _flash_cpu_call(q, keys, values_type)  # (a call's buffers hold its lse)
    elif known and shift < 0:  # the rows before -shift attend none: zeros and -inf, one call on the others
        rows = q.shape[-2]
        seen = max(rows + shift, 0) if isinstance(rows, int) else rows
        seen_q = TensorType(q.dtype, q.shape[:-2] + (seen, q.shape[-1]))
        calls = values + lse + (normalize(values // rows * seen) + _flash_cpu_call(seen_q, keys, values_type)
                                if seen else 0)
    else:  # the keys every row sees, then the causal square beside the first call's results
        first, square = (shift, keys - shift) if known and shift > 0 else (keys, keys)
        calls = size_max(values + _flash_cpu_call(q, first, values_type),
                         2 * values + size_max(lse + _flash_cpu_call(q, square, values_type), 5 * lse))
    return normalize(size_max(calls - outs[0].numel() * outs[0].dtype.itemsize, values + lse))


def _partial_lowering(ctx: LoweringContext) -> str:
    n = ctx.num_inputs()
    args = [ctx.arg(i) for i in range(3)]
    mask = ctx.arg(3) if n > 3 else "None"
    q, k = ctx.in_type(2), ctx.in_type(0)
    groups = q.shape[-3] // k.shape[-3] if ctx.attrs["enable_gqa"] else 1
    scale = _scale(q, ctx.attrs["scale"])
    return (f"rt.attention_partial({', '.join(args)}, {mask}, {ctx.attr('is_causal')}, {scale!r}, "
            f"{ctx.attr('query_offset')}, {ctx.attr('key_offset')}, {groups})")


def _partial_flops(ins, attrs, outs) -> Size:
    sdpa = _as_sdpa(ins)
    batch = product(_parts(sdpa, _sdpa_attrs(attrs))[2])
    scores = attended_numel(sdpa[0], sdpa[1], batch, attrs, attrs["key_offset"])  # the causal rule's pairs
    return normalize(2 * scores * (sdpa[0].shape[-1] + sdpa[2].shape[-1]) + 4 * scores)


def _partial_rows_kernel(ins, attrs) -> str | None:
    """The flash kernel's per-row curve (OpDef.rows_kernel) where rt.attention_partial calls it
    (:func:`_partial_runs_flash`); otherwise the scores are written out, products priced by their rows."""
    if not _partial_runs_flash(ins, attrs, (_as_sdpa(ins)[0],)):  # the output has q's dtype
        return None
    return "causal" if attrs["is_causal"] else "none"


register(OpDef(
    name=PARTIAL, infer=_partial_infer, dims=_dims, reference=_partial_ref, num_inputs=(3, 4),
    attrs=dict(_ATTRS), size_attrs=("query_offset", "key_offset"), accumulates=_accumulates,
    workspace=_partial_numpy_workspace, flops=_partial_flops, slice_attrs=_sdpa_slice, torch=_partial_lowering,
    torch_workspace=TorchWorkspace(cpu=_partial_cpu_workspace, cuda=_partial_scores_workspace),
    saves=("inputs", "outputs"), rows_kernel=_partial_rows_kernel,
    doc="attention_partial(k[..., S, E], v[..., S, Ev], q[..., L, E], mask?, is_causal=False, scale=None, "
        "query_offset=0, key_offset=0, enable_gqa=False) -> [..., L, Ev + 1]: SDPA over these keys ([..., :Ev]) "
        "with the log-sum-exp of each query's scores ([..., Ev]; zeros and -inf where a query attends no key); "
        "with is_causal, query i attends key j when j + key_offset <= i + query_offset. Carries: SDPA's batch "
        "and query axes. Accumulates over the keys (axis -2 of k and v, the mask's last axis alike; key_offset "
        "moved by the slice) with softmax_merge: slices of the keys merge into the attention over all of them "
        "in one pass (the online softmax)."))
