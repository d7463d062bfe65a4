"""What PyTorch's CPU allocator hands out during one call, kernel temporaries included.

The PyTorch profiler, with ``profile_memory=True``, receives an event from the CPU
allocator for every allocation and every free of a block allocated while it
records (``c10::ProfiledCPUMemoryReporter``): the packing buffers of a matmul, the
float copy of a bool attention mask that SDPA makes inside its call, the
statistics of a norm, the contiguous copies inside a kernel -- all the bytes an
ATen op allocates and frees inside one call, which no ``TorchDispatchMode`` sees.
Replaying the events in order gives the live bytes after each and their peak above
the start.  Blocks that existed before the call (inputs, weights) are not seen:
their frees, if any, are not reported either.

:func:`trace_allocations` keeps the events with the ATen op that made each
(``AllocatorTrace.live_at_peak`` says which ops' blocks make the peak);
:func:`measure_allocator_peak` is the number ``chunkc.measure_peak`` returns on
the CPU.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Callable

from .common import grad_mode, quiet_gc

# kineto writes a note to stderr when a profiling session starts and stops
_KINETO_NOTE = re.compile(r"^(USDT|STAGE):\S+ \S+ \d+:\d+ \S+\.cpp:\d+\] ")


@dataclass(frozen=True)
class Allocation:
    """One allocator event: ``nbytes`` > 0 an allocation, < 0 a free."""

    nbytes: int
    ptr: int
    time_ns: int
    ops: tuple[str, ...]  # the ATen ops around it, outermost first (empty: outside any op)

    @property
    def op(self) -> str:
        return " > ".join(self.ops) or "(no op)"


@dataclass
class AllocatorTrace:
    """The CPU allocator's events of one call, in order."""

    events: list[Allocation] = field(default_factory=list)

    def curve(self) -> list[int]:
        """Bytes live (above the start) after each event."""
        live, out = 0, []
        for e in self.events:
            live += e.nbytes
            out.append(live)
        return out

    @property
    def peak(self) -> int:
        """The most bytes live at once above the start (0 when nothing was allocated; a
        block from an earlier profiled call freed by this one takes the curve below 0)."""
        return max(0, max(self.curve(), default=0))

    def live_at_peak(self) -> list[tuple[str, int]]:
        """The blocks live at the peak, as (op that allocated it, bytes), largest first."""
        curve = self.curve()
        if not curve or max(curve) <= 0:
            return []
        at = curve.index(max(curve))
        live: dict[int, Allocation] = {}
        for e in self.events[:at + 1]:
            if e.nbytes > 0:
                live[e.ptr] = e
            else:
                live.pop(e.ptr, None)
        return sorted(((e.op, e.nbytes) for e in live.values()), key=lambda item: -item[1])

    def format(self, top: int = 8) -> str:
        lines = [f"allocator peak {self.peak} B over {len(self.events)} events; live at the peak:"]
        for op, n in self.live_at_peak()[:top]:
            lines.append(f"  {n:>12} B  {op}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


@contextlib.contextmanager
def _without_kineto_notes():
    """Run the block with file descriptor 2 captured; write back what it printed except
    kineto's session notes (two lines per measurement otherwise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(True)
                    if not _KINETO_NOTE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def trace_allocations(fn: Callable, *args, grad: bool = False) -> AllocatorTrace:
    """Run ``fn(*args)`` once under the profiler (autograd off unless ``grad``) and return
    the CPU allocator's events of the call, its result's free included."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():  # torch 2.11 warns that a profile without a schedule keeps one cycle
        warnings.simplefilter("ignore", UserWarning)
        prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with quiet_gc(), grad_mode(grad):
        with _without_kineto_notes(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            prof.__enter__()
        try:
            result = fn(*args)
            del result
        finally:
            with _without_kineto_notes():
                prof.__exit__(None, None, None)
    return AllocatorTrace(_cpu_allocations(prof.profiler.kineto_results))


def _cpu_allocations(results) -> list[Allocation]:
    from torch._C._profiler import _EventType

    found: list[Allocation] = []
    stack = [(root, ()) for root in reversed(results.experimental_event_tree())]
    while stack:
        event, ops = stack.pop()
        if event.tag == _EventType.Allocation:
            extra = event.extra_fields
            if extra.device.type == "cpu" and extra.alloc_size:
                found.append(Allocation(int(extra.alloc_size), int(extra.ptr), int(event.start_time_ns), ops))
            continue
        inner = ops + (event.name,) if event.tag == _EventType.TorchOp else ops
        stack.extend((child, inner) for child in reversed(event.children))
    found.sort(key=lambda e: e.time_ns)  # stable: events of one timestamp keep the tree's order
    return found


def measure_allocator_peak(fn: Callable, args: tuple, grad: bool = False) -> int:
    """The peak of bytes the CPU allocator hands out during ``fn(*args)`` above what was
    allocated before the call (kernel temporaries and the result included)."""
    return trace_allocations(fn, *args, grad=grad).peak


__all__ = ["Allocation", "AllocatorTrace", "trace_allocations", "measure_allocator_peak"]
