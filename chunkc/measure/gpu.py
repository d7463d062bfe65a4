"""The GPU: PyTorch's CUDA caching allocator and CuPy's memory pool count for us.

* PyTorch, CUDA -- ``max_memory_allocated`` after ``reset_peak_memory_stats``, minus
  ``memory_allocated`` before the call, on the device the arguments live on.  Both
  count the blocks the caching allocator hands out (sizes rounded to 512 bytes; a
  cached block up to 1 MiB larger than asked is handed out whole), kernel workspace
  taken from the allocator during the call included.  Inputs and weights were
  allocated before: they are in the baseline.
* CuPy -- a ``cupy.cuda.MemoryHook`` counting the bytes taken from and returned to
  the memory pool (rounded to 512 bytes), whatever allocator sits under the pool.
  Blocks taken before the call are not counted when the call frees them.
"""

from __future__ import annotations

from typing import Callable

from .common import grad_mode, leaves, quiet_gc


def cuda_device_of(fn: Callable, args: tuple):
    """The CUDA device of the first CUDA tensor among ``args`` (or a module's parameters
    and buffers); the current device if there is none."""
    import torch
    tensors = [t for t in leaves(args) if isinstance(t, torch.Tensor)]
    if isinstance(fn, torch.nn.Module):
        tensors.extend(fn.parameters())
        tensors.extend(fn.buffers())
    for t in tensors:
        if t.is_cuda:
            return t.device
    return torch.device("cuda", torch.cuda.current_device())


def measure_cuda_peak(fn: Callable, args: tuple, grad: bool = False) -> int:
    import torch
    device = cuda_device_of(fn, args)
    with quiet_gc(), grad_mode(grad), torch.cuda.device(device):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn(*args)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
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


def measure_cupy_peak(fn: Callable, args: tuple) -> int:
    import cupy
    from cupy.cuda import memory_hook

    class _Hook(PoolCounter, memory_hook.MemoryHook):
        def __init__(self):
            PoolCounter.__init__(self)

        # MemoryHook's other callbacks do nothing by default

    device = next((a.device for a in leaves(args) if isinstance(a, cupy.ndarray)), cupy.cuda.Device())
    hook = _Hook()
    with quiet_gc(), device:
        device.synchronize()
        with hook:
            result = fn(*args)
            device.synchronize()
            del result
    return hook.peak


__all__ = ["measure_cuda_peak", "measure_cupy_peak", "PoolCounter", "cuda_device_of"]
