"""Contractions: mm, bmm, matmul, linear, addmm, baddbmm, einsum."""

from __future__ import annotations
from chunkc.ir.ops.linalg import explicit_einsum_equation


import torch

from ..context import Args, Ctx
from .registry import converts

aten = torch.ops.aten


@converts(aten.mm, aten.matmul)
def matmul(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    other = a.mat2 if "mat2" in a else a.other
    return cx.op("matmul", cx.tensor(a.self, dt), cx.tensor(other, dt))


@converts(aten.bmm)
def bmm(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    return cx.op("bmm", cx.tensor(a.self, dt), cx.tensor(a.mat2, dt))


@converts(aten.linear)
def linear(cx: Ctx, a: Args):
    ins = [a.input, a.weight] + ([a.bias] if a.get("bias") is not None else [])
    return cx.op("linear", *ins)


@converts(aten.addmm)
def addmm(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    return cx.op("addmm", cx.tensor(a.self, dt), cx.tensor(a.mat1, dt), cx.tensor(a.mat2, dt),
                 beta=float(a.get("beta", 1)), alpha=float(a.get("alpha", 1)))


@converts(aten.baddbmm)
def baddbmm(cx: Ctx, a: Args):
    dt = cx.out_dtype()
    prod = cx.op("bmm", cx.tensor(a.batch1, dt), cx.tensor(a.batch2, dt))
    beta, alpha = a.get("beta", 1), a.get("alpha", 1)
    if alpha != 1:
        prod = cx.op("mul", prod, cx.const(alpha, dt))
    if beta == 0:
        return prod
    bias = cx.tensor(a.self, dt)
    if beta != 1:
        bias = cx.op("mul", bias, cx.const(beta, dt))
    return cx.op("add", bias, prod)


@converts(aten.einsum)
def einsum(cx: Ctx, a: Args):
    xs = list(a.tensors)
    dt = cx.out_dtype()
    eq = explicit_einsum_equation(a.equation, [x.rank for x in xs])
    return cx.op("einsum", *[cx.tensor(x, dt) for x in xs], equation=eq)


