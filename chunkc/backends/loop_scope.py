"""The names a generated chunk loop binds, and the region a generator is emitting.

Shared by the code generator (chunkc.backends.codegen) and the loop writers it calls
(halo loops, training regions), so that they need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Value
from ..passes.plan import ChunkedValue
from ..passes.plan_index import RegionView

EXTENT, CHUNK, START, STOP = "extent", "chunk", "start", "stop"


@dataclass
class RegionScope:
    """The chunk region being emitted; ``body``: the name of its one-chunk function, None
    when it is a plain loop (chunkc.backends.codegen.Generator.open_region)."""

    view: RegionView
    body: str | None = None

    @property
    def chunk(self) -> dict[Value, ChunkedValue]:
        return self.view.chunk


__all__ = ["CHUNK", "EXTENT", "RegionScope", "START", "STOP"]
