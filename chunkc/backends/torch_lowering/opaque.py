"""Opaque nodes: a validated lookup of their ATen target through ``torch.ops``."""

from __future__ import annotations

from ..torch_runtime import parse_target, torch_op
from ._base import rule


# -- opaque ------------------------------------------------------------------------------


@rule("opaque")
def _opaque(ctx):
    target = ctx.attrs["target"]
    ns, name, overload = parse_target(target)  # validated here, and again when the module loads
    returns = len(torch_op(target)._schema.returns)
    if returns != len(ctx.node.outputs):
        raise ctx.fail(f"target {target} returns {returns} value(s) but the node declares "
                       f"{len(ctx.node.outputs)} result type(s)")
    op = ctx.helper(f"op_{name}", f"rt.torch_op({target!r})")
    return f"{op}({', '.join(ctx.args)})"
