"""The decomposition table the importer runs after ``torch.export``.

We start from ``torch.export.default_decompositions()`` (everything down to the
Core ATen op set) and *remove* the ops chunkc models whole.  Removing an entry
keeps the op in the exported graph, including CompositeImplicitAutograd ops
such as ``aten.linear``: ``run_decompositions`` preserves every CIA op whose
entry is missing from the table.

Why keep them whole:

* chunking reads one dimension record per op.  ``layer_norm`` kept whole says
  "rows carry, the normalized axis mixes" in one record; decomposed, it is a
  dozen reductions, broadcasts and views whose records must all be traced.
  The same holds for ``group_norm``, ``rms_norm``, ``softmax`` and
  ``scaled_dot_product_attention`` (whose query axis carries through the fused
  op: chunked attention without ever building the score matrix).
* ``linear`` and ``matmul`` stay contractions with their batch axes intact,
  instead of ``view -> mm -> _unsafe_view`` chains that hide the sequence axis
  inside a merged ``B*L`` axis.
* full decomposition breaks models on torch 2.13: the fully decomposed diffusers
  UNet fails at run time (``native_group_norm``: "Expected X.is_contiguous(memory_format)",
  fed a non-contiguous tensor by the decomposed attention).  Decomposing GPT-2's
  ``scaled_dot_product_attention`` to core ATen is reported to hit a ``view`` of
  non-contiguous strides (not reproduced with the zoo's GPT-2 on transformers 5.23).
  Keeping ``group_norm`` and ``scaled_dot_product_attention`` whole avoids both.
* ``adaptive_avg_pool2d``, ``upsample_*``, ``pad``, ``roll``, ``triu``/``tril``,
  ``masked_fill``, ``stack``, ``tile`` and the activations map one-to-one to
  chunkc ops; their decompositions produce ``as_strided``, index arithmetic or
  ``where`` chains that carry less dimension information.

Everything else is decomposed as usual, so the importer sees the Core ATen op
set plus the ops below; :func:`preserved_ops` lists them for the docs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

aten = torch.ops.aten


@dataclass(frozen=True)
class Preserved:
    op: torch._ops.OpOverload
    reason: str


def _keep(ops, reason: str) -> list[Preserved]:
    return [Preserved(op, reason) for op in ops]


PRESERVED: tuple[Preserved, ...] = tuple(
    _keep([aten.linear.default, aten.matmul.default, aten.einsum.default],
          "contractions keep their batch axes (no view/mm/_unsafe_view chains)")
    + _keep([aten.layer_norm.default, aten.group_norm.default, aten.rms_norm.default],
            "one normalization record; the decomposed group_norm fails at run time in the UNet "
            "(native_group_norm fed a non-contiguous tensor)")
    + _keep([aten.instance_norm.default], "becomes group_norm with one channel per group (its decomposition "
            "is a training-mode batch norm over a reshaped batch)")
    + _keep([aten.scaled_dot_product_attention.default, aten._scaled_dot_product_flash_attention_for_cpu.default],
            "fused attention chunks along queries without the L x L scores; its decomposition hands "
            "non-contiguous tensors to later ops")
    + _keep([aten.softmax.int, aten.log_softmax.int], "one op that mixes one axis")
    + _keep([aten.silu.default, aten.hardswish.default, aten.hardsigmoid.default, aten.mish.default,
             aten.softplus.default], "activations are single chunkc ops")
    + _keep([aten.pad.default, aten.adaptive_avg_pool2d.default, aten.upsample_nearest1d.default,
             aten.upsample_nearest2d.default, aten.upsample_nearest3d.default, aten.upsample_linear1d.default,
             aten.upsample_linear1d.vec, aten.upsample_bilinear2d.default, aten.upsample_trilinear3d.default,
             aten.upsample_trilinear3d.vec],
            "map one-to-one (their decompositions use as_strided or index arithmetic on float sizes)")
    + _keep([aten.masked_fill.Scalar, aten.masked_fill.Tensor, aten.triu.default, aten.tril.default,
             aten.roll.default, aten.stack.default, aten.tile.default],
            "map one-to-one to chunkc ops")
)


def preserved_ops() -> list[Preserved]:
    return list(PRESERVED)


def decomposition_table() -> dict:
    """Core ATen decompositions minus the ops chunkc keeps whole."""
    table = torch.export.default_decompositions()
    for p in PRESERVED:
        table.pop(p.op, None)
    return table
