"""Views and copies (reshape, permute, slice...), joining and splitting, indexing, creation, reordering."""

from __future__ import annotations

from ...ir.dtypes import DType
from ..codegen import NodeContext
from ..pyexpr import tuple_literal
from ._base import input_axes, operands, rule, torch_dtype


# -- shapes ------------------------------------------------------------------------------


@rule("reshape")
def _reshape(ctx):
    return f"{ctx.arg(0)}.reshape({ctx.out_shape(0)})"


@rule("expand")
def _expand(ctx):
    return f"{ctx.arg(0)}.expand({ctx.out_shape(0)})"


@rule("permute")
def _permute(ctx):
    return f"{ctx.arg(0)}.permute({ctx.attr('dims')})"


@rule("squeeze")
def _squeeze(ctx):
    t, axes = ctx.in_type(0), ctx.attrs["axes"]
    candidates = range(t.rank) if axes is None else input_axes(ctx, axes)
    dims = [k for k in candidates if isinstance(t.shape[k], int) and t.shape[k] == 1]
    if not dims:
        return f"{ctx.arg(0)}.view_as({ctx.arg(0)})"  # nothing to drop: a view, as in the IR
    return f"{ctx.arg(0)}.squeeze({tuple_literal([str(d) for d in dims])})"


@rule("unsqueeze")
def _unsqueeze(ctx):
    return f"{ctx.arg(0)}.unsqueeze({ctx.attr('axis')})"


def _bound(ctx: NodeContext, value) -> str:
    return "" if value is None else ctx.lit(value)


@rule("slice")
def _slice(ctx):
    t = ctx.in_type(0)
    axis = ctx.attrs["axis"] % t.rank
    step = ctx.attrs["step"]
    index = f"{_bound(ctx, ctx.attrs['start'])}:{_bound(ctx, ctx.attrs['end'])}" + (f":{step}" if step != 1 else "")
    return f"{ctx.arg(0)}[{':, ' * axis}{index}]"


@rule("contiguous")
def _contiguous(ctx):
    return f"{ctx.arg(0)}.contiguous()"


@rule("copy")
def _copy(ctx):
    return f"{ctx.arg(0)}.clone(memory_format=torch.contiguous_format)"

# -- joining, splitting, indexing ---------------------------------------------------------


@rule("concat")
def _concat(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype)
    return f"torch.cat([{', '.join(args)}], dim={ctx.attr('axis')})"


@rule("stack")
def _stack(ctx):
    args = operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype)
    return f"torch.stack([{', '.join(args)}], dim={ctx.attr('axis')})"


@rule("split")
def _split(ctx):
    sizes = ", ".join(ctx.size(s) for s in ctx.attrs["sizes"])
    call = f"torch.split({ctx.arg(0)}, [{sizes}], dim={ctx.attr('axis')})"
    return call if len(ctx.node.outputs) > 1 else f"{call}[0]"


@rule("take")
def _take(ctx):
    axis = ctx.attrs["axis"] % ctx.in_type(0).rank
    return f"{ctx.arg(0)}[{':, ' * axis}{ctx.arg(1)}]"


@rule("gather")
def _gather(ctx):
    index = ctx.arg(1) if ctx.in_type(1).dtype == DType.int64 else f"{ctx.arg(1)}.to(torch.int64)"
    return f"torch.gather({ctx.arg(0)}, {ctx.attr('axis')}, {index})"


@rule("embedding")
def _embedding(ctx):
    return f"F.embedding({ctx.arg(1)}, {ctx.arg(0)})"


@rule("gather_nd")
def _gather_nd(ctx):
    return f"rt.gather_nd({ctx.arg(0)}, {ctx.arg(1)}, {ctx.attr('batch_dims')})"


@rule("scatter_elements")
def _scatter_elements(ctx):
    return f"rt.scatter_elements({', '.join(ctx.args)}, {ctx.attr('axis')}, {ctx.attr('reduction')})"


@rule("scatter_nd")
def _scatter_nd(ctx):
    return f"rt.scatter_nd({', '.join(ctx.args)}, {ctx.attr('reduction')})"


@rule("size_tensor")
def _size_tensor(ctx):
    dtype = torch_dtype(ctx.out_type().dtype)
    if ctx.out_type().rank == 0:
        return f"torch.tensor({ctx.size(ctx.attrs['values'][0])}, dtype={dtype}, device={ctx.device()})"
    values = tuple_literal([ctx.size(v) for v in ctx.attrs["values"]]) if ctx.attrs["values"] else "()"
    return f"torch.tensor({values}, dtype={dtype}, device={ctx.device()}).reshape({ctx.out_shape(0)})"

# -- creation, masking, reordering ---------------------------------------------------------------


@rule("arange")
def _arange(ctx):
    return (f"torch.arange({ctx.attr('start')}, {ctx.attr('end')}, {ctx.attr('step')}, "
            f"dtype={torch_dtype(ctx.out_type().dtype)}, device={ctx.device()})")


@rule("full")
def _full(ctx):
    return (f"torch.full({ctx.out_shape(0)}, {ctx.attr('value')}, dtype={torch_dtype(ctx.out_type().dtype)}, "
            f"device={ctx.device()})")


@rule("full_like")
def _full_like(ctx):
    return f"torch.full_like({ctx.arg(0)}, {ctx.attr('value')}, dtype={torch_dtype(ctx.out_type().dtype)})"


@rule("triu", "tril")
def _tri(ctx):
    return f"torch.{ctx.op}({ctx.arg(0)}, diagonal={ctx.attr('diagonal')})"


@rule("flip")
def _flip(ctx):
    return f"torch.flip({ctx.arg(0)}, {ctx.lit(input_axes(ctx, ctx.attrs['axes']))})"


@rule("roll")
def _roll(ctx):
    axes = ctx.attrs["axes"]
    if axes is None:
        shifts = ctx.attrs["shifts"]
        return f"torch.roll({ctx.arg(0)}, {ctx.lit(shifts if isinstance(shifts, int) else shifts[0])})"
    return f"torch.roll({ctx.arg(0)}, {ctx.attr('shifts')}, {ctx.attr('axes')})"


@rule("tile")
def _tile(ctx):
    return f"torch.tile({ctx.arg(0)}, {ctx.attr('repeats')})"


@rule("topk")
def _topk(ctx):
    return (f"torch.topk({ctx.arg(0)}, {ctx.attr('k')}, dim={ctx.attr('axis')}, largest={ctx.attr('largest')}, "
            f"sorted={ctx.attr('sorted')})")


@rule("sort")
def _sort(ctx):
    return f"torch.sort({ctx.arg(0)}, dim={ctx.attr('axis')}, descending={ctx.attr('descending')}, stable=True)"
