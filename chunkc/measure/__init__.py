"""Measure the activation memory of one call: the peak of bytes allocated during
``fn(*args)``, inputs and weights excluded, outputs included, kernel temporaries
included.

The measurement is independent of the estimate (chunkc.passes.memory); each array
library is measured by its own allocator:

* NumPy        -- ``tracemalloc`` (:mod:`.host`).
* PyTorch, CPU -- the CPU allocator's events, through the PyTorch profiler
                  (:mod:`.allocator`): every block handed out, kernel temporaries
                  included.  :func:`measure_storage_peak` (:mod:`.storages`) counts
                  only the storages ATen ops return, without the kernels' temporaries.
* PyTorch, CUDA -- the caching allocator's own counters (:mod:`.gpu`).
* CuPy         -- a hook on the memory pool (:mod:`.gpu`).

Run ``fn`` once before measuring when its first call imports modules or fills caches.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .allocator import AllocatorTrace, measure_allocator_peak, trace_allocations
from .common import leaves, torch_if_loaded
from .gpu import PoolCounter, measure_cuda_peak, measure_cupy_peak
from .host import measure_numpy_peak
from .step import measure_step
from .storages import StorageTracker, measure_storage_peak

DEVICES = ("numpy", "cpu", "cuda", "cupy")


def measure_peak(fn: Callable, *args, device: str | None = None, weights: Iterable[Any] = (),
                 grad: bool = False) -> int:
    """Bytes allocated at the peak of one call ``fn(*args)`` above what existed before it.

    ``device`` is ``"numpy"``, ``"cpu"`` (PyTorch), ``"cuda"`` or ``"cupy"``; by
    default it is read from the arrays in ``args`` and, for a ``torch.nn.Module``,
    its parameters.  Every method counts the allocator's blocks, so what existed
    before the call (inputs, weights) is not counted; ``weights`` is accepted for
    callers that name their weights and changes nothing (see
    :func:`measure_storage_peak`, where it does).  ``grad`` (PyTorch): autograd on
    rather than off, to measure a training step (see :func:`measure_step`).
    """
    device = device or detect_device(fn, args)
    if grad and device not in ("cpu", "cuda"):
        raise ValueError(f"measure_peak: grad=True measures PyTorch (cpu or cuda), not {device!r}")
    if device == "numpy":
        return measure_numpy_peak(fn, args)
    if device == "cpu":
        return measure_allocator_peak(fn, args, grad)
    if device == "cuda":
        return measure_cuda_peak(fn, args, grad)
    if device == "cupy":
        return measure_cupy_peak(fn, args)
    raise ValueError(f"measure_peak: unknown device {device!r}; use one of {', '.join(DEVICES)}")


def detect_device(fn: Callable, args: tuple) -> str:
    """``"numpy"`` unless the arguments (or a module's parameters) are torch or CuPy
    arrays, or ``fn`` is a ``torch.nn.Module``."""
    arrays = list(leaves(args))
    torch = torch_if_loaded()
    is_module = torch is not None and isinstance(fn, torch.nn.Module)
    if is_module:
        arrays.extend(fn.parameters())
        arrays.extend(fn.buffers())
    for a in arrays:
        if torch is not None and isinstance(a, torch.Tensor):
            return "cuda" if a.is_cuda else "cpu"
        if type(a).__module__.startswith("cupy"):
            return "cupy"
    return "cpu" if is_module else "numpy"  # a module without tensors (it makes its own) runs on the CPU


__all__ = ["measure_peak", "measure_step", "detect_device", "measure_storage_peak", "trace_allocations", "AllocatorTrace",
           "StorageTracker", "PoolCounter", "DEVICES"]
