"""The chunk loop of a training program: a region as a ``torch.autograd.Function``.

Generated training code (:mod:`chunkc.backends.torch_train`) emits each chunk region
as a method that computes one chunk (``region0(self, start, stop, ...)``) and calls
:func:`run_region` with it.  Autograd then sees the region as one node:

* **forward** runs the chunks one after another without recording them (autograd runs a
  Function's forward with grad disabled), writing each chunk of every output into a
  buffer allocated at the first chunk; it saves only the region's tensor inputs
  (weights are inputs too), never the chunks' intermediates;
* **backward** runs the chunks again, one at a time, with grad enabled: each chunk's
  sliced inputs become leaves, its outputs are back-propagated with that chunk's slice
  of the output gradients (``torch.autograd.backward`` onto the leaves); the chunks of
  the sliced inputs' gradients are added into their place in the gradient buffers, and
  the inputs read whole (weights, keys and values) are leaves whose ``.grad`` *is* their
  place in the buffer, so that autograd adds each chunk's contribution in as soon as it
  is computed (no second full-size gradient held to the end of the chunk).

Inputs that are views of one base which they cover together (the query, key and value
heads split from one projection) reach the Function as that base
(:func:`storage_bases`): their gradients are written into one base-shaped buffer that
autograd hands straight to the base's producer, instead of one buffer per view that the
views' backward functions then copy into a new base-shaped gradient.

So the memory a region holds between forward and backward is its inputs, and its
backward needs one chunk's intermediates at a time: activation checkpointing and
chunking at once, chosen by the plan.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

# How a tensor argument reaches the chunk function: (axis, unit) sliced, or None whole.
Slicing = tuple[int, int] | None

_STATIC = 7  # arguments of _ChunkedRegion.forward before the tensors


def run_region(body: Callable, statics: tuple, extent: int, chunk: int, inputs: Sequence[Slicing],
               outputs: Sequence[tuple[int, int]], *tensors: torch.Tensor):
    """Run a chunk region over ``tensors`` (one per entry of ``inputs``).

    ``body(start, stop, *statics, *chunk_args)`` computes chunk units ``[start, stop)`` and
    returns the chunk of every region output; a sliced tensor arrives as its slice of
    ``unit * (stop - start)`` elements along ``axis``, a whole one as it is.  ``outputs``
    gives each output's (axis, unit).  Returns the outputs, one tensor or a tuple.
    """
    if len(tensors) != len(inputs):
        raise ValueError(f"run_region: {len(tensors)} tensors for {len(inputs)} input slicings")
    bases, layout = storage_bases(tensors)
    return _ChunkedRegion.apply(body, tuple(statics), int(extent), max(1, int(chunk)), tuple(inputs),
                                tuple(outputs), layout, *bases)


# Where a region input lies in the tensors the Function receives: (base index, None) for the
# base itself, or (base index, (size, stride, storage offset from the base's)) for a view of it.
Layout = tuple[int, tuple[tuple[int, ...], tuple[int, ...], int] | None]


def storage_bases(tensors: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], tuple[Layout, ...]]:
    """The tensors a region's Function takes, and where each input lies in them.

    Inputs that are views of one contiguous base which they cover together (the query, key
    and value heads split from one projection) are passed as that base: the region's
    backward then writes their gradients into one base-shaped buffer, which autograd hands
    to the base's producer, instead of returning one buffer per view that the views'
    backward functions copy into a new base-shaped gradient.  Every other input is passed
    as it is."""
    by_base: dict[int, list[int]] = {}
    for i, t in enumerate(tensors):
        b = t._base if isinstance(t, torch.Tensor) else None
        if (b is not None and b.is_contiguous() and b.dtype == t.dtype and t.requires_grad and b.requires_grad
                and _injective(t)):
            by_base.setdefault(id(b), []).append(i)
    grouped: dict[int, torch.Tensor] = {}
    for members in by_base.values():
        b = tensors[members[0]]._base
        distinct = {(tuple(tensors[i].shape), tuple(tensors[i].stride()), tensors[i].storage_offset()): tensors[i]
                    for i in members}
        if sum(t.numel() for t in distinct.values()) >= b.numel():
            for i in members:
                grouped[i] = b
    bases: list[torch.Tensor] = []
    slots: dict[int, int] = {}
    layout: list[Layout] = []
    for i, t in enumerate(tensors):
        b = grouped.get(i, t)
        k = slots.get(id(b))
        if k is None:
            k = slots[id(b)] = len(bases)
            bases.append(b)
        if b is t:
            layout.append((k, None))
        else:
            layout.append((k, (tuple(t.shape), tuple(t.stride()), t.storage_offset() - b.storage_offset())))
    return bases, tuple(layout)


def _injective(t: torch.Tensor) -> bool:
    """Whether no two elements of ``t`` share memory (then adding into a view of it is exact)."""
    dims = sorted((st, n) for n, st in zip(t.shape, t.stride()) if n > 1)
    span = 1  # elements covered by the dimensions of smaller strides
    for st, n in dims:
        if st < span:
            return False
        span = st * (n - 1) + span
    return True


def _view(base: torch.Tensor, where) -> torch.Tensor:
    if where is None:
        return base
    size, stride, offset = where
    return base.as_strided(size, stride, base.storage_offset() + offset)


def _chunk_args(tensors, inputs: Sequence[Slicing], start: int, stop: int) -> list:
    args = []
    for t, s in zip(tensors, inputs):
        if s is None:
            args.append(t)
        else:
            axis, unit = s
            args.append(t.narrow(axis, unit * start, unit * (stop - start)))
    return args


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class _ChunkedRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, body, statics, extent, chunk, inputs, outputs, layout, *bases):
        ctx.body, ctx.statics, ctx.extent, ctx.chunk = body, statics, extent, chunk
        ctx.inputs, ctx.outputs, ctx.layout = inputs, outputs, layout
        ctx.set_materialize_grads(False)  # an output nobody differentiates sends None, not zeros
        ctx.save_for_backward(*bases)
        tensors = [_view(bases[k], where) for k, where in layout]
        buffers: list[torch.Tensor] | None = None
        for start in range(0, extent, chunk):
            stop = min(start + chunk, extent)
            parts = _as_tuple(body(start, stop, *statics, *_chunk_args(tensors, inputs, start, stop)))
            if len(parts) != len(outputs):
                raise ValueError(f"run_region: the chunk function returned {len(parts)} outputs, expected "
                                 f"{len(outputs)}")
            if buffers is None:
                buffers = []
                for p, (axis, unit) in zip(parts, outputs):
                    shape = list(p.shape)
                    shape[axis] = unit * extent
                    buffers.append(torch.empty(shape, dtype=p.dtype, device=p.device))
            for buf, p, (axis, unit) in zip(buffers, parts, outputs):
                buf.narrow(axis, unit * start, unit * (stop - start)).copy_(p)
            del parts
        if buffers is None:
            raise ValueError("run_region: a region over 0 units has no chunk to run")
        ctx.mark_non_differentiable(*[b for b in buffers if not b.is_floating_point()])
        return buffers[0] if len(buffers) == 1 else tuple(buffers)

    @staticmethod
    def backward(ctx, *grad_outputs):
        bases = ctx.saved_tensors
        inputs, outputs, layout = ctx.inputs, ctx.outputs, ctx.layout
        need_base = ctx.needs_input_grad[_STATIC:]
        tensors = [_view(bases[k], where) for k, where in layout]
        need = [need_base[k] for k, _ in layout]
        grads: list[torch.Tensor | None] = [None] * len(bases)  # per base, allocated at its first gradient

        def grad_view(i: int) -> torch.Tensor:
            k, where = layout[i]
            if grads[k] is None:
                grads[k] = torch.zeros_like(bases[k])
            return _view(grads[k], where)

        # inputs read whole are leaves once, for every chunk: autograd adds each chunk's
        # gradient into their .grad as soon as it is computed (a view of the base's buffer)
        whole: dict[int, torch.Tensor] = {}
        for i, t in enumerate(tensors):
            if need[i] and inputs[i] is None:
                whole[i] = t.detach().requires_grad_()
                whole[i].grad = grad_view(i)
        for start in range(0, ctx.extent, ctx.chunk):
            stop = min(start + ctx.chunk, ctx.extent)
            args = _chunk_args(tensors, inputs, start, stop)
            leaves: list[tuple[int, torch.Tensor]] = []
            for i, a in enumerate(args):
                if i in whole:
                    args[i] = whole[i]
                    leaves.append((i, args[i]))
                elif need[i]:
                    args[i] = a.detach().requires_grad_()
                    leaves.append((i, args[i]))
            with torch.enable_grad():
                parts = _as_tuple(ctx.body(start, stop, *ctx.statics, *args))
            roots, seeds = [], []
            for p, g, (axis, unit) in zip(parts, grad_outputs, outputs):
                if g is not None and p.requires_grad:
                    roots.append(p)
                    seeds.append(g.narrow(axis, unit * start, unit * (stop - start)))
            del parts
            if not roots or not leaves:
                continue
            with warnings.catch_warnings():  # a whole input's buffer is a view of its base's: not dense
                warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
                torch.autograd.backward(roots, seeds, inputs=[leaf for _, leaf in leaves])
            del roots, seeds
            for i, leaf in leaves:  # a sliced input's chunk of gradient, added into its place
                if i in whole or leaf.grad is None:
                    continue
                axis, unit = inputs[i]
                grad_view(i).narrow(axis, unit * start, unit * (stop - start)).add_(leaf.grad)
                leaf.grad = None
            del leaves, args
        return (None,) * _STATIC + tuple(grads)


__all__ = ["run_region", "storage_bases", "Slicing"]
