"""Measure the activation memory of one call: the peak of bytes allocated during
``fn(*args)``, inputs and weights excluded, outputs included.

The measurement is independent of the estimate (chunkc.passes.memory); each array
library is measured by its own allocator:

* NumPy   -- ``tracemalloc``: NumPy reports every array buffer to tracemalloc in
             its own domain (``np.lib.tracemalloc_domain``).  tracemalloc keeps a
             single peak counter over all domains, so the Python objects made
             during the call count too: a few KiB, against MiB of arrays.  (A
             snapshot can be filtered on NumPy's domain, but a snapshot shows the
             present, never the peak.)  Run ``fn`` once before measuring when its
             first call imports modules or fills caches.
* PyTorch, CPU -- a ``TorchDispatchMode`` sees every ATen op and the tensors it
             returns.  It keeps the set of live storages: a storage that an op
             returns and that is neither one of the op's own inputs' storages nor
             known already is new, counted until the storage is freed (a weakref
             finalizer on the storage object).  Input, parameter and buffer
             storages seed the set, so a view or slice of them is free.
             Temporaries that a kernel allocates and frees inside one op are not
             seen.
* PyTorch, CUDA -- the caching allocator's own counters:
             ``max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
             bytes allocated before the call (block sizes, rounded to 512 bytes).
* CuPy    -- a ``cupy.cuda.MemoryHook`` counting bytes taken from and returned to
             the memory pool (rounded sizes), whatever allocator sits under it.
"""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

DEVICES = ("numpy", "cpu", "cuda", "cupy")


def measure_peak(fn: Callable, *args, device: str | None = None, weights: Iterable[Any] = ()) -> int:
    """Bytes allocated at the peak of one call ``fn(*args)`` above what existed before it.

    ``device`` is ``"numpy"``, ``"cpu"`` (PyTorch), ``"cuda"`` or ``"cupy"``; by
    default it is read from the arrays in ``args`` and, for a ``torch.nn.Module``,
    its parameters.  ``weights``: more tensors whose storages are not activation
    memory (PyTorch CPU only: the other methods count allocations, not storages).
    """
    device = device or detect_device(fn, args)
    if device == "numpy":
        return _measure_numpy(fn, args)
    if device == "cpu":
        return _measure_torch_cpu(fn, args, weights)
    if device == "cuda":
        return _measure_cuda(fn, args)
    if device == "cupy":
        return _measure_cupy(fn, args)
    raise ValueError(f"measure_peak: unknown device {device!r}; use one of {', '.join(DEVICES)}")


@contextlib.contextmanager
def _quiet_gc(generation: int = 2):
    """Collect garbage first (so that it is not freed mid-call and mistaken for the
    call's own frees) and keep the cyclic collector out of the call.

    A full collection (``generation=2``) also empties CPython's free lists (of tuples,
    dicts, lists, floats...), which the call then refills with blocks tracemalloc counts:
    up to tens of KiB over the iterations of a chunk loop that are no array at all.  The
    NumPy measurement therefore collects the younger generations only."""
    gc.collect(generation)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def detect_device(fn: Callable, args: tuple) -> str:
    """``"numpy"`` unless the arguments (or a module's parameters) are torch or CuPy
    arrays, or ``fn`` is a ``torch.nn.Module``."""
    arrays = list(_leaves(args))
    torch = _torch_if_loaded()
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


def _leaves(obj) -> Iterable[Any]:
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _leaves(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _leaves(x)
    else:
        yield obj


def _torch_if_loaded():
    import sys
    return sys.modules.get("torch")


# -- NumPy ----------------------------------------------------------------------------------


def _measure_numpy(fn: Callable, args: tuple) -> int:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        with _quiet_gc(generation=1):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = fn(*args)
            peak = tracemalloc.get_traced_memory()[1]
            del result
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(int(peak - before), 0)


# -- PyTorch on the CPU ------------------------------------------------------------------------


@dataclass
class StorageTracker:
    """Live storages allocated while the mode is active, and their peak.

    Storages are keyed by their Python object, which PyTorch keeps alive (and so
    its ``id`` stable) for as long as the storage lives; a finalizer on it fires
    when the storage is freed.
    """

    live: int = 0
    peak: int = 0
    known: dict[int, int] = field(default_factory=dict)  # id(storage) -> bytes counted (0: external)
    _finalizers: list = field(default_factory=list)

    def seed(self, tensors: Iterable[Any]) -> None:
        import torch
        for t in tensors:
            if isinstance(t, torch.Tensor) and id(t.untyped_storage()) not in self.known:
                self._track(t.untyped_storage(), 0)

    def observe(self, outputs, inputs) -> None:
        import torch
        own = {id(t.untyped_storage()) for t in _leaves(inputs) if isinstance(t, torch.Tensor)}
        for t in _leaves(outputs):
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu" or t.is_meta:
                continue
            storage = t.untyped_storage()
            key, nbytes = id(storage), storage.nbytes()
            if key in self.known:
                counted = self.known[key]
                if counted and nbytes != counted:  # resized in place
                    self._count(nbytes - counted)
                    self.known[key] = nbytes
                continue
            # an alias of an input the seed did not name (a weight in a closure) is not new
            self._track(storage, 0 if key in own else nbytes)

    def _track(self, storage, nbytes: int) -> None:
        """Remember ``storage`` (counting ``nbytes``) until it is freed; forgetting it
        then matters, as a later storage may get the same id."""
        key = id(storage)
        self.known[key] = nbytes
        self._count(nbytes)
        self._finalizers.append(weakref.finalize(storage, self._release, key))

    def _count(self, n: int) -> None:
        self.live += n
        self.peak = max(self.peak, self.live)

    def _release(self, key: int) -> None:
        self.live -= self.known.pop(key, 0)

    def detach(self) -> None:
        for f in self._finalizers:
            f.detach()
        self._finalizers.clear()


def _tracking_mode(tracker: StorageTracker):
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            tracker.observe(out, (args, kwargs))
            return out

    return _Mode()


def _weights_of(fn, extra: Iterable[Any]) -> list:
    """Tensors that are weights: a module's parameters and buffers, and those given."""
    import torch
    found = list(extra)
    if isinstance(fn, torch.nn.Module):
        found.extend(fn.parameters())
        found.extend(fn.buffers())
    return found


def _measure_torch_cpu(fn: Callable, args: tuple, weights: Iterable[Any]) -> int:
    import torch
    tracker = StorageTracker()
    tracker.seed(_leaves(args))
    tracker.seed(_weights_of(fn, weights))
    try:
        with _quiet_gc(), torch.no_grad(), _tracking_mode(tracker):
            result = fn(*args)
            del result
    finally:
        tracker.detach()
    return tracker.peak


# -- CUDA and CuPy -------------------------------------------------------------------------------


def _measure_cuda(fn: Callable, args: tuple) -> int:
    import torch
    with _quiet_gc(), torch.no_grad():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = fn(*args)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        del result
    return max(int(peak - before), 0)


class PoolCounter:
    """Counts bytes handed out by a CuPy memory pool (the hook methods CuPy calls)."""

    name = "chunkc_pool_counter"

    def __init__(self):
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def malloc_postprocess(self, **kw) -> None:
        self._sizes[kw["mem_ptr"]] = kw["mem_size"]
        self.live += kw["mem_size"]
        self.peak = max(self.peak, self.live)

    def free_postprocess(self, **kw) -> None:
        self.live -= self._sizes.pop(kw["mem_ptr"], 0)


def _measure_cupy(fn: Callable, args: tuple) -> int:
    import cupy
    from cupy.cuda import memory_hook

    class _Hook(PoolCounter, memory_hook.MemoryHook):
        def __init__(self):
            PoolCounter.__init__(self)

        # MemoryHook's other callbacks do nothing by default

    hook = _Hook()
    with _quiet_gc():
        cupy.cuda.Device().synchronize()
        with hook:
            result = fn(*args)
            cupy.cuda.Device().synchronize()
        del result
    return hook.peak


__all__ = ["measure_peak", "detect_device", "StorageTracker", "PoolCounter", "DEVICES"]
