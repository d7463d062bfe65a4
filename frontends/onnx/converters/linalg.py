"""MatMul, Gemm and Einsum.

Gemm becomes ``linear`` when it is one (``transB=1``, unit alpha and beta, a
1-D bias), which is how exporters write nn.Linear; otherwise a short
matmul/mul/add composition.  Einsum equations are rewritten into chunkc's
explicit form (ellipses expanded into letters, implicit outputs spelled out).
"""

from __future__ import annotations
from chunkc.errors import IRError
from chunkc.ir.ops.linalg import explicit_einsum_equation


from .registry import converter


@converter("MatMul")
def matmul(ctx, node):
    ctx.set(0, ctx.op("matmul", ctx.value(0), ctx.value(1)))


@converter("Gemm")
def gemm(ctx, node):
    a, b = ctx.value(0), ctx.value(1)
    c = ctx.optional_value(2)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    trans_a, trans_b = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    if (trans_b and not trans_a and alpha == 1.0 and (c is None or (beta == 1.0 and c.rank == 1
                                                                    and c.shape[0] == b.shape[0]))):
        ctx.set(0, ctx.op("linear", a, b, *([c] if c is not None else [])))
        return
    if trans_a:
        a = ctx.op("permute", a, dims=(1, 0))
    if trans_b:
        b = ctx.op("permute", b, dims=(1, 0))
    y = ctx.op("matmul", a, b)
    if alpha != 1.0:
        y = ctx.op("mul", y, ctx.scalar(alpha, y.dtype))
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = ctx.op("mul", c, ctx.scalar(beta, c.dtype))
        y = ctx.op("add", y, c)
    ctx.set(0, y)


@converter("Einsum")
def einsum(ctx, node):
    values = [ctx.value(i) for i in range(len(node.inputs)) if ctx.has(i)]
    try:
        equation = explicit_einsum_equation(str(node.attr("equation")), [v.rank for v in values])
    except IRError as exc:
        raise ctx.fail(str(exc).removeprefix("op einsum: ")) from None
    ctx.set(0, ctx.op("einsum", *values, equation=equation))
