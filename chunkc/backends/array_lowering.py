"""Lowering table of the NumPy/CuPy backend: one rule per op.

Every op runs its registered reference through the runtime
(``ref.softmax(xp, h, axis=-1)``), so the generated code works with any array
module that follows NumPy.  An op whose record names a ``shape_attr`` (reshape,
expand) gets that attribute from the node's output type instead, so that inside
a chunk loop the chunk axis has the chunk's length.
"""

from __future__ import annotations

from typing import Mapping

from ..ir.reference import needs_widening
from ..ir.registry import all_ops
from .codegen import NodeContext, Rule


def reference_call(ctx: NodeContext, **overrides: str) -> str:
    """``ref.<op>(xp, *args, attr=value, ...)``; ``overrides`` replace attribute text.

    A node with bf16/f8/i4... values calls the reference widened (chunkc/ir/reference.py)."""
    parts = ["xp", *ctx.args]
    for key in ctx.attrs:
        parts.append(f"{key}={overrides[key] if key in overrides else ctx.attr(key)}")
    node = ctx.node
    out_dtypes = tuple(o.dtype.short for o in node.outputs)
    fn = f"ref.{ctx.op}"
    if needs_widening(node.op, [v.dtype for v in node.inputs] + [o.dtype for o in node.outputs]):
        fn = ctx.helper(f"{ctx.op}_widened", f"ref.widened({ctx.op!r}, {out_dtypes!r})")
    call = f"{fn}({', '.join(parts)})"
    if ctx.node.op.num_outputs != 1 and len(ctx.node.outputs) == 1:
        call += "[0]"  # references of multi-output ops return a sequence even when it has one value
    return call


def _default(ctx: NodeContext) -> str:
    shape_attr = ctx.node.op.shape_attr
    if shape_attr is not None:  # the attribute that states the output's shape: give the chunk's shape
        return reference_call(ctx, **{shape_attr: ctx.out_shape(0)})
    return reference_call(ctx)


def array_rules() -> Mapping[str, Rule]:
    """The table for every op registered now (references are looked up at run time)."""
    return {name: _default for name, op in all_ops().items() if op.reference is not None}


__all__ = ["array_rules", "reference_call"]
