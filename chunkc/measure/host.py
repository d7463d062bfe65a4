"""NumPy: ``tracemalloc``, to which NumPy reports every array buffer.

NumPy reports its buffers in its own tracemalloc domain (``np.lib.tracemalloc_domain``).
tracemalloc keeps a single peak counter over all domains, so the Python objects made
during the call count too: a few KiB, against MiB of arrays.  (A snapshot can be
filtered on NumPy's domain, but a snapshot shows the present, never the peak.)

A call that imports a module (a kernel's first use of ``scipy.special``, say) traces the
module's objects too: megabytes that no later call makes.  Such a call is measured once
more, and the second figure is returned.
"""

from __future__ import annotations

import sys
import tracemalloc
from typing import Callable

from .common import quiet_gc


def measure_numpy_peak(fn: Callable, args: tuple) -> int:
    """Peak traced bytes during ``fn(*args)`` minus the traced bytes before it; measured
    again when the call imported a module (see the module's docstring)."""
    modules = len(sys.modules)
    peak = _traced_peak(fn, args)
    if len(sys.modules) > modules:
        peak = _traced_peak(fn, args)
    return peak


def _traced_peak(fn: Callable, args: tuple) -> int:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        with quiet_gc():
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = fn(*args)
            peak = tracemalloc.get_traced_memory()[1]
            del result
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(int(peak - before), 0)


__all__ = ["measure_numpy_peak"]
