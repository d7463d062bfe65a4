"""Normalizations: layer_norm, group_norm, rms_norm, batch_norm (inference).

The ``native_*`` forms also return statistics (mean, rstd); those outputs are
left out and refused only if something reads them.
"""

from __future__ import annotations

import torch

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


def _affine(cx: Ctx, weight, bias):
    """chunkc takes (weight?, bias?) positionally: a bias without a weight gets a weight of ones."""
    if weight is None and bias is not None:
        weight = cx.op("full_like", bias, value=1.0)
    return [v for v in (weight, bias) if v is not None]


def _stats_unused(cx: Ctx, first: int = 1):
    for i in range(first, len(cx.out_types)):
        if cx.output_used(i):
            raise cx.fail(f"output {i} (a saved statistic for the backward pass) is used")


@converts(aten.layer_norm, aten.native_layer_norm)
def layer_norm(cx: Ctx, a: Args):
    _stats_unused(cx)
    y = cx.op("layer_norm", a.input, *_affine(cx, a.get("weight"), a.get("bias")),
              num_axes=len(a.normalized_shape), eps=float(a.eps))
    return y if cx.node.target.overloadpacket is aten.layer_norm else (y, None, None)


@converts(aten.rms_norm, aten._fused_rms_norm)
def rms_norm(cx: Ctx, a: Args):
    _stats_unused(cx)
    ins = [a.input] + ([a.weight] if a.get("weight") is not None else [])
    eps = a.get("eps")
    y = cx.op("rms_norm", *ins, num_axes=len(a.normalized_shape), eps=None if eps is None else float(eps))
    return y if cx.node.target.overloadpacket is aten.rms_norm else (y, None)


@converts(aten.group_norm, aten.native_group_norm)
def group_norm(cx: Ctx, a: Args):
    _stats_unused(cx)
    groups = a.num_groups if "num_groups" in a else a.group
    y = cx.op("group_norm", a.input, *_affine(cx, a.get("weight"), a.get("bias")),
              num_groups=int(groups), eps=float(a.eps))
    return y if cx.node.target.overloadpacket is aten.group_norm else (y, None, None)


@converts(aten.batch_norm, aten._native_batch_norm_legit_no_training, aten._native_batch_norm_legit,
          aten.native_batch_norm, aten._native_batch_norm_legit_functional)
def batch_norm(cx: Ctx, a: Args):
    _stats_unused(cx)
    x, weight, bias = a.input, a.get("weight"), a.get("bias")
    mean, var = a.get("running_mean"), a.get("running_var")
    if a.get("training", False) or mean is None or var is None:
        y = _batch_statistics_norm(cx, x, weight, bias, float(a.eps))
    else:
        y = cx.op("batch_norm", x, mean, var, *_affine(cx, weight, bias), eps=float(a.eps))
    if cx.node.target.overloadpacket is aten.batch_norm:
        return y
    return (y,) + (None,) * (len(cx.out_types) - 1)


def _batch_statistics_norm(cx: Ctx, x, weight, bias, eps: float):
    """Batch norm with the batch's own statistics (training mode, or no running stats;
    instance norm decomposes to this): normalize over every axis but the channels (1)."""
    axes = tuple(k for k in range(x.rank) if k != 1)
    mean = cx.op("mean", x, axes=axes, keepdim=True)
    var = cx.op("var", x, axes=axes, keepdim=True, correction=0)
    y = cx.op("mul", cx.op("sub", x, mean), cx.op("rsqrt", cx.op("add", var, cx.const(eps, x.dtype))))
    shape = (x.shape[1],) + (1,) * (x.rank - 2)
    if weight is not None:
        y = cx.op("mul", y, cx.op("reshape", weight, shape=shape))
    if bias is not None:
        y = cx.op("add", y, cx.op("reshape", bias, shape=shape))
    return y


@converts(aten.instance_norm)
def instance_norm(cx: Ctx, a: Args):
    x = a.input
    if not a.get("use_input_stats", True):  # running statistics: batch norm in inference form
        return cx.op("batch_norm", x, a.running_mean, a.running_var, *_affine(cx, a.get("weight"), a.get("bias")),
                     eps=float(a.eps))
    # per-sample, per-channel statistics: group norm with one channel per group
    return cx.op("group_norm", x, *_affine(cx, a.get("weight"), a.get("bias")), num_groups=int(x.shape[1]),
                 eps=float(a.eps))
