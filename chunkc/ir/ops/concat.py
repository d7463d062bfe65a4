"""Joining and splitting: concat, split (several outputs, views), stack.

Every axis other than the joined or split one carries, from every input.
"""

from __future__ import annotations

import sympy

from ..dims import AxisSource, DimRecord, MIX, NEW
from ..elements import at, index, indices
from ..kernel_workspace import promoted_operands
from ..lowering import LoweringContext, all_operands
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, format_size, normalize, sizes_equal
from ..types import TensorType
from ._common import array_result_dtype, carry_from, fail, norm_axis, result_dtype


def _same_except(op: str, ins, axis: int | None) -> None:
    """Every input has input 0's rank and sizes, except along ``axis``."""
    first = ins[0]
    for i, t in enumerate(ins[1:], 1):
        if t.rank != first.rank:
            raise fail(op, f"input {i} {t} has rank {t.rank}, input 0 {first} has rank {first.rank}")
        for k, (a, b) in enumerate(zip(first.shape, t.shape)):
            if k != axis and not sizes_equal(a, b):
                raise fail(op, f"input {i} {t} and input 0 {first} differ along axis {k}: "
                               f"{format_size(b)} != {format_size(a)}")


# -- concat ---------------------------------------------------------------------------------


def _concat_infer(ins, attrs):
    first = ins[0]
    if first.rank == 0:
        raise fail("concat", f"cannot concatenate 0-d inputs ({first}); unsqueeze them first")
    axis = norm_axis("concat", attrs["axis"], first.rank)
    _same_except("concat", ins, axis)
    total: Size = 0
    for t in ins:
        total = normalize(total + t.shape[axis])
    return (TensorType(result_dtype(ins), first.shape[:axis] + (total,) + first.shape[axis + 1:]),)


def _concat_dims(ins, attrs, outs) -> DimRecord:
    axis = norm_axis("concat", attrs["axis"], ins[0].rank)
    return (tuple(MIX if k == axis else carry_from(*(AxisSource(i, k) for i in range(len(ins))))
                  for k in range(ins[0].rank)),)


def _concat_ref(xp, *xs, axis):
    # into a C-contiguous result, as torch.cat's and as the record says (a fresh output is
    # contiguous): xp.concatenate alone lays the result out in the inputs' stride order, so a
    # reshape of a concat of permuted views (rotary halves of attention heads) would copy
    a = axis % xs[0].ndim
    shape = list(xs[0].shape)
    shape[a] = sum(x.shape[a] for x in xs)
    out = xp.empty(tuple(shape), dtype=array_result_dtype(*xs))
    return xp.concatenate(xs, axis=a, out=out, casting="unsafe")


def _concat_elements(fs, attrs, ins, outs):
    if outs[0].dtype.is_floating and any(not t.dtype.is_floating for t in ins):
        return None
    axis = norm_axis("concat", attrs["axis"], ins[0].rank)
    i, offset, branches = index(axis), 0, []
    for f, t in zip(fs, ins):
        position = list(indices(t.rank))
        position[axis] = i - offset
        offset = normalize(offset + t.shape[axis])
        branches.append((at(f, position), sympy.Lt(i, offset)))
    branches[-1] = (branches[-1][0], True)
    return sympy.Piecewise(*branches)


register(OpDef(name="concat", saves=(), infer=_concat_infer, dims=_concat_dims, reference=_concat_ref, elements=_concat_elements,
               num_inputs=(1, None), attrs={"axis": REQUIRED}, flops=lambda *a: 0,
               torch=lambda ctx: f"torch.cat([{', '.join(all_operands(ctx))}], dim={ctx.attr('axis')})",
               torch_workspace=promoted_operands(None, cpu_copies_in_own_dtype=True),
               doc="concat(*xs, axis): join along an existing axis. Carries: every other axis, from every input."))


# -- split ----------------------------------------------------------------------------------


def _split_sizes(x: TensorType, attrs) -> tuple[int, tuple[Size, ...]]:
    axis = norm_axis("split", attrs["axis"], x.rank)
    sizes = attrs["sizes"]
    if not isinstance(sizes, tuple) or not sizes:
        raise fail("split", f"sizes must be a non-empty tuple of sizes, got {sizes!r}")
    total: Size = 0
    for s in sizes:
        if isinstance(s, int) and s < 0:
            raise fail("split", f"sizes {sizes} holds a negative size")
        total = normalize(total + s)
    if not sizes_equal(total, x.shape[axis]):
        raise fail("split", f"sizes {tuple(format_size(s) for s in sizes)} add up to {format_size(total)}, "
                            f"but axis {axis} of input {x} has size {format_size(x.shape[axis])}")
    return axis, sizes


def _split_infer(ins, attrs):
    x = ins[0]
    if x.rank == 0:
        raise fail("split", f"cannot split a 0-d input {x}")
    axis, sizes = _split_sizes(x, attrs)
    return tuple(x.with_shape(x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in sizes)


def _split_dims(ins, attrs, outs) -> DimRecord:
    # along the split axis output j starts at an offset into x: no matching slice
    axis = norm_axis("split", attrs["axis"], ins[0].rank)
    one = tuple(MIX if k == axis else carry_from(AxisSource(0, k)) for k in range(ins[0].rank))
    return tuple(one for _ in outs)


def _split_ref(xp, x, sizes, axis):
    outs, start = [], 0
    index = [slice(None)] * x.ndim
    for s in sizes:
        index[axis] = slice(start, start + int(s))
        outs.append(x[tuple(index)])
        start += int(s)
    return tuple(outs)


def _split_torch(ctx: LoweringContext) -> str:
    sizes = ", ".join(ctx.size(s) for s in ctx.attrs["sizes"])
    call = f"torch.split({ctx.arg(0)}, [{sizes}], dim={ctx.attr('axis')})"
    return call if len(ctx.node.outputs) > 1 else f"{call}[0]"


register(OpDef(name="split", saves=(), infer=_split_infer, dims=_split_dims, reference=_split_ref, torch=_split_torch,
               view_strides=lambda ins, attrs, strides: tuple(strides), num_outputs=None,
               attrs={"sizes": REQUIRED, "axis": REQUIRED}, size_attrs=("sizes",), flops=lambda *a: 0,
               doc="split(x, sizes=(a, b, ...), axis) -> one output per size; every output is a view of x "
                   "with x's strides. Carries: every axis but `axis`."))


# -- stack ----------------------------------------------------------------------------------


def _stack_infer(ins, attrs):
    first = ins[0]
    axis = norm_axis("stack", attrs["axis"], first.rank + 1)
    _same_except("stack", ins, None)
    return (TensorType(result_dtype(ins), first.shape[:axis] + (len(ins),) + first.shape[axis:]),)


def _stack_dims(ins, attrs, outs) -> DimRecord:
    axis = norm_axis("stack", attrs["axis"], ins[0].rank + 1)
    flows = [carry_from(*(AxisSource(i, k) for i in range(len(ins)))) for k in range(ins[0].rank)]
    flows.insert(axis, NEW)
    return (tuple(flows),)


def _stack_ref(xp, *xs, axis):
    return xp.stack(xs, axis=axis, dtype=array_result_dtype(*xs))


register(OpDef(name="stack", saves=(), infer=_stack_infer, dims=_stack_dims, reference=_stack_ref,
               num_inputs=(1, None), attrs={"axis": REQUIRED}, flops=lambda *a: 0,
               torch=lambda ctx: f"torch.stack([{', '.join(all_operands(ctx))}], dim={ctx.attr('axis')})",
               torch_workspace=promoted_operands(None, cpu_copies_in_own_dtype=True),
               doc="stack(*xs, axis): join along a new axis. Carries: every axis of the inputs, from every input."))
