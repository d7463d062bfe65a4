"""Contractions (matmul, linear, einsum...) and scaled dot-product attention."""

from __future__ import annotations

from ...ir.dtypes import DType
from ..codegen import Rule
from ._base import keywords, operands, rule, torch_dtype


# -- contractions ---------------------------------------------------------------------


def _contraction(fn: str, indices=None) -> Rule:
    def lower(ctx):
        idx = tuple(range(ctx.num_inputs())) if indices is None else indices
        args = operands(ctx, idx, ctx.out_type().dtype, strict=True)
        return f"{fn}({', '.join(args)})"
    return lower


rule("matmul")(_contraction("torch.matmul"))
rule("bmm")(_contraction("torch.bmm"))
rule("linear")(_contraction("F.linear"))


@rule("addmm")
def _addmm(ctx):
    args = operands(ctx, (0, 1, 2), ctx.out_type().dtype, strict=True)
    beta = ctx.attr("beta") if ctx.attrs["beta"] != 1 else None
    alpha = ctx.attr("alpha") if ctx.attrs["alpha"] != 1 else None
    return f"torch.addmm({', '.join(args)}{keywords(beta=beta, alpha=alpha)})"


@rule("einsum")
def _einsum(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=True)
    return f"torch.einsum({ctx.attr('equation')}, {', '.join(args)})"

# -- attention -----------------------------------------------------------------------------------


@rule("scaled_dot_product_attention")
def _sdpa(ctx):
    out = ctx.out_type().dtype
    q, k, v = operands(ctx, (0, 1, 2), out, strict=True)
    extra = ""
    if ctx.num_inputs() == 4:
        mask = ctx.arg(3)
        mt = ctx.in_type(3).dtype
        if mt != DType.bool and mt != out:
            mask = f"{mask}.to({torch_dtype(out)})"
        extra += f", attn_mask={mask}"
    scale = f", scale={ctx.attr('scale')}" if ctx.attrs["scale"] is not None else ""
    offset = ctx.attrs["query_offset"]
    if ctx.attrs["is_causal"] and not (isinstance(offset, int) and offset == 0):
        return f"rt.causal_attention({q}, {k}, {v}, {ctx.attr('query_offset')}{scale})"
    if ctx.attrs["is_causal"]:
        extra += ", is_causal=True"
    return f"F.scaled_dot_product_attention({q}, {k}, {v}{extra}{scale})"
