"""The NumPy/CuPy backend's one rule: call the op's registered reference.

Every op runs its reference through the runtime (``ref.softmax(xp, h, axis=-1)``),
so the generated code works with any array module that follows NumPy.  An op
whose record names a ``shape_attr`` (reshape, expand) gets that attribute from
the node's output type instead, so that inside a chunk loop the chunk axis has
the chunk's length.
"""

from __future__ import annotations

from ..ir.reference import needs_widening
from .codegen import NodeContext


def reference_call(ctx: NodeContext) -> str:
    """``ref.<op>(xp, *args, attr=value, ...)``; a node with bf16/f8/i4... values calls
    the reference widened (chunkc/ir/reference.py)."""
    overrides = {}
    shape_attr = ctx.node.op.shape_attr
    if shape_attr is not None:  # the attribute that states the output's shape: give the chunk's shape
        overrides[shape_attr] = ctx.out_shape(0)
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


__all__ = ["reference_call"]
