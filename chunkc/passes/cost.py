"""A cost model of speed for chunk regions.

The reference implementation picks the region with the fewest nodes.  chunkc
estimates time instead, from what the op records already know:

* every op call pays a fixed dispatch overhead, once per loop iteration;
* work is FLOPs over a compute rate plus bytes moved over a bandwidth — the
  same in total whether chunked or not, except that
* a contraction whose chunked rows fall below ``min_efficient_rows`` runs at a
  proportionally lower rate (small matrices use the hardware badly), and
* slicing a region input along an axis that is not the outermost gives a
  strided view that kernels often copy first (the paper's "micro" cost);
* writing each chunk of a region output into its buffer moves its bytes once more;
* memory-bound work runs faster on small tensors: a tensor that fits the cache
  is reused hot, and on Linux/glibc an allocation above the mmap threshold
  (32 MiB) is fresh pages every time, faulted in on first touch.  ``cache_tiers``
  gives the bandwidth speedup for tensors up to each size, so the selection
  may pick a smaller chunk than the budget needs when that is faster (measured
  here: softmax over [4, 64, 4096] slices runs 3x faster than over [4, 4096, 4096]).

The constants describe a CPU running PyTorch eagerly; they rank candidates,
they do not predict seconds.  Pass your own :class:`Machine` to retune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..ir.graph import Graph
from ..ir.sizes import evaluate


@dataclass(frozen=True)
class Machine:
    flops_per_s: float = 50e9
    bytes_per_s: float = 10e9
    op_overhead_s: float = 6e-6
    min_efficient_rows: int = 64
    cache_tiers: tuple[tuple[int, float], ...] = ((4 << 20, 3.0), (32 << 20, 1.25))

    def speedup(self, nbytes: float) -> float:
        """Bandwidth speedup for memory-bound work on a tensor of ``nbytes``."""
        for limit, factor in self.cache_tiers:
            if nbytes <= limit:
                return factor
        return 1.0


@dataclass
class TimeModel:
    """Per-node times and sizes of one graph at given sizes, computed once."""

    graph: Graph
    sizes: Mapping[str, int]
    machine: Machine = Machine()

    def __post_init__(self):
        m = self.machine
        self.nbytes = {v: v.type.nbytes(self.sizes) for v in self.graph.values()}
        self.flops = [evaluate(n.flops(), self.sizes) for n in self.graph.nodes]
        self.moved, self.out_bytes, self.mem_time, self.times = [], [], [], []
        for node, flops in zip(self.graph.nodes, self.flops):
            out = max((self.nbytes[o] for o in node.outputs), default=0)
            moved = 0 if node.op.may_alias else (sum(self.nbytes[v] for v in node.inputs)
                                                 + sum(self.nbytes[o] for o in node.outputs))
            mem = moved / (m.bytes_per_s * m.speedup(out))
            self.moved.append(moved)
            self.out_bytes.append(out)
            self.mem_time.append(mem)
            self.times.append(m.op_overhead_s + flops / m.flops_per_s + mem)
        self.total = sum(self.times) or 1e-9

    def region_overhead(self, cand, chunk: int) -> float:
        """Extra seconds a region (a search Candidate) costs over running its nodes
        unchunked; negative when chunking makes it faster."""
        m = self.machine
        extent = evaluate(cand.extent, self.sizes)
        chunk = max(1, min(chunk, extent))
        iterations = -(-extent // chunk)
        extra = (iterations - 1) * len(cand.loop) * m.op_overhead_s
        for i in cand.loop:
            # memory-bound work on one chunk's tensors, faster when they are small
            per_chunk = self.out_bytes[i] * chunk / extent
            extra += self.moved[i] / (m.bytes_per_s * m.speedup(per_chunk)) - self.mem_time[i]
            # a contraction (many FLOPs per output byte) runs slower on few rows
            if chunk < m.min_efficient_rows and self.flops[i] > 8 * max(self.out_bytes[i], 1):
                extra += (self.flops[i] / m.flops_per_s) * (m.min_efficient_rows / chunk - 1.0)
        loop_nodes = {self.graph.nodes[i] for i in cand.loop}
        for v, axis, _ in cand.chunked:
            if v.producer not in loop_nodes and any(not (isinstance(s, int) and s == 1) for s in v.shape[:axis]):
                extra += self.nbytes[v] / m.bytes_per_s  # a strided slice is often copied
        for v in cand.outputs:
            extra += self.nbytes[v] / m.bytes_per_s  # chunk -> buffer copy
        return extra

    def chunk_options(self, cand, largest: int) -> list[tuple[int, int | None]]:
        """Chunks worth pricing: the largest the budget allows, and the largest that
        keeps every loop tensor within each cache tier. (chunk, tier bytes or None)."""
        extent = evaluate(cand.extent, self.sizes)
        biggest = max((self.out_bytes[i] for i in cand.loop), default=0)
        options = [(largest, None)]
        for limit, _ in self.machine.cache_tiers:
            if biggest:
                c = limit * extent // biggest
                if 1 <= c < largest:
                    options.append((c, limit))
        return options

    def slowdown(self, extra_seconds: float) -> float:
        """Estimated time ratio chunked / unchunked for ``extra_seconds`` of overhead."""
        return 1.0 + extra_seconds / self.total
