"""The names a generated chunk loop binds, and the region a generator is emitting.

Shared by the code generator (chunkc.backends.codegen) and the loop writers it calls
(halo loops, training regions), so that they need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Value
from ..passes.plan import ChunkedValue
from ..passes.plan_index import RegionView

EXTENT, CHUNK, START, STOP = "extent", "chunk", "start", "stop"
# an inner loop's (ChunkRegion.inner): one level deep, so one more set of names
INNER_NAMES = ("extent_1", "chunk_1", "start_1", "stop_1")


@dataclass
class RegionScope:
    """The chunk region being emitted; ``body``: the name of its one-chunk function, None
    when it is a plain loop (chunkc.backends.codegen.Generator.open_region); ``parent``: the
    scope of the loop an inner loop runs in; ``saved``: the generator's loop names outside it."""

    view: RegionView
    body: str | None = None
    parent: "RegionScope | None" = None
    saved: dict = field(default_factory=dict)

    @property
    def chunk(self) -> dict[Value, ChunkedValue]:
        return self.view.chunk

    @property
    def names(self) -> tuple[str, str, str, str]:
        """The loop's (extent, chunk, start, stop) variables."""
        return (EXTENT, CHUNK, START, STOP) if self.parent is None else INNER_NAMES

    @property
    def start(self) -> str:
        return self.names[2]

    @property
    def stop(self) -> str:
        return self.names[3]

    def chunk_of(self, v: Value) -> tuple["RegionScope", ChunkedValue] | None:
        """The innermost loop (this one or an enclosing one) that slices ``v``, and how."""
        s = self
        while s is not None:
            if v in s.chunk:
                return s, s.chunk[v]
            s = s.parent
        return None


__all__ = ["CHUNK", "EXTENT", "INNER_NAMES", "RegionScope", "START", "STOP"]
