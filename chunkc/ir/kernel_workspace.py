"""What an op's PyTorch code allocates beyond its outputs, declared by who allocates it.

An op record's ``torch_workspace`` (see :mod:`chunkc.ir.registry`) is a function of the
input types, the attributes and the output types giving elements of output 0's dtype.
Where the PyTorch code of an op takes temporaries, the record gives a
:class:`TorchWorkspace` there: a callable that answers for the CPU (what
``estimate_memory(..., backend="torch")`` counts), built from byte counts by source:

* ``lowering`` -- the generated code's own temporaries (an ``F.pad`` before a window op,
  an index normalized before a gather): the same on every device;
* ``aten``     -- temporaries of ATen's composite code, the same on every device (SDPA
  turns a bool mask into a float one; ``max_pool2d`` computes its indices too);
* ``cpu``      -- temporaries of the CPU kernels only (the flash-attention kernel's
  per-thread buffers, oneDNN's reorders, TensorIterator's copies of operands whose
  dtype is not the common one, a half-precision mean computed in float);
* ``cuda``     -- temporaries of the CUDA kernels only (from the allocator; cuBLAS's
  workspace is kept by the allocator across calls, not a temporary).

Sizes are measured, not guessed: ``tests/test_torch_memory.py`` holds every op sample
and the zoo models to the allocator's count on the CPU (``chunkc.measure_peak``); the
CUDA parts are checked by ``benchmarks/gpu`` on a GPU.  The estimator's GPU variant
(:mod:`chunkc.passes.device_memory`) asks :meth:`TorchWorkspace.on` for ``"cuda"``.

A record may also hold a plain function: a temporary of the lowering, alike on every
device (the bool mask rows of causal attention in a chunk loop).

Some kernels copy an operand only in some layouts (the CPU flash-attention kernel copies a
mask whose last axis is not dense, the CPU pools an input that is not dense, ``torch.matmul``
batch axes that do not flatten): a :class:`TorchWorkspace`'s ``cpu_layout`` part (CPU
kernels) and ``aten_layout`` part (ATen's composite code, every device) take the inputs'
strides (in elements) besides; the estimator, which knows every value's strides (in a chunk
loop, the chunks' own), passes them through :func:`workspace_with_strides`.  (The CUDA
estimate does not pass strides yet: it counts neither part.)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .dtypes import DType
from .lowering import lowering_casts, torch_result_dtype
from .sizes import Size, ceildiv, normalize
from .types import TensorType

# (input types, attributes, output types) -> bytes
BytesFn = Callable[[Sequence[TensorType], Mapping, Sequence[TensorType]], Size]
# (input types, attributes, output types, input strides in elements) -> bytes
LayoutBytesFn = Callable[[Sequence[TensorType], Mapping, Sequence[TensorType], Sequence[tuple[int, ...]]], Size]

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class TorchWorkspace:
    """An op's PyTorch temporaries in bytes, by source (see the module's docstring); a
    part left None is none.  Calling it gives the CPU answer in elements of output 0's
    dtype, as a record's ``torch_workspace`` must."""

    lowering: BytesFn | None = None
    aten: BytesFn | None = None
    cpu: BytesFn | None = None
    cuda: BytesFn | None = None
    # the part of a recorded call's workspace (counted in the parts above) that autograd keeps
    # after the call, to its backward, beyond the op's saved values (chunkc.ir.grad): the CPU
    # kernels', ATen's float copy of a bool mask that the flash kernel's backward reads; only
    # the training step's estimate counts it
    kept: BytesFn | None = None
    cpu_layout: LayoutBytesFn | None = None  # CPU copies that depend on the inputs' strides
    aten_layout: LayoutBytesFn | None = None  # copies of ATen's composite code that depend on them (every device)
    # declared when every part is a dtype conversion of the inputs at ``cast_inputs`` (None: all
    # of them): then there is none when those inputs have output 0's dtype (see none_for)
    casts_only: bool = False
    cast_inputs: tuple[int, ...] | None = None

    def none_for(self, in_dtypes: Sequence[DType], out_dtype: DType) -> bool:
        """Whether the declaration proves that no call with these dtypes takes any workspace,
        at any shape (an estimator then need not ask at every chunk size)."""
        if not self.casts_only:
            return False
        positions = range(len(in_dtypes)) if self.cast_inputs is None else self.cast_inputs
        return all(in_dtypes[i] == out_dtype for i in positions if i < len(in_dtypes))

    def nbytes(self, ins, attrs, outs, device: str = "cpu",
               strides: Sequence[tuple[int, ...]] | None = None) -> Size:
        """Bytes of temporaries on ``device`` ("cpu" or "cuda"); ``strides`` (the inputs', in
        elements; None: unknown, taken as dense) for the parts that depend on layout."""
        if device not in DEVICES:
            raise ValueError(f"torch workspace: unknown device {device!r}; use one of {', '.join(DEVICES)}")
        total: Size = 0
        for part in (self.lowering, self.aten, self.cpu if device == "cpu" else self.cuda):
            if part is not None:
                total = total + part(ins, attrs, outs)
        if device == "cpu" and self.cpu_layout is not None and strides is not None:
            total = total + self.cpu_layout(ins, attrs, outs, strides)
        if self.aten_layout is not None and strides is not None:
            total = total + self.aten_layout(ins, attrs, outs, strides)
        return normalize(total)

    def on(self, device: str) -> Callable[..., Size]:
        """The workspace function for ``device``, in elements of output 0's dtype."""
        if device == "cpu":
            return self

        def elements(ins, attrs, outs) -> Size:
            return as_elements(self.nbytes(ins, attrs, outs, device), outs)
        return elements

    def __call__(self, ins, attrs, outs, strides: Sequence[tuple[int, ...]] | None = None) -> Size:
        return as_elements(self.nbytes(ins, attrs, outs, "cpu", strides), outs)


def needed_workspace(fn, in_dtypes: Sequence[DType], out_dtypes: Sequence[DType]):
    """A node's workspace function ``fn``, or None when it declares that a node of these
    dtypes takes none (:meth:`TorchWorkspace.none_for`) or the node has no output."""
    if fn is None or not out_dtypes:
        return None
    if isinstance(fn, TorchWorkspace) and fn.none_for(in_dtypes, out_dtypes[0]):
        return None
    return fn


def workspace_with_strides(fn, ins, attrs, outs, strides: Sequence[tuple[int, ...]]) -> Size:
    """A workspace function's answer (elements of output 0's dtype), given the inputs'
    strides where it takes them (a :class:`TorchWorkspace` on the CPU)."""
    if isinstance(fn, TorchWorkspace):
        return fn(ins, attrs, outs, strides)
    return fn(ins, attrs, outs)


# The attribute an estimator adds to a node's attributes when it asks for the workspace of a call
# that autograd records (a training step: nodes outside regions, and a region's chunks re-run in
# its backward).  A record whose kernels differ with autograd reads it with autograd_records.
AUTOGRAD_ATTR = "autograd_records"


def autograd_records(attrs: Mapping) -> bool:
    """Whether the workspace asked for is of a call autograd records (see AUTOGRAD_ATTR)."""
    return bool(attrs.get(AUTOGRAD_ATTR, False))


def with_autograd(attrs: Mapping, records: bool) -> Mapping:
    """``attrs`` as a workspace function gets them for a call autograd records or not."""
    return {**attrs, AUTOGRAD_ATTR: True} if records else attrs


def autograd_kept(fn, ins, attrs, outs) -> Size:
    """Bytes of a recorded call's workspace that autograd keeps after it, to its backward,
    beyond the saved values (:attr:`TorchWorkspace.kept`; none for other workspace functions)."""
    if isinstance(fn, TorchWorkspace) and fn.kept is not None:
        return normalize(fn.kept(ins, with_autograd(attrs, True), outs))
    return 0


def torch_workspace_on(fn, device: str):
    """A record's ``torch_workspace`` for ``device``: a :class:`TorchWorkspace`'s part for
    it, a plain function (a lowering temporary) as it is."""
    if isinstance(fn, TorchWorkspace):
        return fn.on(device)
    return fn


def as_elements(nbytes: Size, outs: Sequence[TensorType]) -> Size:
    """Bytes as elements of output 0's dtype, rounded up (what the estimator multiplies back)."""
    return ceildiv(normalize(nbytes), outs[0].dtype.itemsize) if outs else 0


def nbytes(t: TensorType, dtype: DType | None = None) -> Size:
    """Bytes of a tensor of ``t``'s shape, in ``dtype`` (default its own)."""
    return normalize(t.numel() * (dtype or t.dtype).itemsize)


def cpu_threads() -> int:
    """The threads PyTorch's CPU kernels split work over (per-thread buffers scale with it):
    ``torch.get_num_threads()`` once torch is imported (it is, when a PyTorch program runs),
    else the CPUs this process may use."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def onednn_channel_block() -> int:
    """Channels per block in oneDNN's blocked layouts: 16 with AVX-512, else 8 (torch says)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 16
    try:
        return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8
    except AttributeError:
        return 16


def mkldnn_takes(dtype: DType) -> bool:
    """Whether PyTorch's CPU convolutions may run ``dtype`` on oneDNN: float32 always; bfloat16
    and float16 where the CPU has the instructions (torch says, once imported)."""
    if dtype == DType.float32:
        return True
    torch = sys.modules.get("torch")
    if torch is None or dtype not in (DType.bfloat16, DType.float16):
        return False
    check = torch.ops.mkldnn._is_mkldnn_bf16_supported if dtype == DType.bfloat16 \
        else torch.ops.mkldnn._is_mkldnn_fp16_supported
    try:
        return bool(check())
    except (AttributeError, RuntimeError):
        return False


def cast_copies(ins: Sequence[TensorType], common: DType, indices: Sequence[int] | None = None) -> Size:
    """Bytes of copies in ``common`` of the inputs (of ``indices``, default all) whose dtype
    differs: what the CPU's TensorIterator makes of mixed-dtype operands (0-d ones, a few
    bytes, are left out)."""
    total: Size = 0
    for i in (range(len(ins)) if indices is None else indices):
        t = ins[i]
        if t.dtype != common and t.rank > 0:
            total = total + nbytes(t, common)
    return normalize(total)


def acc_dtype(dt: DType) -> DType:
    """The dtype PyTorch's kernels accumulate ``dt`` in (float for the half types)."""
    return DType.float32 if dt in (DType.float16, DType.bfloat16) else dt


def strict_casts(ins: Sequence[TensorType], attrs, outs: Sequence[TensorType]) -> Size:
    """Bytes of the copies ``operands(..., strict=True)`` makes: every input not already in
    output 0's dtype, converted to it (a lowering temporary, every device)."""
    return cast_copies(ins, outs[0].dtype)


# the workspace of an op whose PyTorch code takes no temporaries but those conversions
STRICT_CASTS = TorchWorkspace(lowering=strict_casts, casts_only=True)


def promoted_operands(indices: Sequence[int] | None = (0, 1), strict: bool = False, casts_in_lowering: bool = True,
                      cpu_copies_in_own_dtype: bool = False, aten_casts: bool = False) -> TorchWorkspace:
    """The workspace of a promoting op on inputs ``indices``: the copies the lowering's
    :func:`~chunkc.ir.lowering.operands` makes to compute in output 0's dtype (every device;
    none when ``casts_in_lowering`` is False: the operands go to PyTorch as they are), and,
    on the CPU, TensorIterator's copies of the operands still of another dtype than the
    common one (CUDA kernels convert as they load); ``indices`` None: every input.
    ``cpu_copies_in_own_dtype``: the CPU kernel copies such operands in their own dtype
    (``torch.cat``).  ``aten_casts``: ATen converts them to the common dtype before its
    kernel, on every device (``torch.where``)."""
    def converted(ins, outs) -> tuple[list[TensorType], Size]:
        types = [ins[i] for i in (range(len(ins)) if indices is None else indices) if i < len(ins)]
        out = outs[0].dtype
        if not casts_in_lowering or all(t.dtype == out for t in types):
            return types, 0
        casts = lowering_casts(types, out, strict)
        made: Size = 0
        for t, cast in zip(types, casts):
            if cast and t.rank > 0:
                made = made + nbytes(t, out)
        return [t.with_dtype(out) if cast else t for t, cast in zip(types, casts)], made

    def lowering(ins, attrs, outs) -> Size:
        return converted(ins, outs)[1]

    def copies(ins, attrs, outs) -> Size:
        types = converted(ins, outs)[0]
        if len({t.dtype for t in types}) <= 1:
            return 0
        common = torch_result_dtype(types)
        if cpu_copies_in_own_dtype:
            return normalize(sum((nbytes(t) for t in types if t.dtype != common and t.rank > 0), 0))
        return cast_copies(types, common)

    # both parts vanish when the inputs at ``indices`` have output 0's dtype: none converted,
    # none of another dtype than the others
    cast_inputs = None if indices is None else tuple(indices)
    if aten_casts:
        return TorchWorkspace(lowering=lowering, aten=copies, casts_only=True, cast_inputs=cast_inputs)
    return TorchWorkspace(lowering=lowering, cpu=copies, casts_only=True, cast_inputs=cast_inputs)


__all__ = ["TorchWorkspace", "STRICT_CASTS", "needed_workspace", "workspace_with_strides", "acc_dtype", "mkldnn_takes", "onednn_channel_block", "promoted_operands", "strict_casts", "torch_workspace_on", "as_elements", "nbytes", "cpu_threads", "cast_copies", "DEVICES"]
