"""The device the estimate is for: how its allocator rounds, whose kernels' workspace counts.

``estimate_memory(graph, plan, backend=..., device=...)`` (and ``MemoryModel``) take a
device name; this module holds what each means:

* ``"cpu"`` (the default): PyTorch's and NumPy's CPU allocators hand out exactly what is
  asked; the workspace is the backend's policy (``torch_workspace`` for PyTorch: its
  CPU answer; the references' ``workspace`` for NumPy).
* ``"cuda"``: the GPU.  Every allocation is rounded as the backend's GPU allocator rounds
  it, and the PyTorch backend's workspace is the CUDA part of each op's
  :class:`~chunkc.ir.kernel_workspace.TorchWorkspace` (the CuPy backend runs the references:
  their ``workspace``).

  PyTorch's caching allocator (c10/cuda/CUDACachingAllocator.cpp, default settings, no
  expandable segments): a request is rounded up to a multiple of 512 bytes; requests over
  1 MiB come from the large pool, whose blocks are split only when more than 1 MiB would be
  left; a request of 10 MiB or more opens a segment rounded up to 2 MiB, handed out whole
  when the rest would be 1 MiB or less (so such a request costs its 2 MiB rounding).  A
  cached block up to 1 MiB larger than the request may also be reused whole: the rounding
  here is the one a warm call of a fixed program sees, which reuses the blocks of the same
  sizes; the measurement (``torch.cuda.max_memory_allocated``) counts the blocks.
  CuPy's memory pool rounds every request up to 512 bytes and splits its chunks.

  cuBLAS's workspace (PyTorch: 32 MiB per stream on sm90 GPUs, 8 MiB + 128 KiB on others,
  ``CUBLAS_WORKSPACE_CONFIG`` aside) is taken from the allocator by the first matrix
  product and kept: it is not activation memory of a warm call.
  :func:`cublas_workspace_bytes` gives it, to plan a device's total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ..backends.registry import get_backend
from ..errors import ChunkcError
from ..ir.kernel_workspace import torch_workspace_on
from ..ir.registry import OpDef

MiB = 1 << 20
BLOCK = 512  # bytes: the rounding unit of both GPU allocators
LARGE = 1 * MiB  # PyTorch: larger requests come from the large pool
SEGMENT_ROUND = 2 * MiB  # PyTorch: large segments are rounded to this
MIN_LARGE_SEGMENT = 10 * MiB  # PyTorch: requests from here on get a segment of their own


def exact_bytes(n: int) -> int:
    return n


def torch_cuda_block_bytes(n: int) -> int:
    """Bytes PyTorch's CUDA caching allocator hands out for a request of ``n`` (see the module)."""
    if n <= 0:
        return 0
    rounded = -(-n // BLOCK) * BLOCK
    if rounded < MIN_LARGE_SEGMENT:
        return rounded
    segment = -(-rounded // SEGMENT_ROUND) * SEGMENT_ROUND
    return segment if segment - rounded <= LARGE else rounded


def cupy_pool_block_bytes(n: int) -> int:
    """Bytes CuPy's memory pool hands out for a request of ``n``."""
    return -(-n // BLOCK) * BLOCK if n > 0 else 0


def cublas_workspace_bytes(compute_capability: tuple[int, int] = (9, 0)) -> int:
    """The cuBLAS workspace PyTorch keeps per stream (default configuration)."""
    if compute_capability == (9, 0):
        return 4096 * 8 * 1024
    return 4096 * 1024 * 2 + 16 * 1024 * 8


@dataclass(frozen=True)
class DeviceMemory:
    """One device: per backend, how its allocator rounds a request and which of an op's
    workspace declarations its kernels allocate."""

    name: str
    workspace_for: Callable[[OpDef, str], Callable | None]  # (op record, backend name) -> workspace fn
    # backend name -> bytes handed out for a request; None: exactly what is asked, on every backend
    allocators: Mapping[str, Callable[[int], int]] | None = None
    description: str = ""

    def block_bytes(self, backend: str) -> Callable[[int], int]:
        if self.allocators is None:
            return exact_bytes
        try:
            return self.allocators[backend]
        except KeyError:
            known = ", ".join(sorted(self.allocators))
            raise ChunkcError(f"estimate_memory: device {self.name!r} has no model of the allocator of backend "
                              f"{backend!r} (it has: {known})") from None

    def workspace(self, op: OpDef, backend: str):
        return self.workspace_for(op, backend)


def _host_workspace(op: OpDef, backend: str):
    return get_backend(backend).workspace(op)


def _cuda_workspace(op: OpDef, backend: str):
    if backend == "torch":
        return torch_workspace_on(op.torch_workspace, "cuda")
    return get_backend(backend).workspace(op)


_DEVICES = {
    "cpu": DeviceMemory("cpu", _host_workspace, description="the host: exact allocations, the CPU kernels' workspace"),
    "cuda": DeviceMemory("cuda", _cuda_workspace, {"torch": torch_cuda_block_bytes, "cupy": cupy_pool_block_bytes},
                         "an NVIDIA GPU: PyTorch's caching allocator or CuPy's pool, the CUDA kernels' workspace"),
}


def get_device(name: str | None) -> DeviceMemory:
    """The device record called ``name`` (None: the CPU)."""
    try:
        return _DEVICES[name or "cpu"]
    except KeyError:
        raise ChunkcError(f"estimate_memory: unknown device {name!r}; use one of {', '.join(_DEVICES)}") from None


__all__ = ["DeviceMemory", "get_device", "torch_cuda_block_bytes", "cupy_pool_block_bytes", "cublas_workspace_bytes",
           "exact_bytes"]
