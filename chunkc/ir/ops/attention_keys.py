"""Attention split over its key axis, so that a chunk loop can slice the keys.

``scaled_dot_product_attention`` mixes its key axis (a softmax over it), so no loop
slices K and V: a loop over query rows reads them whole.  Split in two, each part
*accumulates* over the keys (chunkc.ir.dims.Accumulation; keys are input 0, the
values and a mask's key axis are sliced chunk for chunk with them):

* ``attention_logsumexp(k, q, mask?)`` -> ``[..., L, 1]``: log of the sum over the keys
  of exp(score) for each query (-inf where a query attends no key); slices merge
  with ``logaddexp``;
* ``attention_apply(k, v, q, lse, mask?)`` -> ``[..., L, Ev]``: the sum over the keys of
  exp(score - lse) * v (zeros where lse is -inf, as PyTorch's safe softmax); slices
  merge by addition.

``attention_apply(k, v, q, attention_logsumexp(k, q, mask), mask)`` equals
``scaled_dot_product_attention(q, k, v, mask)``.  The scores are computed twice (once in
each part), so a loop over the keys would run twice: SDPA splits instead into one op that
accumulates in one pass,

* ``attention_partial(k, v, q, mask?)`` -> ``[..., L, Ev + 1]``: the attention over the given
  keys normalized over them, with its log-sum-exp as one more last column (zeros and -inf
  where a query attends no key); slices merge with ``softmax_merge`` (chunkc.ir.dims.Combine:
  the online softmax of flash attention),

and ``slice(.., -1, 0, Ev)`` of it (the keys' loop ends at the partial, an outer loop over
queries runs the slice).  The split is planned only where the budget needs it
(chunkc.passes.autochunk: a fallback variant, chunkc.passes.split_statistics fuses back
splits no region runs).  With ``is_causal``, query i (at row i + ``query_offset``)
attends key j (at row j + ``key_offset``) when j + key_offset <= i + query_offset; a
loop over keys moves ``key_offset`` (the records' ``offset_attr``), one over queries
``query_offset`` (``slice_attrs``).  Attributes and other rules are SDPA's.
"""

from __future__ import annotations

import math

from ..dims import Accumulation, AxisFlow, AxisSource, DimRecord
from ..dtypes import DType
from ..kernel_workspace import TorchWorkspace, acc_dtype, autograd_records
from ..lowering import LoweringContext
from ..layout import contiguous_strides
from ..registry import OpDef, register
from ..sizes import Size, ceildiv, normalize, product, size_max, sizes_equal
from ..types import TensorType
from ._contraction_copies import matmul_layout_copies
from ._common import broadcast_shapes, fail, is_one
from .attention import _apply_mask, _flash_cpu_call, _groups, _parts, _sdpa_dims, _sdpa_slice, attended_numel

_ATTRS = {"is_causal": False, "scale": None, "query_offset": 0, "key_offset": 0, "enable_gqa": False}
LSE, APPLY, PARTIAL = "attention_logsumexp", "attention_apply", "attention_partial"
# input positions of (q, k, v, mask) in each op (the logsumexp reads no values: k stands in for them)
_SDPA_POSITIONS = {LSE: (1, 0, 0, 2), APPLY: (2, 0, 1, 4), PARTIAL: (2, 0, 1, 3)}


def _as_sdpa(op: str, ins) -> list:
    """The op's inputs in SDPA's order (q, k, v[, mask])."""
    pos = _SDPA_POSITIONS[op]
    mask = pos[3] if len(ins) > pos[3] else None
    return [ins[p] for p in pos[:3]] + ([ins[mask]] if mask is not None else [])


def _check(op: str, ins, attrs):
    sdpa = _as_sdpa(op, ins)
    offset = attrs["key_offset"]
    if not (isinstance(offset, int) and offset == 0) and not attrs["is_causal"]:
        raise fail(op, "key_offset places causal keys; it needs is_causal=True")
    if isinstance(offset, bool) or (isinstance(offset, int) and offset < 0):
        raise fail(op, f"key_offset must be a size >= 0, got {offset!r}")
    dtypes = {t.dtype for t in sdpa[:3]} | ({sdpa[3].dtype} if len(sdpa) == 4 and sdpa[3].dtype != DType.bool else set())
    if len(dtypes) != 1:
        raise fail(op, f"q, k, v and a float mask must share one dtype, got {', '.join(str(t) for t in sdpa)}")
    sdpa_attrs = {k: v for k, v in attrs.items() if k != "key_offset"}
    return sdpa, sdpa_attrs, _parts(sdpa, sdpa_attrs)[2]


def _lse_infer(ins, attrs):
    sdpa, _, batch = _check(LSE, ins, attrs)
    return (TensorType(sdpa[0].dtype, batch + (sdpa[0].shape[-2], 1)),)


def _apply_infer(ins, attrs):
    sdpa, _, batch = _check(APPLY, ins, attrs)
    q, lse = sdpa[0], ins[3]
    want = batch + (q.shape[-2], 1)
    if lse.dtype != q.dtype or lse.rank > len(want) or not all(
            is_one(a) or sizes_equal(a, b) for a, b in zip(lse.shape[::-1], want[::-1])) or not is_one(lse.shape[-1]):
        raise fail(APPLY, f"lse (input 3) {lse} must be attention_logsumexp's result [..., L, 1] in {q.dtype}")
    return (TensorType(q.dtype, batch + (q.shape[-2], sdpa[2].shape[-1])),)


def _remap(flow: AxisFlow, pos: tuple[int, ...], keep_values: bool) -> AxisFlow:
    """An SDPA axis flow with its inputs renumbered to the op's (each source once)."""
    sources: list[AxisSource] = []
    for s in flow.sources:
        if s.input == 2 and not keep_values:
            continue
        moved = AxisSource(pos[s.input], s.axis, s.ratio, s.window)
        if moved not in sources:
            sources.append(moved)
    return AxisFlow(flow.kind, tuple(sources), flow.positional) if sources else AxisFlow("new")


def _dims(op: str):
    def dims(ins, attrs, outs) -> DimRecord:
        sdpa, sdpa_attrs, _ = _check(op, ins, attrs)
        pos = _SDPA_POSITIONS[op]
        v = sdpa[2]
        sdpa_out = TensorType(outs[0].dtype, outs[0].shape[:-1] + (v.shape[-1],))
        flows = [_remap(f, pos, op != LSE) for f in _sdpa_dims(sdpa, sdpa_attrs, (sdpa_out,))[0]]
        if op != APPLY:  # the log-sum-exp column (and the partial's values beside it)
            flows[-1] = AxisFlow("new")
        else:  # the log-sum-exp (one row per query head) carries the axes it is not broadcast along
            lse, rank = ins[3], outs[0].rank
            for k in range(rank - 1):
                j = lse.rank - rank + k
                if j >= 0 and not (is_one(lse.shape[j]) and not is_one(outs[0].shape[k])) and flows[k].kind == "carry":
                    flows[k] = AxisFlow("carry", flows[k].sources + (AxisSource(3, j),), flows[k].positional)
        return (tuple(flows),)
    return dims


def _accumulates(op: str, combine: str):
    def accumulates(ins, attrs, input: int, axis: int) -> Accumulation | None:
        k = ins[0]
        if input != 0 or axis != k.rank - 2:
            return None
        partners = [(1, ins[1].rank - 2)] if op != LSE else []
        mask = _SDPA_POSITIONS[op][3]
        if len(ins) > mask and ins[mask].rank >= 1 and not is_one(ins[mask].shape[-1]):
            partners.append((mask, ins[mask].rank - 1))
        # causal keys are placed: a loop moves key_offset to its slice's first key
        return Accumulation(combine, partners=tuple(partners), offset_attr="key_offset" if attrs["is_causal"] else None)
    return accumulates


def _scale(q, scale) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


# -- the NumPy reference: the scores [..., L, S] once, worked on in place ----------------------


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
    scores = _ref_scores(xp, q, k, mask, is_causal, scale, query_offset, key_offset, enable_gqa)
    scores -= xp.where(xp.isneginf(lse), 0, lse).astype(scores.dtype)
    xp.exp(scores, out=scores)
    if enable_gqa:
        v = xp.repeat(v, q.shape[-3] // v.shape[-3], axis=-3)
    return xp.matmul(scores, v)


def _score_parts(op: str, ins, attrs) -> tuple[Size, Size, Size, Size]:
    """Elements of the scores, of the keys and of the values repeated for grouped queries (0
    without), and of the query rows."""
    sdpa, sdpa_attrs, batch = _check(op, ins, attrs)
    q, k, v = sdpa[:3]
    groups = _groups(sdpa) if attrs["enable_gqa"] else 1
    rows = normalize(product(batch) * q.shape[-2])
    keys = normalize(groups * k.numel()) if groups > 1 else 0
    values = normalize(groups * v.numel()) if groups > 1 and op == APPLY else 0
    return normalize(rows * k.shape[-2]), keys, values, rows


def _mask_bools(op: str, ins, attrs) -> Size:
    """Bytes of the bool mask the scores are filled through: the causal rows, or a bool mask negated."""
    sdpa = _as_sdpa(op, ins)
    if attrs["is_causal"]:
        return normalize(sdpa[0].shape[-2] * sdpa[1].shape[-2])
    if len(sdpa) == 4 and sdpa[3].dtype == DType.bool:
        return sdpa[3].numel()
    return 0


def _numpy_workspace(op: str):
    def workspace(ins, attrs, outs) -> Size:
        # the scores with the repeated keys and the mask's bools, before the output exists;
        # then the scores beside the output, with the repeated values or a few rows
        scores, keys, values, rows = _score_parts(op, ins, attrs)
        item = outs[0].dtype.itemsize
        masking = normalize(scores + keys + ceildiv(_mask_bools(op, ins, attrs), item) - outs[0].numel())
        return size_max(masking, normalize(scores + values + 2 * rows))
    return workspace


# -- PyTorch: chunkc.backends.torch_runtime.attention_logsumexp / attention_apply ---------------
#
# Both make the scores with torch.matmul (q copied where its batch axes do not flatten, the keys
# repeated for grouped queries), scale them in place and fill masked ones through a bool mask
# ([L, S] causal rows, or a bool mask negated); the log-sum-exp then holds the row maxima and
# their -inf test beside the scores, the apply pass a copy of the lse and its test, then the
# values repeated for grouped queries and matmul's copy of them.


def _q_copy(op: str, ins, attrs, strides) -> Size:
    """What matmul copies of q and k^T (scores = q @ k^T) in the layouts it is given (the keys
    repeated for grouped queries are a fresh, dense tensor)."""
    pos = _SDPA_POSITIONS[op]
    q, k = _as_sdpa(op, ins)[:2]
    if not strides[pos[0]] or not strides[pos[1]]:
        return 0
    if attrs["enable_gqa"]:
        k = TensorType(k.dtype, k.shape[:-3] + (q.shape[-3],) + k.shape[-2:])
        k_strides = contiguous_strides(k.shape)
    else:
        k_strides = tuple(strides[pos[1]])
    kt = TensorType(k.dtype, k.shape[:-2] + (k.shape[-1], k.shape[-2]))
    kt_strides = tuple(k_strides[:-2]) + (k_strides[-1], k_strides[-2])
    return matmul_layout_copies(q, kt, tuple(strides[pos[0]]), kt_strides, q.dtype.itemsize)


def _torch_lowering(op: str):
    def lowering(ins, attrs, outs) -> Size:
        # the scores with the repeated keys and the mask's bools, before the output exists; then
        # the scores with the row maxima (logsumexp), or with the lse copied and tested, then the
        # repeated values, beside the output (apply)
        scores, keys, values, rows = _score_parts(op, ins, attrs)
        item = outs[0].dtype.itemsize
        out = outs[0].numel() * item
        masking = (scores + keys) * item + _mask_bools(op, ins, attrs) - out
        if op == LSE:
            after = rows * item
        else:
            after = size_max(values * item, ins[3].numel() * (item + 1) - out)
        return normalize(size_max(masking, scores * item + after))
    return lowering


def _torch_layout(op: str):
    def layout(ins, attrs, outs, strides) -> Size:
        return _q_copy(op, ins, attrs, strides)  # beside the scores matmul writes
    return layout


def _lowering(op: str):
    def torch(ctx: LoweringContext) -> str:
        n = ctx.num_inputs()
        args = [ctx.arg(i) for i in range(n)]
        mask_at = _SDPA_POSITIONS[op][3]
        mask = args[mask_at] if n > mask_at else "None"
        head = args[:mask_at]
        q = ctx.in_type(_SDPA_POSITIONS[op][0])
        k = ctx.in_type(0)
        groups = q.shape[-3] // k.shape[-3] if ctx.attrs["enable_gqa"] else 1
        scale = _scale(q, ctx.attrs["scale"])
        return (f"rt.{op}({', '.join(head)}, {mask}, {ctx.attr('is_causal')}, {scale!r}, "
                f"{ctx.attr('query_offset')}, {ctx.attr('key_offset')}, {groups})")
    return torch


def _attended(op: str, ins, attrs) -> Size:
    """The scores a call works: the pairs its causal rule leaves (attention.attended_numel)."""
    sdpa, sdpa_attrs, _ = _check(op, ins, attrs)
    batch = product(broadcast_shapes(op, _parts(sdpa, sdpa_attrs)[0][:2]))
    return attended_numel(sdpa[0], sdpa[1], batch, sdpa_attrs, attrs["key_offset"])


def _flops(op: str):
    def flops(ins, attrs, outs) -> Size:
        scores = _attended(op, ins, attrs)
        sdpa = _as_sdpa(op, ins)
        extra = 2 * scores * sdpa[2].shape[-1] if op == APPLY else 0
        return normalize(2 * scores * sdpa[0].shape[-1] + extra + 4 * scores)
    return flops


def _doc(op: str) -> str:
    apply = op == APPLY
    return (f"{op}(k[..., S, E], " + ("v[..., S, Ev], q[..., L, E], lse[..., L, 1], mask?" if apply else "q[..., L, E], mask?")
            + ", is_causal=False, scale=None, query_offset=0, key_offset=0, enable_gqa=False) -> "
            + ("[..., L, Ev]: sum over keys of exp(score - lse) v (0 where lse is -inf)" if apply else
               "[..., L, 1]: log sum over keys of exp(score) (-inf where no key is attended)")
            + "; scaled_dot_product_attention split over its keys (attention_apply(k, v, q, attention_logsumexp(k, "
              "q, mask), mask) is SDPA); with is_causal, query i attends key j when j + key_offset <= i + "
              "query_offset. Carries: SDPA's batch and query axes" + (" (and the lse's), Ev from v" if apply else "")
            + ". Accumulates over the keys (axis -2 of k" + (" and v" if apply else "")
            + ", the mask's last axis alike; key_offset moved by the slice) with " + ("add." if apply else "logaddexp."))


for _op, _combine, _infer, _ref, _n in ((LSE, "logaddexp", _lse_infer, _lse_ref, (2, 3)),
                                        (APPLY, "add", _apply_infer, _apply_ref, (4, 5))):
    register(OpDef(
        name=_op, infer=_infer, dims=_dims(_op), reference=_ref, num_inputs=_n, attrs=dict(_ATTRS),
        size_attrs=("query_offset", "key_offset"), accumulates=_accumulates(_op, _combine),
        workspace=_numpy_workspace(_op), flops=_flops(_op), slice_attrs=_sdpa_slice, torch=_lowering(_op),
        torch_workspace=TorchWorkspace(lowering=_torch_lowering(_op), aten_layout=_torch_layout(_op)),
        saves=("inputs", "outputs"), doc=_doc(_op)))


# -- attention_partial: one pass over the keys ----------------------------------------------------


def _partial_infer(ins, attrs):
    sdpa, _, batch = _check(PARTIAL, ins, attrs)
    q, v = sdpa[0], sdpa[2]
    return (TensorType(q.dtype, batch + (q.shape[-2], normalize(v.shape[-1] + 1))),)


def _partial_ref(xp, k, v, q, mask=None, is_causal=False, scale=None, query_offset=0, key_offset=0, enable_gqa=False):
    attrs = dict(is_causal=is_causal, scale=scale, query_offset=query_offset, key_offset=key_offset,
                 enable_gqa=enable_gqa)
    lse = _lse_ref(xp, k, q, mask, **attrs)
    out = _apply_ref(xp, k, v, q, lse, mask, **attrs)
    return xp.concatenate([out, xp.broadcast_to(lse, out.shape[:-1] + (1,)).astype(out.dtype)], axis=-1)


def _partial_halves(ins, attrs, outs) -> tuple[list, TensorType, list, TensorType]:
    """The inputs and output types of the log-sum-exp and apply passes the reference runs."""
    k, v, q = ins[:3]
    mask = list(ins[3:])
    out = outs[0]
    lse = TensorType(out.dtype, out.shape[:-1] + (1,))
    apply = TensorType(out.dtype, out.shape[:-1] + (v.shape[-1],))
    return [k, q] + mask, lse, [k, v, q, lse] + mask, apply


def _partial_numpy_workspace(ins, attrs, outs) -> Size:
    # the log-sum-exp pass; the apply pass beside its lse; both beside the output (the concat)
    lse_ins, lse, apply_ins, apply = _partial_halves(ins, attrs, outs)
    first = _numpy_workspace(LSE)(lse_ins, attrs, (lse,)) + lse.numel()
    second = lse.numel() + _numpy_workspace(APPLY)(apply_ins, attrs, (apply,)) + apply.numel()
    return normalize(size_max(first, second, lse.numel() + apply.numel() + outs[0].numel()) - outs[0].numel())


def _partial_rows(ins, attrs, outs) -> tuple[Size, Size, Size, Size]:
    """Bytes of (the keys and values repeated for grouped queries, the normalized values [.., L, Ev],
    one float log-sum-exp per row, the [.., L, S] score tile)."""
    sdpa, _, batch = _check(PARTIAL, ins, attrs)
    q, k, v = sdpa[:3]
    item = outs[0].dtype.itemsize
    groups = _groups(sdpa) if attrs["enable_gqa"] else 1
    repeated = normalize(groups * (k.numel() + v.numel()) * item) if groups > 1 else 0
    rows = normalize(product(batch) * q.shape[-2])
    values = normalize(rows * v.shape[-1] * item)
    return repeated, values, normalize(rows * acc_dtype(outs[0].dtype).itemsize), normalize(rows * k.shape[-2] * item)


def _partial_flash(ins, attrs, outs) -> bool:
    """Whether rt.attention_partial runs the CPU flash kernel (its ``_split_causal_eligible``):
    no mask, four axes, one batch and head size, heads equal (or grouped: the kernel reads each
    key head in place for its query heads, _parts checked them), not recorded."""
    sdpa = _as_sdpa(PARTIAL, ins)
    q, k, v = sdpa[:3]
    if len(sdpa) == 4 or not (q.rank == k.rank == v.rank == 4) or autograd_records(attrs):
        return False
    heads = attrs["enable_gqa"] or all(sizes_equal(q.shape[1], t.shape[1]) for t in (k, v))
    return outs[0].dtype in _FLASH_DTYPES and heads and all(sizes_equal(q.shape[0], t.shape[0]) for t in (k, v)) and \
        sizes_equal(q.shape[-1], k.shape[-1]) and sizes_equal(q.shape[-1], v.shape[-1])


def _partial_scores_workspace(ins, attrs, outs) -> Size:
    """The reference formula, before the output exists: the score tile with the mask's bools,
    then with the row maxima and sums and the normalized values beside it; then the values and
    the two row columns beside the output."""
    repeated, values, lse, scores = _partial_rows(ins, attrs, outs)
    rows = 2 * ceildiv(lse, acc_dtype(outs[0].dtype).itemsize) * outs[0].dtype.itemsize
    tile = repeated + scores + size_max(_mask_bools(PARTIAL, ins, attrs), rows + values)
    return normalize(size_max(tile - outs[0].numel() * outs[0].dtype.itemsize, repeated + values + rows))


def _partial_cpu_workspace(ins, attrs, outs) -> Size:
    """The CPU flash kernel, before the output exists: one call; or, causal keys placed past the
    rows' first, two merged, the first call's values and lse beside the second's and its
    buffers, then the row merge's few [.., L] columns; or, keys placed past the first rows,
    zeros and -inf for those rows beside a call on the others; then the values and lse beside
    the output."""
    if not _partial_flash(ins, attrs, outs):
        return _partial_scores_workspace(ins, attrs, outs)
    _, values, lse, _ = _partial_rows(ins, attrs, outs)  # (grouped key heads read in place)
    q, k, v = _as_sdpa(PARTIAL, ins)[:3]
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


_FLASH_DTYPES = (DType.float16, DType.bfloat16, DType.float32, DType.float64)


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
    scores = _attended(PARTIAL, ins, attrs)
    sdpa = _as_sdpa(PARTIAL, ins)
    return normalize(2 * scores * (sdpa[0].shape[-1] + sdpa[2].shape[-1]) + 4 * scores)


register(OpDef(
    name=PARTIAL, infer=_partial_infer, dims=_dims(PARTIAL), reference=_partial_ref, num_inputs=(3, 4),
    attrs=dict(_ATTRS), size_attrs=("query_offset", "key_offset"), accumulates=_accumulates(PARTIAL, "softmax_merge"),
    workspace=_partial_numpy_workspace, flops=_partial_flops, slice_attrs=_sdpa_slice, torch=_partial_lowering,
    torch_workspace=TorchWorkspace(cpu=_partial_cpu_workspace, cuda=_partial_scores_workspace),
    saves=("inputs", "outputs"),
    doc="attention_partial(k[..., S, E], v[..., S, Ev], q[..., L, E], mask?, is_causal=False, scale=None, "
        "query_offset=0, key_offset=0, enable_gqa=False) -> [..., L, Ev + 1]: SDPA over these keys ([..., :Ev]) "
        "with the log-sum-exp of each query's scores ([..., Ev]; zeros and -inf where a query attends no key); "
        "with is_causal, query i attends key j when j + key_offset <= i + query_offset. Carries: SDPA's batch "
        "and query axes. Accumulates over the keys (axis -2 of k and v, the mask's last axis alike; key_offset "
        "moved by the slice) with softmax_merge: slices of the keys merge into the attention over all of them "
        "in one pass (the online softmax)."))
