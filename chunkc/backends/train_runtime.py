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
  of the output gradients (``torch.autograd.grad``), the slices of the sliced inputs'
  gradients are written into their gradient buffers and the gradients of the inputs
  read whole (weights, keys and values) are accumulated.

So the memory a region holds between forward and backward is its inputs, and its
backward needs one chunk's intermediates at a time: activation checkpointing and
chunking at once, chosen by the plan.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

# How a tensor argument reaches the chunk function: (axis, unit) sliced, or None whole.
Slicing = tuple[int, int] | None

_STATIC = 6  # arguments of _ChunkedRegion.forward before the tensors


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
    result = _ChunkedRegion.apply(body, tuple(statics), int(extent), max(1, int(chunk)), tuple(inputs),
                                  tuple(outputs), *tensors)
    return result


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
    def forward(ctx, body, statics, extent, chunk, inputs, outputs, *tensors):
        ctx.body, ctx.statics, ctx.extent, ctx.chunk = body, statics, extent, chunk
        ctx.inputs, ctx.outputs = inputs, outputs
        ctx.set_materialize_grads(False)  # an output nobody differentiates sends None, not zeros
        ctx.save_for_backward(*tensors)
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
        tensors = ctx.saved_tensors
        inputs, outputs = ctx.inputs, ctx.outputs
        need = ctx.needs_input_grad[_STATIC:]
        grads: list[torch.Tensor | None] = [None] * len(tensors)
        # inputs read whole are leaves once, for every chunk; their gradients add up
        whole = {i: t.detach().requires_grad_() for i, t in enumerate(tensors) if need[i] and inputs[i] is None}
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
            if not roots or not leaves:
                continue
            got = torch.autograd.grad(roots, [leaf for _, leaf in leaves], seeds, allow_unused=True)
            del roots, seeds, parts
            for (i, _), g in zip(leaves, got):
                if g is None:
                    continue
                if grads[i] is None:
                    grads[i] = torch.zeros_like(tensors[i])
                if inputs[i] is None:
                    grads[i].add_(g)
                else:
                    axis, unit = inputs[i]
                    grads[i].narrow(axis, unit * start, unit * (stop - start)).copy_(g)
            del got, leaves, args
        return (None,) * _STATIC + tuple(grads)


__all__ = ["run_region", "Slicing"]
