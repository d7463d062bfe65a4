"""MatMul, Gemm and Einsum.

Gemm becomes ``linear`` when it is one (``transB=1``, unit alpha and beta, a
1-D bias), which is how exporters write nn.Linear; otherwise a short
matmul/mul/add composition.  Einsum equations are rewritten into chunkc's
explicit form (ellipses expanded into letters, implicit outputs spelled out).
"""

from __future__ import annotations

import string

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


def explicit_equation(ctx, equation: str, ranks: list[int]) -> str:
    """``'...ij,...jk'`` -> ``'abij,abjk->abik'``: explicit output, no ellipsis."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ctx.fail(f"equation {equation!r} names {len(terms)} operands, got {len(ranks)} inputs")
    used = set(c for c in eq if c.isalpha())
    free = [c for c in string.ascii_letters if c not in used]
    ell_rank = 0
    for term, rank in zip(terms, ranks):
        if "..." in term:
            ell_rank = max(ell_rank, rank - len(term.replace("...", "")))
    if ell_rank > len(free):
        raise ctx.fail(f"equation {equation!r} has too many axes under its ellipsis")
    ell = "".join(free[:ell_rank])
    new_terms = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            k = rank - len(term.replace("...", ""))
            term = term.replace("...", ell[ell_rank - k:] if k else "")
        new_terms.append(term)
    for t in new_terms:
        if not all(c.isalpha() for c in t):
            raise ctx.fail(f"equation {equation!r} is not a valid einsum equation")
    if arrow:
        out = out.replace("...", ell)
    else:  # implicit output: the ellipsis axes, then letters that appear once, sorted
        counts: dict[str, int] = {}
        for t in new_terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ",".join(new_terms) + "->" + out


@converter("Einsum")
def einsum(ctx, node):
    values = [ctx.value(i) for i in range(len(node.inputs)) if ctx.has(i)]
    equation = explicit_equation(ctx, str(node.attr("equation")), [v.rank for v in values])
    ctx.set(0, ctx.op("einsum", *values, equation=equation))
