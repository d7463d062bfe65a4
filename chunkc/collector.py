"""Python's cyclic garbage collector paused for a block of code, and restored afterwards to the
state it was in (also when the block raises).

Two users, two reasons:

* measurements (chunkc.measure): garbage from before a call must not be freed mid-call and
  counted as the call's own frees;
* the search (chunkc.passes.autochunk): it keeps hundreds of thousands of small tuples in its
  caches, and the collector's passes over them took a quarter of the 24-layer GPT-2 search
  (1.4 of 5.4 s) while freeing next to nothing -- the process's peak memory is the same
  without them; what the search drops goes by reference counting, the few cycles it leaves
  when the collector next runs.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


__all__ = ["collector_paused"]
