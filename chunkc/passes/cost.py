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
* writing each chunk of a region output into its buffer moves its bytes once more.

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
        self.times = []
        for node, flops in zip(self.graph.nodes, self.flops):
            moved = 0 if node.op.may_alias else (sum(self.nbytes[v] for v in node.inputs)
                                                 + sum(self.nbytes[o] for o in node.outputs))
            self.times.append(m.op_overhead_s + flops / m.flops_per_s + moved / m.bytes_per_s)
        self.total = sum(self.times) or 1e-9

    def region_overhead(self, cand, chunk: int) -> float:
        """Extra seconds a region (a search Candidate) costs over running its nodes unchunked."""
        m = self.machine
        extent = evaluate(cand.extent, self.sizes)
        iterations = -(-extent // max(chunk, 1))
        extra = (iterations - 1) * len(cand.loop) * m.op_overhead_s
        nodes = self.graph.nodes
        if chunk < m.min_efficient_rows:
            penalty = m.min_efficient_rows / max(chunk, 1) - 1.0
            for i in cand.loop:
                # a contraction (many FLOPs per output byte) runs slower on few rows
                if self.flops[i] > 8 * max(self.nbytes[nodes[i].outputs[0]], 1):
                    extra += (self.times[i] - m.op_overhead_s) * penalty
        loop_nodes = {nodes[i] for i in cand.loop}
        for v, axis, _ in cand.chunked:
            if v.producer not in loop_nodes and any(not (isinstance(s, int) and s == 1) for s in v.shape[:axis]):
                extra += self.nbytes[v] / m.bytes_per_s  # a strided slice is often copied
        for v in cand.outputs:
            extra += self.nbytes[v] / m.bytes_per_s  # chunk -> buffer copy
        return extra

    def slowdown(self, extra_seconds: float) -> float:
        """Estimated time ratio chunked / unchunked for ``extra_seconds`` of overhead."""
        return 1.0 + extra_seconds / self.total
