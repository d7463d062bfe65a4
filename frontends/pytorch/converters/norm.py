"""Normalizations: layer_norm, group_norm, rms_norm, batch_norm (inference).

The ``native_*`` forms also return statistics (mean, rstd); those outputs are
left out and refused only if something reads them.
"""

from __future__ import annotations

import torch

from ..context import Args, Ctx
from . import converts

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
    if a.get("training", False):
        raise cx.fail("batch norm in training mode (call module.eval() before importing)")
    mean, var = a.get("running_mean"), a.get("running_var")
    if mean is None or var is None:
        raise cx.fail("batch norm without running statistics (track_running_stats=False) normalizes "
                      "with batch statistics; chunkc's batch_norm is the inference form")
    _stats_unused(cx)
    y = cx.op("batch_norm", a.input, mean, var, *_affine(cx, a.get("weight"), a.get("bias")), eps=float(a.eps))
    if cx.node.target.overloadpacket is aten.batch_norm:
        return y
    return (y,) + (None,) * (len(cx.out_types) - 1)
