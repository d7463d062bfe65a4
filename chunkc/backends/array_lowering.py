"""The NumPy/CuPy backend's one rule: call the op's registered reference.

Every op runs its reference through the runtime (``ref.softmax(xp, h, axis=-1)``),
so the generated code works with any array module that follows NumPy.  Inside a
chunk loop the attributes are the loop's (chunkc.passes.plan_index.loop_attrs: an
attribute that states the output shape has the rows the node computes).
"""

from __future__ import annotations

from ..ir.reference import needs_widening
from .codegen import NodeContext


def reference_call(ctx: NodeContext) -> str:
    """``ref.<op>(xp, *args, attr=value, ...)``; a node with bf16/f8/i4... values calls
    the reference widened (chunkc/ir/reference.py)."""
    parts = ["xp", *ctx.args]
    for key in ctx.attrs:
        parts.append(f"{key}={ctx.attr(key)}")
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
