"""The storages that ATen ops return, counted live: the storage-level view of a call.

A ``TorchDispatchMode`` sees every ATen op and the tensors it returns.  It keeps the
set of live storages: a storage that an op returns and that is neither one of the
op's own inputs' storages nor known already is new, counted until the storage is
freed (a weakref finalizer on the storage object).  Input, parameter and buffer
storages seed the set, so a view or slice of them is free.

Temporaries that a kernel allocates and frees inside one op are not seen: this is
what the graph's values cost, without the kernels' workspace.  The difference
between :func:`measure_storage_peak` and ``chunkc.measure_peak`` (the allocator's
count) on the CPU is exactly that workspace.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .common import leaves, quiet_gc, weights_of


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
        own = {id(t.untyped_storage()) for t in leaves(inputs) if isinstance(t, torch.Tensor)}
        for t in leaves(outputs):
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
        @classmethod
        def ignore_compile_internals(cls) -> bool:
            # a torch.compile'd function then runs compiled, its artifacts' ops seen here; otherwise
            # dynamo would skip the frame and run it eagerly, and the eager peak would be measured
            return True

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            tracker.observe(out, (args, kwargs))
            return out

    return _Mode()


def measure_storage_peak(fn: Callable, *args, weights: Iterable[Any] = ()) -> int:
    """The peak bytes of new storages returned by ATen ops during ``fn(*args)`` (PyTorch
    on the CPU), inputs, a module's parameters and buffers and ``weights`` excluded:
    the values' memory without the kernels' temporaries."""
    import torch
    tracker = StorageTracker()
    tracker.seed(leaves(args))
    tracker.seed(weights_of(fn, weights))
    try:
        with quiet_gc(), torch.no_grad(), _tracking_mode(tracker):
            result = fn(*args)
            del result
    finally:
        tracker.detach()
    return tracker.peak


__all__ = ["StorageTracker", "measure_storage_peak"]
