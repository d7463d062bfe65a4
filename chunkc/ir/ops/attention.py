"""scaled_dot_product_attention(q[..., L, E], k[..., S, E], v[..., S, Ev], mask?)
-> [..., L, Ev]: softmax(q @ k^T * scale + mask) @ v, as PyTorch's
``F.scaled_dot_product_attention`` (bool mask: True attends; float mask: added;
``is_causal``: query i attends keys j <= i; a fully masked row gives zeros).

``query_offset`` (with ``is_causal``) places the queries at rows
``query_offset ..`` of the causal square: query i attends keys j <= i +
query_offset (0: PyTorch's top-left alignment; S - L: the bottom-right
alignment of a prefill with a cache).  Keys past the last query's position are
never read, by the reference or the lowerings: a causal call's FLOPs count the
(query, key) pairs it attends (:func:`causal_pairs`), the one statement of what a
chunk of causal rows costs.

Dims: batch axes carry from each of q, k, v and the mask that is not broadcast
along them; the query axis carries from q (and the mask's query axis) — with
``is_causal`` positionally: a slice of the queries starting at row s is the
same op with ``query_offset`` moved by s; the value axis carries from v; E and
S are contracted.

The reference holds one scores array ``[..., L, S]`` (declared as workspace),
works on it in place, and allocates only the output besides.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import sympy

from .. import elements
from ..dims import AxisFlow, AxisSource, DimRecord, at_position
from ..dtypes import DType
from ..kernel_workspace import TorchWorkspace, acc_dtype, autograd_records, cast_copies, cpu_threads, nbytes
from ..lowering import LoweringContext, operands, torch_dtype
from ..registry import OpDef, register
from ..sizes import Size, format_size, normalize, product, size_max, sizes_equal
from ..types import TensorType
from ._common import (array_result_dtype, broadcast_dims, broadcast_shape, broadcast_shapes, carry_from, fail, is_one,
                      optional_float, require_float, result_dtype)

_NAMES = ("q", "k", "v", "mask")


def _mask_2d(mask: TensorType) -> TensorType:
    """The mask with at least two axes (a 1-D mask broadcasts over queries)."""
    return mask if mask.rank >= 2 else mask.with_shape((1,) * (2 - mask.rank) + mask.shape)


def _parts(ins, attrs):
    q, k, v = ins[:3]
    for i, t in enumerate(ins[:3]):
        require_float("scaled_dot_product_attention", t, f"{_NAMES[i]} (input {i})")
        if t.rank < 2:
            raise fail("scaled_dot_product_attention", f"{_NAMES[i]} (input {i}) must have rank >= 2, got {t}")
    if not sizes_equal(q.shape[-1], k.shape[-1]):
        raise fail("scaled_dot_product_attention",
                   f"q {q} and k {k} must share their last (embedding) axis: {format_size(q.shape[-1])} != "
                   f"{format_size(k.shape[-1])}")
    if not sizes_equal(k.shape[-2], v.shape[-2]):
        raise fail("scaled_dot_product_attention",
                   f"k {k} and v {v} must share their key axis (-2): {format_size(k.shape[-2])} != "
                   f"{format_size(v.shape[-2])}")
    batches = [TensorType(t.dtype, t.shape[:-2]) for t in (q, k, v)]
    if attrs["enable_gqa"]:
        _groups(ins)
        # k and v hold heads/groups heads, each serving `groups` query heads: broadcast as if repeated
        batches[1:3] = [TensorType(t.dtype, t.shape[:-3] + (q.shape[-3],)) for t in (k, v)]
    mask = None
    if len(ins) == 4:
        mask = _mask_2d(ins[3])
        if ins[3].dtype != DType.bool and not ins[3].dtype.is_floating:
            raise fail("scaled_dot_product_attention", f"mask (input 3) must be bool or floating point, got {ins[3]}")
        if attrs["is_causal"]:
            raise fail("scaled_dot_product_attention", "give either a mask or is_causal=True, not both")
        batches.append(TensorType(mask.dtype, mask.shape[:-2]))
        for m, want in zip(mask.shape[-2:], (q.shape[-2], k.shape[-2])):
            if not (is_one(m) or sizes_equal(m, want)):
                raise fail("scaled_dot_product_attention",
                           f"mask (input 3) {ins[3]} must broadcast to the scores' [L, S] = "
                           f"[{format_size(q.shape[-2])}, {format_size(k.shape[-2])}]")
    if not isinstance(attrs["is_causal"], bool):
        raise fail("scaled_dot_product_attention", f"is_causal must be a bool, got {attrs['is_causal']!r}")
    offset = attrs["query_offset"]
    if isinstance(offset, bool) or not isinstance(offset, (int, sympy.Expr)) or (isinstance(offset, int) and offset < 0):
        raise fail("scaled_dot_product_attention", f"query_offset must be a size >= 0, got {offset!r}")
    if not attrs["is_causal"] and not (isinstance(offset, int) and offset == 0):
        raise fail("scaled_dot_product_attention", "query_offset places causal queries; it needs is_causal=True")
    optional_float("scaled_dot_product_attention", "scale", attrs["scale"])
    batch = broadcast_shapes("scaled_dot_product_attention", batches)
    return batches, mask, batch


def _groups(ins) -> int:
    """Query heads per key/value head (axis -3) of grouped-query attention."""
    q, k, v = ins[:3]
    if min(t.rank for t in (q, k, v)) < 3:
        raise fail("scaled_dot_product_attention", "enable_gqa needs a head axis (-3) in q, k and v")
    hq, hk = q.shape[-3], k.shape[-3]
    if not (isinstance(hq, int) and isinstance(hk, int)) or hk == 0 or hq % hk or not sizes_equal(hk, v.shape[-3]):
        raise fail("scaled_dot_product_attention",
                   f"enable_gqa: q's {format_size(hq)} heads must be a multiple of k's and v's "
                   f"({format_size(hk)}, {format_size(v.shape[-3])}), all static")
    return hq // hk


def _sdpa_infer(ins, attrs):
    _, _, batch = _parts(ins, attrs)
    q, v = ins[0], ins[2]
    return (TensorType(result_dtype(ins[:3]), batch + (q.shape[-2], v.shape[-1])),)


def _sdpa_dims(ins, attrs, outs) -> DimRecord:
    batches, mask, batch = _parts(ins, attrs)
    out = outs[0]
    flows = list(broadcast_dims(batches, TensorType(out.dtype, batch)))
    if attrs["enable_gqa"]:  # a chunk of `groups` query heads reads one key/value head
        head = len(flows) - 1
        share = Fraction(1, _groups(ins))
        flows[head] = AxisFlow(flows[head].kind, tuple(
            AxisSource(s.input, s.axis, share if s.input in (1, 2) else s.ratio) for s in flows[head].sources))
    q, v = ins[0], ins[2]
    sources = [AxisSource(0, q.rank - 2)]
    if mask is not None and ins[3].rank >= 2 and sizes_equal(ins[3].shape[-2], q.shape[-2]):
        sources.append(AxisSource(3, ins[3].rank - 2))
    queries = carry_from(*sources)
    flows.append(at_position(queries) if attrs["is_causal"] else queries)
    flows.append(carry_from(AxisSource(2, v.rank - 1)))
    return (tuple(flows),)


def _sdpa_slice(attrs, ins, axis, start, length):
    # only the query axis is positional (with is_causal): the slice's queries sit start rows lower
    return {**attrs, "query_offset": normalize(attrs["query_offset"] + start)}


def _qk_batch(ins, attrs) -> Size:
    """Elements of the broadcast batch of q and k: the score tiles a call makes."""
    batches, _, _ = _parts(ins, attrs)
    return product(broadcast_shapes("scaled_dot_product_attention", batches[:2]))


def _rows(ins, attrs) -> Size:
    """Query rows of the scores: the broadcast batch of q and k times L."""
    return normalize(_qk_batch(ins, attrs) * ins[0].shape[-2])


def _scores_numel(ins, attrs) -> Size:
    return normalize(_rows(ins, attrs) * ins[1].shape[-2])


def _sdpa_workspace(ins, attrs, outs) -> Size:
    # the scores, plus the row maxima and sums beside them; with enable_gqa the reference
    # repeats k and v to the query heads
    repeated = 0
    if attrs["enable_gqa"]:
        groups = _groups(ins)
        repeated = normalize(groups * (ins[1].numel() + ins[2].numel()))
    return normalize(_scores_numel(ins, attrs) + 2 * _rows(ins, attrs) + repeated)


def causal_pairs(rows: Size, keys: Size, shift: Size) -> Size:
    """The (query, key) pairs a causal call works, per head: query i attends key j when
    j <= i + ``shift`` (shift = query_offset - key_offset), so row i works min(i + shift + 1,
    keys) keys, none below 0.  The kernels do no more (the lowerings skip the keys past a
    query chunk's last row: rt.causal_attention, rt.attention_partial), so this, not rows x
    keys, is a causal call's work: a chunk of rows [s, s + n) of the square works n * s + n (n +
    1) / 2 pairs, and the chunks of any loop sum to the whole square's L (L + 1) / 2.  Exact
    for static sizes and for shift 0 (the whole square, or rows against their own keys);
    rows x keys, an upper bound, otherwise."""
    if all(isinstance(x, int) for x in (rows, keys, shift)):
        lo, hi = max(shift + 1, 1), min(shift + rows, keys)  # rows attending 1 .. keys - 1 keys
        partial = (hi * (hi + 1) - (lo - 1) * lo) // 2 if lo <= hi else 0
        full = max(0, shift + rows - max(shift, keys)) * keys  # rows past the last key: all of them
        return partial + full
    if isinstance(shift, int) and shift == 0:
        seen = rows if sizes_equal(rows, keys) else sympy.Min(rows, keys)
        return normalize(seen * (seen + 1) / 2 + (rows - seen) * keys)
    return normalize(rows * keys)


def attended_numel(q: TensorType, k: TensorType, batch: Size, attrs, key_offset: Size = 0) -> Size:
    """The scores a call works (:func:`causal_pairs` under ``is_causal``), over ``batch``
    heads: what its FLOPs count."""
    if not attrs["is_causal"]:
        return normalize(batch * q.shape[-2] * k.shape[-2])
    shift = normalize(attrs["query_offset"] - key_offset)
    return normalize(batch * causal_pairs(q.shape[-2], k.shape[-2], shift))


def _sdpa_flops(ins, attrs, outs) -> Size:
    n = attended_numel(ins[0], ins[1], _qk_batch(ins, attrs), attrs)
    return normalize(2 * n * ins[0].shape[-1] + 2 * n * ins[2].shape[-1] + 5 * n)


def _sdpa_ref(xp, q, k, v, mask=None, is_causal=False, scale=None, query_offset=0, enable_gqa=False):
    dt = array_result_dtype(q, k, v)
    if enable_gqa:  # kv head j serves query heads j*groups .. (j+1)*groups - 1
        groups = q.shape[-3] // k.shape[-3]
        k, v = xp.repeat(k, groups, axis=-3), xp.repeat(v, groups, axis=-3)
    if is_causal:  # keys past the last query's position are never attended
        stop = min(query_offset + q.shape[-2], k.shape[-2])
        k, v = k[..., :stop, :], v[..., :stop, :]
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2))
    if scores.dtype != dt:
        scores = scores.astype(dt)
    scores *= 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_q, n_k = scores.shape[-2:]
    if is_causal:
        for i in range(min(n_q, n_k - 1 - query_offset)):
            scores[..., i, query_offset + i + 1:] = -xp.inf
    elif mask is not None:
        _apply_mask(xp, scores, mask)
    # softmax over keys, in place; a row with no key to attend to gives zeros (PyTorch's safe softmax)
    m = xp.max(scores, axis=-1, keepdims=True)
    m[xp.isneginf(m)] = 0
    scores -= m
    del m
    xp.exp(scores, out=scores)
    s = xp.sum(scores, axis=-1, keepdims=True)
    s[s == 0] = 1
    scores /= s
    del s
    out = xp.matmul(scores, v)
    return out if out.dtype == dt else out.astype(dt)


def _apply_mask(xp, scores, mask):
    if mask.ndim < 2:
        mask = mask.reshape((1,) * (2 - mask.ndim) + mask.shape)
    # broadcast_shape, not np.broadcast_shapes: its few KiB were most of what a chunk of a few
    # query rows allocates besides its scores
    if broadcast_shape(scores.shape, mask.shape) != scores.shape:
        raise ValueError(f"mask {mask.shape} broadcasts beyond the scores {scores.shape}")
    if mask.dtype != bool:
        scores += mask
        return
    # masked positions get -inf; negate the bool mask a block of query rows at a time
    rows = mask.shape[-2]
    step = max(1, rows // 16)
    for start in range(0, rows, step):
        block = slice(start, min(start + step, rows)) if rows > 1 else slice(None)
        xp.copyto(scores[..., block, :], -xp.inf, where=xp.logical_not(mask[..., block, :]))
        if rows == 1:
            break


# -- what PyTorch allocates besides the output -------------------------------------------------
#
# The lowering converts q, k, v (and a float mask) to the output's dtype and, for causal queries
# below the first row, builds their bool mask rows [L, keys].  ATen turns a bool mask into a
# float one of q's dtype (every device), then picks a kernel.  On the CPU: the flash kernel
# (4-d q, k, v of one head count and one head size, a 2-d or 4-d mask) takes a buffer per
# thread and the log-sum-exp per row; else the composite "math" path holds q scaled, the
# scores, their softmax and bool masks of them (half floats computed in float).


def _causal_keys(ins, attrs) -> Size:
    """Keys the lowering passes: causal queries below the first row read keys up to their last."""
    offset, keys = attrs["query_offset"], ins[1].shape[-2]
    if attrs["is_causal"] and isinstance(offset, int) and isinstance(keys, int) and isinstance(ins[0].shape[-2], int):
        return min(offset + ins[0].shape[-2], keys)
    return keys


def _causal_rows(attrs) -> bool:
    """The lowering builds a mask of rows (causal queries below the first row)."""
    offset = attrs["query_offset"]
    return attrs["is_causal"] and not (isinstance(offset, int) and offset == 0)


def _mask_numel(ins, attrs) -> Size:
    """Elements of the bool mask ATen receives: the given one, or the causal rows."""
    if len(ins) == 4 and ins[3].dtype == DType.bool:
        return ins[3].numel()
    if _causal_rows(attrs):
        return normalize(ins[0].shape[-2] * _causal_keys(ins, attrs))
    return 0


def _sdpa_lowering_workspace(ins, attrs, outs) -> Size:
    out = outs[0].dtype
    total = cast_copies(ins[:3], out)
    if len(ins) == 4 and ins[3].dtype != DType.bool and ins[3].dtype != out:
        total = total + nbytes(ins[3], out)
    return normalize(total)


def _sdpa_float_mask(ins, attrs, outs) -> Size:
    """ATen's float copy of a given bool mask (the causal rows' mask: see _causal_rows_mask)."""
    return normalize(ins[3].numel() * outs[0].dtype.itemsize) if len(ins) == 4 and ins[3].dtype == DType.bool else 0


def _causal_rows_mask(ins, attrs, outs) -> Size:
    """The mask of causal rows the runtime builds where it does not split them
    (rt.causal_attention): bools of the queries' rows, and ATen's float copy of them."""
    if not _causal_rows(attrs):
        return 0
    return normalize(ins[0].shape[-2] * _causal_keys(ins, attrs) * (1 + outs[0].dtype.itemsize))


# the dtypes of ATen's CPU flash kernel (its long names: DType.name, torch's without "torch.")
_FLASH_CPU_DTYPES = frozenset(d.name for d in (DType.float16, DType.bfloat16, DType.float32, DType.float64))


def cpu_flash_takes(q: Sequence[Size], k: Sequence[Size], v: Sequence[Size], dtype: str, recorded: bool,
                    grouped: bool = False) -> bool:
    """Whether ATen's CPU flash kernel, which returns the log-sum-exp, takes q, k and v of
    these shapes in dtype ``dtype`` (its long name: ``float32``) for calls merged by their
    log-sum-exp: four axes, one batch, the same heads (``grouped``: q's heads a multiple of
    k's and v's, which the kernel reads in place, each serving its group of query heads) and
    head size, a float dtype; autograd not recording the call (``recorded``: the kernel's
    backward drops the log-sum-exp's gradient, which the merge needs).  The one statement of
    the rule: the runtime (rt.causal_attention, rt.attention_partial) runs the kernel where it
    holds, and the records' CPU workspaces (_split_causal_rows here,
    attention_keys._partial_runs_flash) count its buffers there."""
    if not (len(q) == len(k) == len(v) == 4 and dtype in _FLASH_CPU_DTYPES and not recorded):
        return False
    if not (sizes_equal(k[1], v[1]) and all(sizes_equal(q[a], t[a]) for t in (k, v) for a in (0, 3))):
        return False
    if sizes_equal(q[1], k[1]):
        return True
    # grouped heads: a multiple (symbolic head counts were checked by the op's _parts)
    return grouped and (not (isinstance(q[1], int) and isinstance(k[1], int)) or (k[1] > 0 and q[1] % k[1] == 0))


def _split_causal_rows(ins, attrs, outs) -> bool:
    """Causal rows run on the CPU as two flash calls merged by their log-sum-exp, no mask
    (rt.causal_attention, where :func:`cpu_flash_takes` holds; grouped heads read in place; the
    lowering casts q, k, v to the output's dtype), unless autograd records the call (a training
    step's chunk re-run in its region's backward): then the masked call (see _causal_rows_mask)."""
    q, k, v = ins[:3]
    return (_causal_rows(attrs) and cpu_flash_takes(q.shape, k.shape, v.shape, outs[0].dtype.name,
                                                    autograd_records(attrs), grouped=attrs.get("enable_gqa", False)))


def _split_causal_workspace(ins, attrs, outs) -> Size:
    """Beside the output (the call over the keys before the rows): the larger of that call's
    buffers and, during the call over the causal square, the first call's log-sum-exp beside the
    square's output and its own buffers (the merge then adds the first call's share of each
    row, in place of the kernel's tiles)."""
    q, out = ins[0], outs[0]
    offset, keys = attrs["query_offset"], _causal_keys(ins, attrs)
    if not (isinstance(offset, int) and isinstance(keys, int)):
        return 0
    lse = product(q.shape[:-1]) * acc_dtype(out.dtype).itemsize
    seen = min(offset, keys)
    first = _flash_cpu_call(q, seen, out)
    if keys <= offset:
        return first
    square = lse + out.numel() * out.dtype.itemsize
    return normalize(size_max(first, square + _flash_cpu_call(q, keys - offset, out), square + 2 * lse))


def _flash_eligible(ins, attrs, value_head_may_differ: bool = False) -> bool:
    """Whether a fused kernel takes these operands: four axes, one batch, the heads equal (or
    shared under enable_gqa), one head size (``value_head_may_differ``: the values' may differ,
    as CUDA's memory-efficient kernel allows)."""
    q, k, v = ins[:3]
    if not (q.rank == k.rank == v.rank == 4):
        return False
    if not attrs.get("enable_gqa") and not (sizes_equal(q.shape[1], k.shape[1]) and sizes_equal(q.shape[1], v.shape[1])):
        return False  # (under enable_gqa the kernels read each shared key/value head in place)
    if not (sizes_equal(q.shape[0], k.shape[0]) and sizes_equal(q.shape[0], v.shape[0])):
        return False
    if not sizes_equal(q.shape[3], k.shape[3]):
        return False
    if not value_head_may_differ and not sizes_equal(q.shape[3], v.shape[3]):
        return False
    return True  # (a mask of any rank: the lowering gives it four axes, see _sdpa_torch)


def _flash_cpu_buffers(ins, attrs, outs) -> Size:
    """The CPU flash kernel: per thread a [q block, kv block] score tile with row maxima, sums and
    an output tile (in the accumulation dtype, plus a tile in the input's for half floats),
    and the log-sum-exp of every query row."""
    return _flash_cpu_call(ins[0], _causal_keys(ins, attrs), outs[0])


def _flash_cpu_call(q: TensorType, keys: Size, out: TensorType) -> Size:
    """:func:`_flash_cpu_buffers` of one call of the kernel over ``keys`` keys."""
    rows, head = q.shape[-2], q.shape[-1]
    if not all(isinstance(x, int) for x in (rows, keys, head)):
        return 0
    q_block = 256 if rows >= 768 else 64 if rows >= 192 else 32
    q_block, kv_block = min(q_block, rows), min(512, keys)
    acc = acc_dtype(out.dtype)
    per_thread = (q_block * kv_block + 2 * q_block + q_block * head) * acc.itemsize
    if acc != out.dtype:
        per_thread += q_block * kv_block * out.dtype.itemsize
    return normalize(cpu_threads() * per_thread + product(q.shape[:-2]) * rows * acc.itemsize)


def _math_path(ins, attrs, outs, upcast: bool) -> Size:
    """The composite path's peak beyond the output: q scaled (and q, k, v in float when
    ``upcast`` half floats), the causal float mask, then the larger of: k^T scaled beside the
    scores its matmul writes (ATen scales both q and k by sqrt(scale); the k copy dies after the
    matmul, and holds the peak when the queries are few: a chunk of them), the scores and their
    softmax with the bool masks of fully masked rows, the softmax beside the output."""
    q, k, v = ins[:3]
    out = outs[0]
    acc = acc_dtype(out.dtype) if upcast else out.dtype
    up = (q.numel() + k.numel() + v.numel()) * acc.itemsize if acc != out.dtype else 0
    k_batch = k.shape[:-3] + (q.shape[-3],) if attrs.get("enable_gqa") else k.shape[:-2]  # the heads repeated
    batch = product(broadcast_shapes("scaled_dot_product_attention",
                                     [TensorType(q.dtype, q.shape[:-2]), TensorType(k.dtype, k_batch)]))
    # causal queries below the first row: the lowering passes the keys up to their last one
    rows, keys = q.shape[-2], _causal_keys(ins, attrs) if _causal_rows(attrs) else k.shape[-2]
    scores = batch * rows * keys
    causal = rows * keys * acc.itemsize if attrs["is_causal"] and not _causal_rows(attrs) else 0
    base = up + q.numel() * acc.itemsize + causal
    k_scaled = product(k_batch) * keys * k.shape[-1] * acc.itemsize
    at_matmul = base + k_scaled + scores * acc.itemsize
    at_softmax = base + 2 * scores * acc.itemsize + scores + batch * rows
    at_output = base + scores * acc.itemsize + out.numel() * acc.itemsize + (
        out.numel() * out.dtype.itemsize if acc != out.dtype else 0)
    peak = size_max(at_matmul, at_softmax, at_output)
    return normalize(peak - out.numel() * out.dtype.itemsize)


def _sdpa_cpu_workspace(ins, attrs, outs) -> Size:
    if _split_causal_rows(ins, attrs, outs):
        return _split_causal_workspace(ins, attrs, outs)
    kernel = _flash_cpu_buffers(ins, attrs, outs) if _flash_eligible(ins, attrs) else _math_path(
        ins, attrs, outs, upcast=True)
    return normalize(kernel + _causal_rows_mask(ins, attrs, outs))


def _sdpa_cpu_mask_copy(ins, attrs, outs, strides) -> Size:
    """The CPU flash kernel copies a mask whose last axis is not dense (a bias permuted from
    [L, S, heads], as T5's relative-position bias is) into a contiguous one; the float mask
    made of a bool one, or the lowering's cast, keeps the given layout (but is dense along an
    axis the bool mask is broadcast on: ViT's all-true mask expanded over the keys)."""
    if len(ins) < 4 or not _flash_eligible(ins, attrs) or len(strides) < 4:
        return 0
    mask, mask_strides = ins[3], strides[3]
    if not mask_strides or is_one(mask.shape[-1]) or mask_strides[-1] == 1:
        return 0
    if mask.dtype == DType.bool and mask_strides[-1] == 0:
        return 0  # ATen's float mask of a bool one broadcast along its keys is made dense
    return normalize(mask.numel() * outs[0].dtype.itemsize)


def _sdpa_cuda_workspace(ins, attrs, outs) -> Size:
    """CUDA (from ATen's sources, measured on an H200): the flash kernel (half floats, no
    mask) keeps the float log-sum-exp per row; the memory-efficient one pads a mask whose last
    axis is not a multiple of 16 and takes values of another head size; without either, the
    math path, which computes half floats in float as on the CPU."""
    kernel = _sdpa_cuda_kernel(ins, attrs, outs) if _flash_eligible(ins, attrs, value_head_may_differ=True) else \
        _math_path(ins, attrs, outs, upcast=True)
    return normalize(kernel + _causal_rows_mask(ins, attrs, outs))


def _sdpa_cuda_kernel(ins, attrs, outs) -> Size:
    q = ins[0]
    has_mask = len(ins) == 4 or _causal_rows(attrs)
    if outs[0].dtype in (DType.float16, DType.bfloat16) and not has_mask and _flash_eligible(ins, attrs):
        return normalize(product(q.shape[:-1]) * DType.float32.itemsize)
    keys = _causal_keys(ins, attrs)
    if has_mask and isinstance(keys, int) and keys % 16:
        numel = _mask_numel(ins, attrs) or ins[3].numel()
        last = ins[3].shape[-1] if len(ins) == 4 else keys
        return normalize(numel // last * (-(-keys // 16) * 16) * outs[0].dtype.itemsize) if isinstance(numel, int) \
            and isinstance(last, int) else 0
    return 0


def _sdpa_cpu_kept(ins, attrs, outs) -> Size:
    """What autograd keeps of a recorded call for the CPU flash kernel's backward beyond q, k,
    v and the output: ATen's float copy of the bool mask (a given one, or the causal rows',
    which under autograd are not split: see _split_causal_rows)."""
    if not _flash_eligible(ins, attrs) or _split_causal_rows(ins, attrs, outs):
        return 0
    return normalize(_mask_numel(ins, attrs) * outs[0].dtype.itemsize)


_SDPA_WORKSPACE = TorchWorkspace(lowering=_sdpa_lowering_workspace, aten=_sdpa_float_mask, cpu=_sdpa_cpu_workspace,
                                 cuda=_sdpa_cuda_workspace, cpu_layout=_sdpa_cpu_mask_copy, kept=_sdpa_cpu_kept)


# -- canonicalization: what eager PyTorch runs (is_causal, enable_gqa) ------------------------


def _causal_mask(node, analysis) -> bool:
    """The bool mask (input 3) is ``key <= query`` at every position (PyTorch's is_causal)."""
    q, k = node.inputs[0], node.inputs[1]
    return not node.attrs["is_causal"] and proves_causal(node.inputs[3], q.shape[-2], k.shape[-2], analysis)


def proves_causal(mask, queries: Size, keys: Size, analysis) -> bool:
    """Whether the bool value ``mask``, of ``queries`` x ``keys`` scores in its last two axes, is
    ``key <= query`` at every position, proven from its element formula (``analysis``, an
    :class:`~chunkc.ir.elements.ElementAnalysis`): what ``is_causal=True`` attends."""
    t = mask.type
    if t.dtype != DType.bool or t.rank < 2:
        return False
    if not (sizes_equal(t.shape[-2], queries) and sizes_equal(t.shape[-1], keys)):
        return False
    f = analysis.of(mask)
    f = elements.at(f, [sympy.Integer(0) if is_one(s) else elements.index(a) for a, s in enumerate(t.shape)])
    rows, cols = elements.index(t.rank - 2), elements.index(t.rank - 1)
    if f.atoms(sympy.core.function.AppliedUndef) or f.free_symbols & (set(elements.indices(t.rank)) - {rows, cols}):
        return False  # it reads a tensor, or varies along a batch axis
    return elements.prove_equal(f, sympy.Le(cols, rows))


def _shared_heads(node, i: int, groups_of, analysis):
    """An earlier value whose heads input ``i`` (k or v) repeats ``groups`` times each
    (``x[:, :, None].expand(..).reshape(..)``), with that number; None if there is none."""
    x = node.inputs[i]
    if x.rank < 3 or not isinstance(x.shape[-3], int):
        return None
    f = analysis.of(x)
    head = x.rank - 3
    seen = 0
    cand = x.producer.inputs[0] if x.producer is not None and x.producer.inputs else None
    while cand is not None and seen < 8:
        seen += 1
        hk = cand.shape[-3] if cand.rank == x.rank else None
        if isinstance(hk, int) and 0 < hk < x.shape[-3] and x.shape[-3] % hk == 0 and groups_of in (None, x.shape[-3] // hk) \
                and all(sizes_equal(a, b) for j, (a, b) in enumerate(zip(cand.shape, x.shape)) if j != head):
            groups = x.shape[-3] // hk
            position = list(elements.indices(x.rank))
            position[head] = sympy.floor(elements.index(head) / groups)
            if elements.prove_equal(f, elements.at(analysis.of(cand), position)):
                return cand, groups
        p = cand.producer
        cand = p.inputs[0] if p is not None and p.inputs and p.op.elements is not None else None
    return None


def _sdpa_canonicalize(node, analysis):
    ins, attrs = list(node.inputs), dict(node.attrs)
    changed = False
    if len(ins) == 4 and _causal_mask(node, analysis):
        ins, attrs["is_causal"], changed = ins[:3], True, True
    if not attrs["enable_gqa"] and ins[0].rank >= 3:
        k = _shared_heads(node, 1, None, analysis)
        v = _shared_heads(node, 2, k[1], analysis) if k is not None else None
        if k is not None and v is not None and sizes_equal(k[0].shape[-3], v[0].shape[-3]):
            ins[1], ins[2], attrs["enable_gqa"], changed = k[0], v[0], True, True
    return (ins, attrs) if changed else None


def _sdpa_torch(ctx: LoweringContext) -> str:
    out = ctx.out_type().dtype
    q, k, v = operands(ctx, (0, 1, 2), out, strict=True)
    scale = f", scale={ctx.attr('scale')}" if ctx.attrs["scale"] is not None else ""
    if ctx.attrs["enable_gqa"]:  # the CPU and CUDA kernels read the shared heads without repeating them
        scale += ", enable_gqa=True"
    offset = ctx.attrs["query_offset"]
    if ctx.attrs["is_causal"] and not (isinstance(offset, int) and offset == 0):
        # queries below the first row (a chunk of them): their own mask rows, keys up to the last row
        return f"rt.causal_attention({q}, {k}, {v}, {ctx.attr('query_offset')}{scale})"
    extra = ""
    if ctx.num_inputs() == 4:
        mask = ctx.arg(3)
        mt = ctx.in_type(3).dtype
        if mt != DType.bool and mt != out:
            mask = f"{mask}.to({torch_dtype(out)})"
        rank = ctx.in_type(3).rank
        if ctx.in_type(0).rank == 4 and rank not in (2, 4):
            # ATen's CPU flash kernel takes a mask of rank 2 or 4 only, else the composite path
            # runs: scores, softmax and copies of scaled q and k^T, ten times the memory
            mask = f"{mask}[{', '.join(['None'] * (4 - rank))}]"
        extra += f", attn_mask={mask}"
    if ctx.attrs["is_causal"]:
        extra += ", is_causal=True"
    return f"F.scaled_dot_product_attention({q}, {k}, {v}{extra}{scale})"


def _split_over_keys(graph, node):
    """SDPA as attention_partial, which accumulates over the keys in one pass, and the slice of
    its values (chunkc/ir/ops/attention_keys.py); None where the split does not apply (mixed dtypes)."""
    q, k, v = node.inputs[:3]
    mask = list(node.inputs[3:])
    if len({q.dtype, k.dtype, v.dtype} | {m.dtype for m in mask if m.dtype != DType.bool}) != 1:
        return None
    attrs = {**node.attrs, "key_offset": 0}
    partial = graph.add_node("attention_partial", [k, v, q] + mask, attrs, name=f"{node.name}_partial", before=node,
                             source=node.source)
    values = graph.add_node("slice", [partial.outputs[0]], {"axis": -1, "start": 0, "end": v.shape[-1], "step": 1},
                            name=f"{node.name}_values", before=node, source=node.source)
    return partial, values, (2, 0, 1) + ((3,) if mask else ()), "statistics"


def _rows_kernel(ins, attrs) -> str | None:
    """The per-row curve ATen's CPU flash kernel follows (OpDef.rows_kernel): by its mask, none
    for the math path (operands the fused kernels do not take).  Causal queries have their own
    ("causal": a chunk below the first row runs an unmasked call over the keys every row sees and
    the causal square after them, rt.causal_attention; whole, one causal call)."""
    if not _flash_eligible(ins, attrs):
        return None
    if attrs["is_causal"]:
        return "causal"
    if len(ins) < 4 or ins[3] is None:
        return "none"
    return "bool" if ins[3].dtype == DType.bool else "float"


register(OpDef(
    name="scaled_dot_product_attention", infer=_sdpa_infer, dims=_sdpa_dims, reference=_sdpa_ref,
    num_inputs=(3, 4), attrs={"is_causal": False, "scale": None, "query_offset": 0, "enable_gqa": False},
    size_attrs=("query_offset",), canonicalize=_sdpa_canonicalize,
    workspace=_sdpa_workspace, torch_workspace=_SDPA_WORKSPACE, flops=_sdpa_flops, slice_attrs=_sdpa_slice,
    torch=_sdpa_torch, saves=("inputs", "outputs"),
    split_accumulating=_split_over_keys, rows_kernel=_rows_kernel,
    doc="scaled_dot_product_attention(q[..., L, E], k[..., S, E], v[..., S, Ev], mask?, is_causal=False, "
        "scale=None, query_offset=0, enable_gqa=False) -> [..., L, Ev]; scale None is 1/sqrt(E); a bool mask "
        "marks the keys to attend, a float mask is added; with is_causal, query i attends keys j <= i + "
        "query_offset; with enable_gqa, k and v have heads/g heads (axis -3), kv head j serving query heads "
        "j*g .. j*g + g - 1; batch axes broadcast. Carries: batch axes (from every input not broadcast; the head "
        "axis from k and v with ratio 1/g under enable_gqa), L from q and the mask (positionally with is_causal), "
        "Ev from v. Canonicalizes: a bool mask proven to be k <= q becomes is_causal; k and v proven to repeat "
        "the heads of an earlier value (transformers' repeat_kv) become that value with enable_gqa."))
