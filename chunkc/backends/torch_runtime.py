"""Helpers that generated PyTorch code imports (``from chunkc.backends import torch_runtime as rt``).

Only what has no single PyTorch call lives here; each helper is small and
allocates no more than its result.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ..errors import ChunkcError
from .host_call import host_empty, host_reference, is_host_array, run_onnx  # noqa: F401  (nodes run on the host)
from ..ir.onnx_node import onnx_node  # noqa: F401  (opaque ONNX nodes)
from ..ir.ops.attention import cpu_flash_takes
from ..passes.accumulate import softmax_merge  # noqa: F401  (an accumulator's merge, accumulate.COMBINERS)

# ``namespace::name`` or ``namespace::name.overload``; nothing else reaches torch.ops.
_TARGET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)::([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$")


def parse_target(target: str) -> tuple[str, str, str]:
    """Split ``aten::foo.default`` into (namespace, name, overload); refuse anything else."""
    m = _TARGET.match(target) if isinstance(target, str) else None
    if m is None:
        raise ChunkcError(f"opaque target {target!r} is not an operator name like 'aten::foo.default'")
    return m.group(1), m.group(2), m.group(3) or "default"


def torch_op(target: str):
    """The ``torch.ops`` overload named by ``target`` (looked up by attribute, never evaluated)."""
    ns, name, overload = parse_target(target)
    try:
        packet = getattr(getattr(torch.ops, ns), name)
        return getattr(packet, overload)
    except (AttributeError, RuntimeError) as exc:
        raise ChunkcError(f"opaque target {target!r}: torch has no such operator ({exc})") from None


def _run_chunks(body, extent: int, chunk: int, last_first: bool = False) -> None:
    """Run a chunk region: ``body(start, stop)`` for each chunk of ``extent`` units (from the
    last chunk to the first when ``last_first``: ChunkRegion.last_first).

    torch.compile does not trace this loop (``recursive=False``: the frame only), so it
    neither unrolls it into one graph nor breaks the whole forward: the code before and after
    the region is compiled as graphs of its own, and ``body`` (one chunk) is compiled by
    itself, once for the first chunk and once with symbolic bounds for the others.  Unrolled
    into one graph, Inductor planned the buffers of all the chunks together and the compiled
    program's peak rose above the chunked program's (docs/backends.md)."""
    starts = range(0, extent, chunk)
    for start in (reversed(starts) if last_first else starts):
        body(start, min(start + chunk, extent))


run_chunks = torch.compiler.disable(_run_chunks, recursive=False)


@torch.compiler.disable
def check_budget(check, inputs) -> None:
    """Run the program's run-time budget check (chunkc.backends.budget.BudgetCheck) on its
    inputs.  Under ``torch.compile`` it runs as Python, outside the captured graphs: it
    binds sizes and may run the memory estimator, which dynamo cannot trace."""
    check(inputs)


def prod(x: torch.Tensor, dims: tuple[int, ...], keepdim: bool) -> torch.Tensor:
    """Product over several axes (``torch.prod`` takes one)."""
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdim)
    return x


__all__ = ["parse_target", "torch_op", "check_budget", "prod", "group_norm_moments", "group_norm_apply"]


def _wrap_negative(index: torch.Tensor, size) -> torch.Tensor:
    return torch.where(index < 0, index + size, index)


def gather_nd(data: torch.Tensor, indices: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """ONNX GatherND: ``indices[..., :k]`` pick elements (or slices) of ``data`` after ``batch_dims`` axes."""
    b, k = batch_dims, indices.shape[-1]
    batch = data.shape[:b]
    d = data.reshape((-1,) + tuple(data.shape[b:]))
    idx = indices.reshape((d.shape[0], -1, k)).to(torch.int64)
    sizes = torch.tensor(d.shape[1:1 + k], dtype=torch.int64, device=idx.device)
    idx = _wrap_negative(idx, sizes)
    rows = torch.arange(d.shape[0], device=idx.device).unsqueeze(1)
    picked = d[(rows,) + tuple(idx[..., j] for j in range(k))]
    return picked.reshape(tuple(batch) + tuple(indices.shape[b:-1]) + tuple(data.shape[b + k:]))


_SCATTER_REDUCE = {"mul": "prod", "max": "amax", "min": "amin"}


def scatter_elements(data, indices, updates, axis: int, reduction: str) -> torch.Tensor:
    """ONNX ScatterElements (torch.scatter with negative indices and reductions)."""
    index = _wrap_negative(indices.to(torch.int64), data.shape[axis])
    if reduction == "none":
        return data.scatter(axis, index, updates)
    if reduction == "add":
        return data.scatter_add(axis, index, updates)
    return data.scatter_reduce(axis, index, updates, _SCATTER_REDUCE[reduction], include_self=True)


def scatter_nd(data, indices, updates, reduction: str) -> torch.Tensor:
    """ONNX ScatterND: write (or reduce) ``updates`` at the positions ``indices[..., :k]``."""
    k = indices.shape[-1]
    lead = data.shape[:k]
    flat = data.reshape((-1,) + tuple(data.shape[k:])).clone()
    ix = indices.reshape(-1, k).to(torch.int64)
    ix = _wrap_negative(ix, torch.tensor(lead, dtype=torch.int64, device=ix.device))
    linear = torch.zeros(ix.shape[0], dtype=torch.int64, device=ix.device)
    for j in range(k):
        linear = linear * lead[j] + ix[:, j]
    upd = updates.reshape((ix.shape[0],) + tuple(data.shape[k:]))
    if reduction == "none":
        for n in range(ix.shape[0]):  # later updates win, as in the ONNX reference
            flat[linear[n]] = upd[n]
    elif reduction == "add":
        flat.index_add_(0, linear, upd)
    else:
        flat.index_reduce_(0, linear, upd, _SCATTER_REDUCE[reduction], include_self=True)
    return flat.reshape(data.shape)


def conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation) -> torch.Tensor:
    """A transposed convolution with (begin, end) padding pairs that may differ."""
    import torch.nn.functional as F
    nsp = x.dim() - 2
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nsp - 1]
    full = fn(x, w, b, stride=stride, padding=0, output_padding=output_padding, groups=groups, dilation=dilation)
    index = (slice(None), slice(None)) + tuple(slice(pb, full.shape[2 + a] - pe) for a, (pb, pe) in enumerate(padding))
    return full[index].contiguous()


__all__ += ["gather_nd", "scatter_elements", "scatter_nd", "conv_transpose"]


def _flat_lead(x: torch.Tensor, nsp: int, lead_dims: int = 1) -> torch.Tensor:
    """``x[..., *S]`` with its leading axes merged into ``lead_dims`` axes (the layouts F.* accept)."""
    return x.reshape((-1,) + (1,) * (lead_dims - 1) + tuple(x.shape[x.dim() - nsp:]))


def _unflat(y: torch.Tensor, x: torch.Tensor, nsp: int) -> torch.Tensor:
    return y.reshape(tuple(x.shape[:x.dim() - nsp]) + tuple(y.shape[y.dim() - nsp:]))


def take_rows(x: torch.Tensor, axis: int, have, need, size: int, fill: float = 0.0) -> torch.Tensor:
    """Rows ``need`` of a value whose rows ``have`` are in ``x``, rows outside ``[0, size)``
    filled with ``fill`` (as chunkc.passes.halo.take_rows; a view when nothing is filled)."""
    import torch.nn.functional as F
    lo, hi = max(need[0], 0), min(need[1], size)
    part = x.narrow(axis, lo - have[0], hi - lo)
    before, after = lo - need[0], need[1] - hi
    if not before and not after:
        return part
    pads = [0, 0] * (x.dim() - 1 - axis) + [before, after]
    return F.pad(part, pads, value=fill)


def _pad_flat(pairs) -> list:
    flat = []
    for b, e in reversed(tuple(pairs)):
        flat += [int(b), int(e)]
    return flat


def _crop(y: torch.Tensor, out_size) -> torch.Tensor:
    nsp = len(out_size)
    return y[(Ellipsis,) + tuple(slice(0, int(s)) for s in out_size)] if tuple(y.shape[-nsp:]) != tuple(out_size) else y


def max_pool(x, kernel, stride, padding, dilation, ceil_mode, out_size) -> torch.Tensor:
    """Max pooling over the last ``len(kernel)`` axes, any leading axes, any (begin, end) padding."""
    import torch.nn.functional as F
    nsp = len(kernel)
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nsp - 1]
    flat = _flat_lead(x, nsp)
    if any(b or e for b, e in padding):  # padding never wins a max
        flat = F.pad(flat, _pad_flat(padding), value=float("-inf") if x.is_floating_point() else int(
            torch.iinfo(x.dtype).min))
    y = fn(flat, kernel, stride=stride, padding=0, dilation=dilation, ceil_mode=ceil_mode)
    return _unflat(_crop(y, out_size), x, nsp).contiguous()


def avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, out_size) -> torch.Tensor:
    """Average pooling with PyTorch's divisors, any leading axes, any (begin, end) padding."""
    import torch.nn.functional as F
    nsp = len(kernel)
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nsp - 1]
    flat = _flat_lead(x, nsp)
    pads = _pad_flat(padding)
    padded = F.pad(flat, pads) if any(pads) else flat
    y = fn(padded, kernel, stride=stride, padding=0, ceil_mode=ceil_mode, count_include_pad=True)
    if not count_include_pad and any(pads):
        # the same windows over a mask of real elements: the ratio divides by the real count
        mask = F.pad(torch.ones((1,) + tuple(flat.shape[1:]), dtype=x.dtype, device=x.device), pads)
        y = y / fn(mask, kernel, stride=stride, padding=0, ceil_mode=ceil_mode, count_include_pad=True)
    return _unflat(_crop(y, out_size), x, nsp).contiguous()


def adaptive_avg_pool(x, output_size) -> torch.Tensor:
    import torch.nn.functional as F
    nsp = len(output_size)
    fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[nsp - 1]
    return _unflat(fn(_flat_lead(x, nsp), output_size), x, nsp)


def interpolate(x, nsp: int, **kwargs) -> torch.Tensor:
    """F.interpolate on ``x[..., *S]`` with any number of leading axes."""
    import torch.nn.functional as F
    return _unflat(F.interpolate(_flat_lead(x, nsp, 2), **kwargs), x, nsp)


def pad(x, pairs, mode: str) -> torch.Tensor:
    """Reflect, replicate or circular padding of the trailing padded axes (at most 3)."""
    import torch.nn.functional as F
    first = next((k for k, p in enumerate(pairs) if tuple(p) != (0, 0)), len(pairs))
    nsp = len(pairs) - first
    if nsp == 0:
        return x.clone()
    if nsp > 3:
        raise ChunkcError(f"pad: PyTorch pads at most 3 trailing axes in mode {mode!r}, got {nsp}")
    y = F.pad(_flat_lead(x, nsp), _pad_flat(pairs[first:]), mode=mode)
    return _unflat(y, x, nsp)


__all__ += ["max_pool", "avg_pool", "adaptive_avg_pool", "interpolate", "pad"]


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int,
                     scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
    """Causal attention of queries at rows ``offset ..`` of the causal square: query i
    attends keys j <= i + offset.  Keys past the last query's position are not read.

    On the CPU (see :func:`_split_causal_eligible`) the keys before ``offset``, which every
    query sees whole, and the causal square after it are two calls of the flash kernel (the
    square with ``is_causal``, so it skips the key blocks past the diagonal), merged by their
    log-sum-exp: no mask at all.  A mask makes the CPU kernel read a float copy of it for every
    key block and compute the square's upper half, 1.2-1.3x the time of the unchunked causal
    kernel at chunks of 128-1024 rows.  Elsewhere the mask covers the queries' rows only
    ([L, offset + L] bools, never S x S)."""
    n = q.shape[-2]
    stop = min(offset + n, k.shape[-2])
    if offset == 0:
        return F.scaled_dot_product_attention(q, k[..., :stop, :], v[..., :stop, :], is_causal=True, scale=scale,
                                              enable_gqa=enable_gqa)
    if _split_causal_eligible(q, k, v, enable_gqa):
        return _split_causal(q, k, v, offset, stop, scale)
    k, v = k[..., :stop, :], v[..., :stop, :]
    mask = torch.ones(n, stop, dtype=torch.bool, device=q.device).tril_(offset)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=enable_gqa)


def _split_causal_eligible(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, enable_gqa: bool) -> bool:
    """Whether ATen's CPU flash kernel (which returns the log-sum-exp) takes these operands: on
    the CPU, in one dtype, and the rule the memory records state too
    (chunkc.ir.ops.attention.cpu_flash_takes: shapes, grouped heads read in place, dtype,
    autograd not recording)."""
    return (q.device.type == "cpu" and q.dtype == k.dtype == v.dtype
            and cpu_flash_takes(q.shape, k.shape, v.shape, str(q.dtype).removeprefix("torch."),
                                torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad),
                                grouped=enable_gqa))


def _split_causal(q, k, v, offset: int, stop: int, scale: float | None) -> torch.Tensor:
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    seen = min(offset, stop)
    out, lse = flash(q, k[..., :seen, :], v[..., :seen, :], 0.0, False, scale=scale)[:2]
    if stop <= offset:
        return out
    square, lse_square = flash(q, k[..., offset:stop, :], v[..., offset:stop, :], 0.0, True, scale=scale)[:2]
    # the first call's share of each row's softmax: e^lse / (e^lse + e^lse_square)
    share = torch.sigmoid(lse - lse_square).unsqueeze(-1).to(out.dtype)
    return out.sub_(square).mul_(share).add_(square)


def group_norm_moments(x: torch.Tensor, groups: int) -> torch.Tensor:
    """E[x] and E[x^2] of each (sample, group) of ``x[N, C, ...]``, float64 ``[N, groups, 2]``
    (op group_norm_moments).

    One (sample, group) block at a time through ATen's group-norm kernel (a two-pass mean and
    variance, as unchunked ``F.group_norm``), whose normalized block is dropped: ``var_mean``
    over several axes runs one element at a time on the CPU, some 40 times slower.  The kernel
    returns ``rstd = 1 / sqrt(var + eps)``; with ``eps = 0`` it gives back the variance
    (``rstd = inf`` for a constant block: variance 0).  A block that is not dense (a slice of
    rows of a region input) is copied first.  Temporaries (the record's ``torch_workspace``):
    the normalized block, and the copy."""
    if x.dtype not in (torch.float32, torch.float64) or x.dim() < 2:
        grouped = x.unflatten(1, (groups, -1))
        var, mean = torch.var_mean(grouped, dim=tuple(range(2, grouped.dim())), correction=0)
        mean = mean.double()
        return torch.stack((mean, var.double() + mean * mean), dim=-1)
    n, per = x.shape[0], x.shape[1] // groups
    out = torch.empty((n, groups, 2), dtype=torch.float64, device=x.device)
    for b in range(n):
        for g in range(groups):
            block = x[b:b + 1, g * per:(g + 1) * per]
            if not block.is_contiguous():
                block = block.contiguous()
            stats = torch.ops.aten.native_group_norm(block, None, None, 1, per, block[0, 0].numel(), 1, 0.0)
            del block
            out[b, g, 0], out[b, g, 1] = stats[1].view(()), stats[2].view(())
            del stats
    mean, rstd = out[..., 0], out[..., 1]
    out[..., 1] = rstd.pow(-2).add_(mean * mean)
    return out


def group_norm_apply(x: torch.Tensor, moments: torch.Tensor, weight, bias, groups: int, eps: float) -> torch.Tensor:
    """group_norm of ``x`` with the statistics of :func:`group_norm_moments`: one fused
    multiply-add over ``x`` with per-(sample, channel) scale and shift."""
    mean = moments[..., 0]
    rstd = torch.rsqrt((moments[..., 1] - mean * mean).clamp_min(0) + eps)
    per_group = x.shape[1] // groups
    scale = rstd.repeat_interleave(per_group, dim=1)
    shift = -mean.repeat_interleave(per_group, dim=1) * scale
    if weight is not None:
        scale, shift = scale * weight, shift * weight
    if bias is not None:
        shift = shift + bias
    dtype = x.dtype
    for t in (weight, bias):
        dtype = torch.promote_types(dtype, t.dtype) if t is not None else dtype
    shape = x.shape[:2] + (1,) * (x.dim() - 2)
    return torch.addcmul(shift.to(dtype).view(shape), x, scale.to(dtype).view(shape))


def _attention_scores(q: torch.Tensor, k: torch.Tensor, mask, causal: bool, scale: float, query_offset: int,
                      key_offset: int) -> torch.Tensor:
    """The scaled scores q @ k^T (the heads already repeated), masked positions -inf."""
    scores = torch.matmul(q, k.transpose(-2, -1))
    scores.mul_(scale)
    if causal:  # key j (at row j + key_offset) is past query i (at row i + query_offset)
        past = torch.ones(scores.shape[-2], scores.shape[-1], dtype=torch.bool, device=scores.device)
        scores.masked_fill_(past.triu_(query_offset - key_offset + 1), float("-inf"))
    elif mask is not None and mask.dtype == torch.bool:
        scores.masked_fill_(mask.logical_not(), float("-inf"))
    elif mask is not None:
        scores.add_(mask)
    return scores


def attention_partial(k: torch.Tensor, v: torch.Tensor, q: torch.Tensor, mask, causal: bool, scale: float,
                      query_offset: int, key_offset: int, groups: int) -> torch.Tensor:
    """Attention of ``q`` over these keys, normalized over them, with the log-sum-exp of its
    scores in one more last column (op attention_partial; rows that attend no key: zeros and
    -inf).  The scores are made once: by ATen's CPU flash kernel, which returns the log-sum-exp,
    where it takes the operands (see :func:`_split_causal_eligible`; causal keys placed by
    the offsets as one or two calls), else by the reference formula on a score tile."""
    ev = v.shape[-1]
    if mask is None and _split_causal_eligible(q, k, v, groups > 1):  # (grouped heads read in place)
        out, lse = _partial_flash(q, k, v, causal, scale, query_offset - key_offset)
    else:
        if groups > 1:  # matmul reads each query head's own key head
            k, v = k.repeat_interleave(groups, dim=-3), v.repeat_interleave(groups, dim=-3)
        scores = _attention_scores(q, k, mask, causal, scale, query_offset, key_offset)
        top = scores.amax(-1, keepdim=True)
        top.masked_fill_(top.isneginf(), 0.0)
        total = scores.sub_(top).exp_().sum(-1, keepdim=True)
        out = torch.matmul(scores, v)
        del scores
        out.div_(total.clamp_min(torch.finfo(total.dtype).tiny))  # rows of no key: 0 / tiny
        lse = total.log_().add_(top).squeeze(-1)
    result = torch.empty(out.shape[:-1] + (ev + 1,), dtype=out.dtype, device=out.device)
    result[..., :ev] = out
    result[..., ev] = lse
    return result


def _partial_flash(q, k, v, causal: bool, scale: float, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, lse) of the flash kernel where query i attends key j when j <= i + ``shift``
    (``causal``), else every key: one call when the keys are all seen or the diagonal is the
    kernel's own (``shift`` 0), two merged when the first ``shift`` keys are seen by every row,
    the rows before ``-shift`` attending none."""
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    rows, keys = q.shape[-2], k.shape[-2]
    if not causal or shift >= keys - 1:
        return flash(q, k, v, 0.0, False, scale=scale)[:2]
    if shift == 0:
        return flash(q, k, v, 0.0, True, scale=scale)[:2]
    if shift > 0:
        out, lse = flash(q, k[..., :shift, :], v[..., :shift, :], 0.0, False, scale=scale)[:2]
        square, lse_square = flash(q, k[..., shift:, :], v[..., shift:, :], 0.0, True, scale=scale)[:2]
        merged = torch.logaddexp(lse, lse_square)
        out.mul_(torch.exp(lse - merged).unsqueeze(-1).to(out.dtype))
        out.add_(square.mul_(torch.exp(lse_square - merged).unsqueeze(-1).to(out.dtype)))
        return out, merged
    out = torch.zeros(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
    lse = torch.full(q.shape[:-1], float("-inf"), dtype=torch.float32, device=q.device)
    if -shift < rows:  # rows -shift.. see the keys from the first on, causally
        o, l = flash(q[..., -shift:, :], k, v, 0.0, True, scale=scale)[:2]
        out[..., -shift:, :] = o
        lse[..., -shift:] = l
    return out, lse


__all__ += ["attention_partial", "softmax_merge"]
