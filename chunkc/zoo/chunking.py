"""Hand chunking in the style of OpenFold's `chunk_layer`: run a function over slices of a
batch-like axis and assemble the full result.

The result is preallocated and written slice by slice (as OpenFold does), so the peak holds
the full output plus one slice of the intermediates, never a list of all slices.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor


def chunk_apply(
    fn: Callable[..., Tensor],
    sliced: Sequence[Tensor],
    shared: Sequence[Tensor] = (),
    *,
    axis: int,
    chunk_size: int | None,
    out_axis: int | None = None,
) -> Tensor:
    """`fn(*sliced, *shared)`, computed over slices `[i, i + chunk_size)` of `axis`.

    `fn` must treat `axis` of every tensor in `sliced` as a batch axis (row k of its output
    depends only on row k of each sliced input) and return a tensor holding those rows on
    `out_axis` (default: `axis`); `shared` tensors are passed whole to every call.
    `chunk_size=None` calls `fn` once.
    """
    out_axis = axis if out_axis is None else out_axis
    if chunk_size is None:
        return fn(*sliced, *shared)
    if chunk_size < 1:
        raise ValueError(f"chunk_apply: chunk_size must be >= 1, got {chunk_size}")
    if not sliced:
        raise ValueError("chunk_apply: needs at least one tensor to slice")
    extent = sliced[0].shape[axis]
    for t in sliced[1:]:
        if t.shape[axis] != extent:
            raise ValueError(
                f"chunk_apply: sliced tensors disagree on axis {axis}: {tuple(t.shape)} vs {extent}"
            )
    out: Tensor | None = None
    for start in range(0, extent, chunk_size):
        length = min(chunk_size, extent - start)
        part = fn(*(t.narrow(axis, start, length) for t in sliced), *shared)
        if out is None:
            shape = list(part.shape)
            shape[out_axis] = extent
            out = part.new_empty(shape)
        out.narrow(out_axis, start, length).copy_(part)
    assert out is not None  # extent >= 1 because torch tensors here are never empty
    return out
