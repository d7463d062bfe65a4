"""A cost model of speed: how long each node takes, run whole or a chunk at a time.

The selection ranks regions by the seconds chunking adds (or saves); the plan
report and ``plan.estimated_slowdown`` give the time ratio chunked / unchunked.
Every node's call is priced from what its op record knows (FLOPs, whether it
is a view: one that copies here, by the memory estimate's layout rule, is priced
as a copy) and the bytes of its values, by a *kernel model*:

* one call costs a fixed time (the generated statement, Python and the
  dispatcher), plus its work: bytes moved at a bandwidth that depends on the
  size of the tensors (small ones stay in cache), or FLOPs at a rate, whichever
  takes longer; plus the first touch of a fresh output's pages (on Linux/glibc a
  block above the mmap threshold is fresh pages at every call);
* a *contraction* (more FLOPs per byte it reads and writes than
  ``CONTRACTION_FLOPS_PER_BYTE``: a matrix product, a convolution, an
  attention; a reduction or an elementwise op does a few FLOPs per element) is
  priced at a matrix product's rate; one whose chunk shrinks its rows — the chunk axis
  comes from one operand only, as the rows of a matmul or the queries of an
  attention, not a batch axis that every operand shares — runs at the rate of
  a matrix product with that many rows (small matrices use the hardware badly),
  and one whose output's last axis comes from one operand (a matmul's right
  operand, an attention's values) at the rate of a product with that many
  columns: below 16 a narrow kernel, slow enough to hide its operand reads;
  its stores come on top, per output byte by the output's size and whether its
  rows are whole cache lines (attention scores over heads of 8-64 do few FLOPs
  per element, and out of cache their stores cost more than the arithmetic);
  and its operands, which it repacks at every call: nearly free in cache, but on
  a chunk of few rows a fifth of the arithmetic or more when they come from memory
  — as more of them do the more a loop's iteration touches
  (:meth:`TimeModel.iteration_bytes` against the stream's slowdown at the cache
  edge, :meth:`KernelTable.cold_share`: an attention's scores evict the weights and
  keys the next iteration reads again; what the iteration itself just wrote stays
  warm), and all of them between two whole calls;
* a fused attention (an op record with ``rows_kernel``) on a chunk of its queries: its
  arithmetic at a wide product's rate, times how much more its kernel costs per query row
  on that many rows than on all of them (``KernelTable.attention``, measured per mask kind
  and for causal queries: the CPU flash kernel blocks its queries by how many a call has);
* an elementwise kernel or a reduction: its FLOPs at the rate measured on its own
  op record's kernel when the table has one (exponentials, tanh, softmax: one
  exponential's rate does not fit them all; comparisons and ``where``, light as
  they are, take 2.5-3 times an addition's time), else at an exponential's; a
  row-wise kernel (softmax, a normalization: the output's ``mix`` axes make its
  rows) at its measured time per element for its rows' width (a layer norm over
  16 channels: five times as long an element as over 1024);
* a chunk loop adds, per iteration, its bookkeeping, a view of every sliced
  input and the copy of each output chunk into its buffer; a region input
  sliced along an axis that is not the outermost is a strided view that
  kernels often copy first (the paper's "micro" cost); and when an iteration's
  outputs hold twice the allocator's (dynamic) mmap threshold at once, the pages
  glibc gives back between iterations are touched anew.

Two kernel models come with chunkc:

* :class:`KernelTable` — measured on this machine, for the PyTorch backend:
  ``python -m chunkc.calibrate`` times the fixed per-call costs, a streaming
  kernel, fresh outputs, a pointwise kernel, matrix products (by rows and by
  output columns) and their stores over ladders of sizes, products on cold operands, the
  elementwise kernels of the op records, four row-wise kernels by row width and fused
  attention by query rows (about 20 s on a quiet machine) and caches the table as
  JSON in the user's cache directory, keyed by machine, torch version, torch
  threads, the table's format and the allocator's settings in the environment
  (:func:`table_path`).  Times between measured sizes are interpolated.
* :class:`Machine` — hand-set constants that rank candidates but do not
  predict seconds: the fallback when no table exists (and for the other
  backends).

:func:`default_kernels` picks the table when one exists for this machine, else
the constants.  :func:`predict_seconds` prices a whole program (a graph, chunked
by a plan or not) with the same per-node costs, so that a plan's time can be
predicted against the unchunked program's (``python -m benchmarks cost-model`` shows
the prediction beside the measurement).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from ..errors import ChunkcError
from ..ir.graph import Graph, Node, Value
from ..ir.sizes import evaluate
from ..ir.types import TensorType

VIEW, POINTWISE, CONTRACTION = "view", "pointwise", "contraction"
# more FLOPs per byte moved than this: a contraction.  Elementwise ops and reductions do at most a few
# FLOPs per 4-byte element (softmax 5 per 8 bytes moved); q @ k^T with heads of 16 does 32 per output element
CONTRACTION_FLOPS_PER_BYTE = 2
# A matrix product stores its output row by row; rows whose bytes are not a multiple of a cache line
# (2305 tokens of 4 bytes) start mid-line, and once the output is too large for the caches such
# stores cost twice as much per byte (measured: chunkc.calibrate's two product_out curves)
CACHE_LINE = 64
# What the cost model prices when the generated program runs under torch.compile (``compiled=``):
# None, eager PyTorch; "inductor", Inductor (see TimeModel and docs/passes.md)
COMPILERS = (None, "inductor")
# One call of an Inductor-compiled chunk function beyond its kernels: dynamo's guards on its
# arguments and the compiled wrapper (measured whole, kernel included: a chunk function of three
# elementwise ops on 16 rows, 27 us a call compiled against 28 us eager, 1 thread; small beside
# the kernels, so a constant, not a kernel-table entry)
COMPILED_BODY_S = 25e-6
# glibc keeps this much free at the top of its heap beyond what a block needed (M_TOP_PAD's default),
# and its mmap threshold starts at (and grows from) the same 128 KiB
TOP_PAD = MMAP_THRESHOLD_START = 128 << 10
# the stream kernel (chunkc.calibrate: c = a + b) touches three tensors of the size that indexes its curves
STREAM_TENSORS = 3


@dataclass(frozen=True)
class Work:
    """One call of one node, as a kernel model prices it."""

    kind: str  # VIEW, POINTWISE or CONTRACTION
    flops: float
    moved: float  # bytes read and written
    footprint: float  # bytes of the largest tensor it touches (whether it stays in cache)
    fresh: tuple[float, ...] = ()  # bytes of each output the call allocates
    rows: float | None = None  # a contraction whose chunk shrinks its rows: rows per call (None: many)
    written: float = 0.0  # bytes of its outputs (a contraction's stores, see KernelTable.product_out)
    aligned: bool = True  # its output's rows are whole cache lines (see CACHE_LINE)
    operands: float = 0.0  # bytes of a contraction's operands, which it repacks at every call (KernelTable.operand_s)
    cold: float = 1.0  # the share of those operands that comes from memory, not the caches (evicted since last touched)
    op: str = ""  # the op record's name: the key of a measured per-record rate (KernelTable.pointwise_rates)
    columns: float | None = None  # a contraction's output columns, when one operand alone gives them (None: many)
    # an op whose kernel follows a measured per-query-row curve (OpDef.rows_kernel, KernelTable.attention):
    # the curve's name, the query rows of this call and of the whole op's call
    rows_kernel: str = ""
    query_rows: float | None = None
    whole_rows: float | None = None
    # a row-wise kernel (softmax, a normalization: its output's "mix" axes): elements per row and rows per call,
    # its time per element set by the rows' width (KernelTable.row_costs); 0: not row-wise
    row_width: float = 0.0
    row_count: float = 0.0


class Kernels(Protocol):
    """A kernel model: what one call, a chunk copy and a loop's bookkeeping cost."""

    description: str
    slice_s: float  # a view of a sliced input, per iteration
    iteration_s: float  # a loop iteration's own statements
    chunk_multiple: int  # chunks are rounded up to a multiple of this many units where the budget allows

    def cold_share(self, iteration_bytes: float) -> float:
        """The share (0 to 1) of a matrix product's operands that a loop iteration touching
        ``iteration_bytes`` has evicted from the caches by the time they are read again (Work.cold)."""

    def seconds(self, work: Work) -> float:
        """Seconds of one call."""

    def write_seconds(self, nbytes: float) -> float:
        """Seconds to copy a chunk of ``nbytes`` into its output buffer."""

    def copy_seconds(self, nbytes: float) -> float:
        """Seconds to copy ``nbytes`` (a strided slice made contiguous)."""

    def size_classes(self) -> tuple[int, ...]:
        """Tensor sizes (bytes) at which the cost per byte changes: chunks that keep every loop
        tensor within one are worth pricing."""


    def heap_returned_seconds(self, live: float, largest: float, blocks: Sequence[float] = ()) -> float:
        """What a loop iteration whose fresh outputs hold at most ``live`` bytes at once, the largest
        of ``largest`` bytes, pays because the allocator returns memory to the system between
        iterations, in a program that also allocates blocks of the sizes ``blocks`` (ascending;
        see :meth:`KernelTable.heap_returned_seconds`)."""


@dataclass(frozen=True)
class Machine:
    """Hand-set constants of a CPU running PyTorch eagerly: they rank candidates, they do
    not predict seconds.  The fallback when no measured :class:`KernelTable` exists."""

    flops_per_s: float = 50e9
    bytes_per_s: float = 10e9
    op_overhead_s: float = 6e-6
    min_efficient_rows: int = 64
    # bandwidth speedup for memory-bound work on tensors up to each size (cache, heap reuse)
    cache_tiers: tuple[tuple[int, float], ...] = ((4 << 20, 3.0), (32 << 20, 1.25))
    slice_s: float = 0.0
    iteration_s: float = 0.0
    chunk_multiple: int = 1
    label: str = "built-in constants (no measured kernel table; run python -m chunkc.calibrate)"

    @property
    def description(self) -> str:
        return self.label

    def speedup(self, nbytes: float) -> float:
        """Bandwidth speedup for memory-bound work on a tensor of ``nbytes``."""
        for limit, factor in self.cache_tiers:
            if nbytes <= limit:
                return factor
        return 1.0

    def seconds(self, work: Work) -> float:
        rate = self.flops_per_s
        if work.kind == CONTRACTION and work.rows is not None and work.rows < self.min_efficient_rows:
            rate *= max(work.rows, 1.0) / self.min_efficient_rows
        moved = 0.0 if work.kind == VIEW else work.moved
        return (self.op_overhead_s + work.flops / rate
                + moved / (self.bytes_per_s * self.speedup(max(work.fresh, default=0.0))))

    def write_seconds(self, nbytes: float) -> float:
        return nbytes / self.bytes_per_s

    def copy_seconds(self, nbytes: float) -> float:
        return nbytes / self.bytes_per_s

    def size_classes(self) -> tuple[int, ...]:
        return tuple(limit for limit, _ in self.cache_tiers)

    def heap_returned_seconds(self, live: float, largest: float, blocks: Sequence[float] = ()) -> float:
        return 0.0

    def cold_share(self, iteration_bytes: float) -> float:
        return 0.0  # the constants do not price operands


GPU = Machine(flops_per_s=40e12, bytes_per_s=3e12, op_overhead_s=8e-6, min_efficient_rows=1024, cache_tiers=(),
              slice_s=4e-6, iteration_s=4e-6, chunk_multiple=128, label="built-in constants of a GPU")
"""Constants of a data-centre GPU run from eager PyTorch or CuPy: every kernel launch costs
the host some microseconds, whatever the work, and the device streams terabytes per second,
so fewer, larger chunks win (no cache tier to fit: chunks as large as the budget allows), and a
matrix product needs many rows to fill the device.  Chunks are rounded up to 128 units where
the budget allows: on an H200, cuBLAS ran a chunk of 2134 rows of an attention product 40%
slower per row than one of 2048, and ViT's 50% plan went from 1.067x to 1.040x the unchunked
time with its chunks rounded up to 2176 (docs/memory.md).  They rank candidates; like
:class:`Machine`'s, they do not predict seconds."""


def aligned_chunk(chunk: int, largest: int, multiple: int) -> int:
    """``chunk`` rounded up to a multiple of ``multiple`` when that is at most ``largest``."""
    up = -(-chunk // multiple) * multiple
    return up if multiple > 1 and up <= largest else chunk


# --------------------------------------------------------------------------- the measured table

TABLE_FORMAT = 6  # part of a table's key (2 was never released)
# older formats still read (find_table falls back to them): what they lack keeps its default, priced as
# before it was measured (5: no attention curve); ``python -m chunkc.calibrate --upgrade`` adds it
READ_FORMATS = (5, 6)


@dataclass(frozen=True)
class KernelTable:
    """Kernel costs measured on one machine (``python -m chunkc.calibrate``).

    Curves are (size, value) points, sizes ascending; values in between are
    interpolated on a log scale of the size, and held flat beyond the ends.
    """

    key: str  # machine, torch version, threads (see table_key)
    call_s: float  # one op call on tiny tensors: the generated statement, Python, dispatch
    view_s: float  # one view (reshape, permute, slice)
    iteration_s: float  # a chunk loop's own statements per iteration
    stream: tuple[tuple[float, float], ...]  # (largest tensor bytes, seconds per byte moved)
    alloc: tuple[tuple[float, float], ...]  # (output bytes, seconds a fresh output costs over a reused one)
    pointwise_flops_per_s: float  # an elementwise kernel's arithmetic (exp), in cache
    gemm: tuple[tuple[float, float], ...]  # (rows of a matrix product, FLOPs per second)
    # (output bytes of a matrix product, seconds per output byte beyond its arithmetic): its stores,
    # with rows of whole cache lines and with rows that are not
    product_out: tuple[tuple[float, float], ...]
    product_out_unaligned: tuple[tuple[float, float], ...]
    # seconds per byte of a matrix product's operands beyond the gemm curve (measured on a small
    # operand in cache, 256 x 256) and the stores: a product repacks its operands at every call, from
    # the caches when the program has not touched much since (warm), else from memory (cold)
    operand_warm_s: float = 0.0
    operand_cold_s: float = 0.0
    # (bytes a tensor, seconds per byte moved) of the stream kernel every quarter octave where the last
    # cache level ends: how much of a loop iteration's data the caches still hold (cold_share)
    edge: tuple[tuple[float, float], ...] = ()
    # (output columns of a matrix product, FLOPs per second) with 256 rows and an inner dimension of 256:
    # products with fewer than 16 columns run a narrow kernel several times slower per FLOP (gemm_rate)
    gemm_columns: tuple[tuple[float, float], ...] = ()
    # (op record, FLOPs per second) measured on the record's own kernel in cache (the FLOPs its record
    # counts); records not in it run at pointwise_flops_per_s
    pointwise_rates: tuple[tuple[str, float], ...] = ()
    # (kernel, ((query rows, seconds per query row and key of one batch-head), ...)) of fused attention
    # (OpDef.rows_kernel: "none", "bool", "float" mask; "causal" per key attended, the causal square in
    # chunks of the rows, its last point the whole square in one call) over chunkc.calibrate's
    # ATTENTION_KEYS keys, heads of ATTENTION_HEAD: ATen's CPU flash kernel blocks its queries by how
    # many a call has (256 from 768 rows on, 64 from 192, else 32), and on a chunk of few rows runs more,
    # smaller products per key block.  Only ratios of a curve's points are used (rows_factor)
    attention: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()
    format: int = TABLE_FORMAT  # the format it was read in (an older one lacks curves: READ_FORMATS)
    # (op record, ((elements a row, seconds per element), ...)): a row-wise kernel (softmax, layer_norm) pays
    # per row as well as per element, so its time per element depends on its rows' width: a layer norm over
    # 16 channels takes five times as long per element as over 1024.  Measured on rows of 8 to 4096 elements
    # in cache (chunkc.calibrate._row_costs); it replaces the record's rate (pointwise_rates, measured on one
    # long row) for row-wise nodes; records not in it keep that rate
    row_costs: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()
    # (op record, FLOPs per second) of the light elementwise records (comparisons, where, add...) measured the
    # same way as pointwise_rates (chunkc.calibrate._elementwise_rates); records in neither: the generic rate
    elementwise_rates: tuple[tuple[str, float], ...] = ()
    created: str = ""
    notes: str = ""

    @property
    def slice_s(self) -> float:
        return self.view_s

    @property
    def chunk_multiple(self) -> int:
        return 1  # a CPU: any chunk runs as well as its neighbours

    @property
    def description(self) -> str:
        return f"kernel table {self.key}" + (f", measured {self.created}" if self.created else "")

    def per_byte(self, footprint: float) -> float:
        return _interpolate(self.stream, footprint)

    def alloc_seconds(self, nbytes: float) -> float:
        """A fresh output of ``nbytes``: its pages' first touch (linear in the size beyond the
        largest measured)."""
        largest, seconds = self.alloc[-1]
        if nbytes > largest:
            return max(0.0, seconds) * nbytes / largest
        return max(0.0, _interpolate(self.alloc, nbytes))

    def cold_share(self, iteration_bytes: float) -> float:
        """How far the stream kernel has slowed from its rate in cache to its rate from memory when
        it touches ``iteration_bytes`` in all, on a log scale of the cost per byte (0: all in cache,
        1: all from memory; ``edge``): the share of an iteration's product operands read cold.  The
        edge is indexed by one of the stream's tensors, and it touches :data:`STREAM_TENSORS` of
        them: its whole working set is read off at a third of the iteration's bytes (indexed by
        the iteration's bytes, a ViT loop of 13 MB, well inside a 32 MB cache, was priced 94% cold
        and its plans predicted 1.25 times their measured time)."""
        if not self.edge:
            return 1.0
        low, high = self.edge[0][1], self.edge[-1][1]
        if high <= low:
            return 0.0
        cost = _interpolate(self.edge, iteration_bytes / STREAM_TENSORS)
        return min(1.0, max(0.0, math.log(cost / low) / math.log(high / low)))

    @functools.cached_property
    def _heap_bytes(self) -> float:
        fault = self.alloc[-1][1] / self.alloc[-1][0]
        heap = [s for s, a in self.alloc if a < 0.1 * fault * s]
        return heap[-1] if heap else 0.0

    def heap_bytes(self) -> float:
        """The largest measured fresh output the allocator serves from its heap (reused, costing
        next to nothing): those beyond cost their pages' first touch, a tenth of that or more."""
        return self._heap_bytes

    def heap_returned_seconds(self, live: float, largest: float, blocks: Sequence[float] = ()) -> float:
        """glibc gives back the free top of its heap once it exceeds twice its (dynamic) mmap
        threshold, which grows to the largest block up to :meth:`heap_bytes` that the process has
        freed: the program's largest such block (``blocks``, ascending) or the iteration's own
        ``largest``.  An iteration whose outputs hold twice that at once (with the top's pad,
        :data:`TOP_PAD`) leaves that much free at the top when they die, finds it returned at the next
        iteration and touches those
        pages anew — about its largest output's worth per iteration (measured on GPT-2's chunk
        loops, 30 MB chunks of attention scores, and on a UNet's, 4 MB chunks where the program's
        largest other block is 3.4 MB), at the rate of an mmap-served output."""
        heap = self.heap_bytes()
        if not heap or largest > heap:  # its blocks are mmap-served: priced as fresh outputs
            return 0.0
        k = bisect.bisect_right(blocks, heap)
        threshold = max(largest, blocks[k - 1] if k else 0.0, MMAP_THRESHOLD_START)
        if live + TOP_PAD < 2 * threshold:
            return 0.0
        largest_size, seconds = self.alloc[-1]
        return max(0.0, seconds) * largest / largest_size

    def gemm_rate(self, rows: float | None, columns: float | None = None) -> float:
        """FLOPs per second of a matrix product with ``rows`` rows and ``columns`` output columns
        (None: many): the rows' rate (``gemm``), times the share of a wide product's rate that one of
        ``columns`` reaches (``gemm_columns``; at most 1)."""
        rate = _interpolate(self.gemm, math.inf if rows is None else max(rows, 1.0))
        if columns is None or not self.gemm_columns:
            return rate
        wide = self.gemm_columns[-1][1]
        return rate * min(1.0, _interpolate(self.gemm_columns, max(columns, 1.0)) / wide)

    @functools.cached_property
    def _rates(self) -> dict[str, float]:
        return {**dict(self.elementwise_rates), **dict(self.pointwise_rates)}

    def pointwise_rate(self, op: str) -> float:
        """FLOPs per second of an elementwise or reduction kernel of ``op`` (a record's name)."""
        return self._rates.get(op, self.pointwise_flops_per_s)

    @functools.cached_property
    def _attention(self) -> dict[str, tuple[tuple[float, float], ...]]:
        return dict(self.attention)

    def attention_curve(self, kernel: str) -> tuple[tuple[float, float], ...]:
        """The measured (query rows, seconds per query row and key) of fused attention ``kernel``
        (OpDef.rows_kernel); () when the table has none (a table of format 5)."""
        return self._attention.get(kernel, ())

    def rows_factor(self, kernel: str, rows: float | None, whole: float | None) -> float:
        """How much more a fused attention costs per query row on a call of ``rows`` query rows
        than on one of ``whole`` (the op unchunked): the ratio of the curve at the two (at least 1;
        1 without a curve or with either unknown)."""
        curve = self.attention_curve(kernel)
        if not curve or rows is None or whole is None or rows >= whole:
            return 1.0
        return max(1.0, _interpolate(curve, max(rows, 1.0)) / _interpolate(curve, whole))

    @functools.cached_property
    def _row_curves(self) -> dict[str, tuple[tuple[float, float], ...]]:
        return dict(self.row_costs)

    def row_seconds(self, op: str, width: float, rows: float) -> float | None:
        """Seconds of a row-wise kernel of ``op`` on ``rows`` rows of ``width`` elements in cache
        (``row_costs``, held flat beyond its widths); None for a record not measured."""
        curve = self._row_curves.get(op)
        if not curve or rows <= 0 or width <= 0:
            return None
        return rows * width * _interpolate(curve, width)

    def product_out_seconds(self, nbytes: float, aligned: bool = True) -> float:
        """What a matrix product's ``nbytes`` of output cost beyond its arithmetic: per element a
        tile's stores, whatever the inner dimension; slow once the output leaves the caches, slower
        still when its rows are not whole cache lines (``aligned`` False)."""
        curve = self.product_out if aligned else self.product_out_unaligned
        return nbytes * _interpolate(curve, nbytes) if nbytes > 0 else 0.0

    def seconds(self, work: Work) -> float:
        if work.kind == VIEW:
            return self.view_s
        memory = work.moved * self.per_byte(work.footprint)
        if work.kind == CONTRACTION:
            # a wide product's arithmetic, then its operands repacked; a narrow one (few columns) runs a
            # kernel slow enough to read its operands while it computes: whichever takes longer
            operands = work.operands * (self.operand_warm_s + work.cold * (self.operand_cold_s - self.operand_warm_s))
            rows, factor = work.rows, 1.0
            if work.rows_kernel and self.attention_curve(work.rows_kernel):
                # a fused attention on a chunk of its queries: the measured curve prices the rows, not the gemm's
                rows, factor = None, self.rows_factor(work.rows_kernel, work.query_rows, work.whole_rows)
            arithmetic = factor * max(work.flops / self.gemm_rate(rows) + operands,
                                      work.flops / self.gemm_rate(rows, work.columns))
            compute = arithmetic + self.product_out_seconds(work.written, work.aligned)
        else:
            rows = self.row_seconds(work.op, work.row_width, work.row_count) if work.row_count else None
            compute = work.flops / self.pointwise_rate(work.op) if rows is None else rows
        return self.call_s + max(memory, compute) + sum(self.alloc_seconds(b) for b in work.fresh)

    def write_seconds(self, nbytes: float) -> float:
        return self.call_s + 2 * nbytes * self.per_byte(nbytes)

    def copy_seconds(self, nbytes: float) -> float:
        return self.call_s + 2 * nbytes * self.per_byte(nbytes) + self.alloc_seconds(nbytes)

    def size_classes(self) -> tuple[int, ...]:
        """The footprints where the cost per byte moved (stream + fresh pages) jumps by a
        quarter or more from one measured size to the next: the cache and allocator steps."""
        sizes = [s for s, _ in self.stream]
        cost = [self.per_byte(s) + self.alloc_seconds(s) / (3 * s) for s in sizes]  # ~3 bytes moved per output byte
        return tuple(int(sizes[k]) for k in range(len(sizes) - 1) if cost[k + 1] > 1.25 * cost[k])

    # -- the file ------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text: str, where: str = "kernel table") -> "KernelTable":
        try:
            data = json.loads(text)
            if data.get("format") not in READ_FORMATS:
                raise ValueError(f"format is not one of {', '.join(map(str, READ_FORMATS))}")
            for curve in ("stream", "alloc", "gemm", "product_out", "product_out_unaligned", "edge", "gemm_columns"):
                data[curve] = tuple((float(a), float(b)) for a, b in data[curve])
                if (not data[curve] and curve not in ("edge", "gemm_columns")) or any(a <= 0 for a, _ in data[curve]):
                    raise ValueError(f"curve {curve} is empty or has a size <= 0")
            data["pointwise_rates"] = tuple((str(k), float(v)) for k, v in data["pointwise_rates"])
            data["attention"] = tuple((str(k), tuple((float(a), float(b)) for a, b in curve))
                                      for k, curve in data.get("attention", ()))
            if any(not curve or any(a <= 0 or b <= 0 for a, b in curve) for _, curve in data["attention"]):
                raise ValueError("an attention curve is empty or has a value <= 0")
            data["elementwise_rates"] = tuple((str(k), float(v)) for k, v in data.get("elementwise_rates", ()))
            data["row_costs"] = tuple((str(op), tuple((float(w), float(t)) for w, t in curve))
                                      for op, curve in data.get("row_costs", ()))
            if any(not curve or any(w <= 0 for w, _ in curve) for _, curve in data["row_costs"]):
                raise ValueError("a row_costs curve is empty or has a width <= 0")
            table = KernelTable(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ChunkcError(f"{where}: not a chunkc kernel table ({exc}); rebuild it with "
                              "python -m chunkc.calibrate") from None
        return table

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @staticmethod
    def load(path: Path) -> "KernelTable":
        return KernelTable.from_json(Path(path).read_text(), str(path))


_SIZES: dict[int, tuple[Sequence[tuple[float, float]], list[float]]] = {}  # id(curve) -> (curve, its sizes)


def _sizes(curve: Sequence[tuple[float, float]]) -> list[float]:
    """The sizes of ``curve``, remembered: the selection interpolates the same curves many times."""
    found = _SIZES.get(id(curve))
    if found is None or found[0] is not curve:
        found = _SIZES[id(curve)] = (curve, [s for s, _ in curve])
    return found[1]


def _interpolate(curve: Sequence[tuple[float, float]], x: float) -> float:
    """The curve's value at ``x``: linear in log(size) between points, flat beyond the ends."""
    sizes = _sizes(curve)
    k = bisect.bisect_left(sizes, x)
    if k == 0:
        return curve[0][1]
    if k == len(curve):
        return curve[-1][1]
    (x0, y0), (x1, y1) = curve[k - 1], curve[k]
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return y0 + t * (y1 - y0)


# --------------------------------------------------------------------------- where tables live


def cache_dir() -> Path:
    """Where kernel tables are kept: ``$CHUNKC_CACHE_DIR``, else ``$XDG_CACHE_HOME/chunkc``,
    else ``~/.cache/chunkc``."""
    if os.environ.get("CHUNKC_CACHE_DIR"):
        return Path(os.environ["CHUNKC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chunkc"


def machine_name() -> str:
    """The CPU model, core count and architecture: what a kernel table is valid for."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model or 'unknown cpu'}, {os.cpu_count()} cores, {platform.machine()}, {platform.system()}"


def torch_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("torch")
    except PackageNotFoundError:
        return None


# Environment variables that change how the C allocator serves large blocks (glibc's mmap
# threshold decides whether a big tensor is fresh pages at every call; a preloaded jemalloc or
# tcmalloc replaces malloc): a table measured under one setting misprices fresh outputs under another.
ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                 "MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "LD_PRELOAD")


def allocator_tag(environ: Mapping[str, str] | None = None) -> str:
    """``""`` under the allocator's defaults, else ``-m<hash>`` of the allocator settings in the
    environment (part of a table's key)."""
    environ = os.environ if environ is None else environ
    settings = sorted((k, environ[k]) for k in ALLOCATOR_ENV if environ.get(k))
    return f"-m{hashlib.sha1(repr(settings).encode()).hexdigest()[:8]}" if settings else ""


def table_key(threads: int, machine: str | None = None, torch: str | None = None,
              allocator: str | None = None, table_format: int = TABLE_FORMAT) -> str:
    """``<hash of the machine>-torch<version><allocator tag>-v<table format>-t<threads>`` (see
    :func:`allocator_tag`)."""
    digest = hashlib.sha1((machine or machine_name()).encode()).hexdigest()[:10]
    tag = allocator_tag() if allocator is None else allocator
    return f"{digest}-torch{torch or torch_version()}{tag}-v{table_format}-t{threads}"


def table_path(threads: int, directory: Path | None = None, table_format: int = TABLE_FORMAT) -> Path:
    return (directory or cache_dir()) / f"kernels-{table_key(threads, table_format=table_format)}.json"


def _torch_threads() -> int | None:
    """torch's thread count, when torch is loaded (a table is measured at one)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None


def find_table(threads: int | None = None, directory: Path | None = None) -> KernelTable | None:
    """This machine's table for torch at ``threads`` (default: torch's current count), or None."""
    if torch_version() is None:
        return None
    directory = directory or cache_dir()
    if not directory.is_dir():
        return None
    formats = [f for f in reversed(READ_FORMATS)
               if any(directory.glob(f"kernels-{table_key(0, table_format=f).rsplit('-t', 1)[0]}-t*.json"))]
    if not formats:
        return None  # none for this machine and torch version (decided without importing torch)
    if threads is None:
        threads = _torch_threads()
        if threads is None:
            import torch  # a table exists for this machine: which thread count applies is torch's
            threads = torch.get_num_threads()
    for table_format in formats:  # the newest first; an older one prices what it lacks as before
        path = table_path(threads, directory, table_format)
        if path.exists():
            return KernelTable.load(path)
    return None


def default_kernels(backend: str = "torch", device: str = "cpu") -> Kernels:
    """The measured table for the PyTorch backend on this machine's CPU when there is one,
    else the built-in constants (also for the other backends, whose kernels it does not
    measure); on a GPU (``device="cuda"``), :data:`GPU`."""
    if device == "cuda":
        return GPU
    if backend == "torch":
        table = find_table()
        if table is not None:
            return table
    return Machine()


# --------------------------------------------------------------------------- the model of one graph


@dataclass
class _NodeFacts:
    kind: str
    flops: float
    in_bytes: tuple[float, ...]
    out_bytes: tuple[float, ...]
    row_bytes: float  # bytes of one row (the last axis) of its first output, 0 without one
    columns: float | None = None  # a contraction's output columns (see TimeModel._columns)
    row_width: float = 0.0  # a row-wise kernel's elements a row and rows, whole (see TimeModel._row_shape)
    row_count: float = 0.0
    rows_kernel: str = ""  # the measured per-query-row curve its kernel follows (OpDef.rows_kernel)
    whole_rows: float | None = None  # then: its query rows (output 0's axis -2), unchunked


@dataclass
class TimeModel:
    """Per-node times of one graph at given sizes, and what chunk loops cost, computed once.

    ``machine``: the kernel model (a :class:`Machine` or a :class:`KernelTable`); None: the
    default for ``backend`` (:func:`default_kernels`).  ``compiled``: the compiler the program
    runs under (one of :data:`COMPILERS`).  Under ``"inductor"``, an elementwise node whose
    results only elementwise nodes and views read is fused into its reader's kernel: its
    arithmetic is priced, not its call, its stores or its reader's loads (:meth:`fused_seconds`);
    a chunk loop's iteration costs one compiled call more (:data:`COMPILED_BODY_S`); and a
    region's chunk is the largest its budget allows (:meth:`chunk_options`)."""

    graph: Graph
    sizes: Mapping[str, int]
    machine: Kernels | None = None
    backend: str = "torch"
    device: str = "cpu"
    compiled: str | None = None
    facts: list[_NodeFacts] = field(init=False, repr=False)

    def __post_init__(self):
        check_compiler(self.compiled)
        if self.machine is None:
            self.machine = default_kernels(self.backend, self.device)
        self.nbytes = {v: v.type.nbytes(self.sizes) for v in self.graph.values()}
        self.position = {n: i for i, n in enumerate(self.graph.nodes)}
        self.flops = [evaluate(n.flops(), self.sizes) for n in self.graph.nodes]
        copying = self._copying_views()
        self.facts = [self._facts(n, f, n in copying) for n, f in zip(self.graph.nodes, self.flops)]
        self.out_bytes = [max(f.out_bytes, default=0) for f in self.facts]
        # the sizes of the blocks the program allocates, ascending (heap_returned_seconds)
        self.blocks = tuple(sorted({b for f in self.facts if f.kind != VIEW for b in f.out_bytes}))
        self.fused = self._fused() if self.compiled == "inductor" else frozenset()
        self.times = [self._seconds(i, self._work(i)) for i in range(len(self.facts))]
        self.total = sum(self.times) or 1e-9
        self._rows_cache: dict[tuple[int, int], float | None] = {}
        self._call_cache: dict[tuple, float] = {}  # see _call_seconds
        self._priced_cache: dict[tuple, float] = {}  # see _priced
        self._body_cache: dict[tuple, tuple] = {}  # see _body
        self._peak_cache: dict[tuple, float] = {}  # see _loop_peak
        self._cold_cache: dict[float, float] = {}  # see _cold_share
        self.size_classes = tuple(self.machine.size_classes())  # asked once: chunk_options needs them per region

    def _copying_views(self) -> set[Node]:
        """Nodes whose op may return a view but copies here: a ``contiguous`` of a permuted
        value, a ``reshape`` that strides cannot express (the memory estimate's layout rule,
        ``MemoryModel.makes_view``).  A copy of a [4, L, L] attention bias moves its 64 MiB
        at every call, not the microsecond of a view."""
        from .memory import MemoryModel  # the layout rule lives with the memory estimate
        if not any(n.op.may_alias for n in self.graph.nodes):
            return set()
        layout = MemoryModel(self.graph, self.sizes, backend=self.backend, device=self.device)
        return {n for n in self.graph.nodes
                if n.op.may_alias and len(n.outputs) == 1 and n.inputs and not layout.makes_view(n.outputs[0])}

    def _facts(self, node: Node, flops: int, copies: bool = False) -> _NodeFacts:
        """``copies``: the node's op may alias its input, but here it copies it (a pointwise
        kernel that reads the input's bytes and writes as many, see :meth:`_copying_views`)."""
        ins = tuple(float(self.nbytes[v]) for v in node.inputs)
        outs = tuple(float(self.nbytes[o]) for o in node.outputs)
        if node.op.may_alias and not copies:
            kind = VIEW
        elif flops > CONTRACTION_FLOPS_PER_BYTE * max(sum(ins) + sum(outs), 1):
            kind = CONTRACTION
        else:
            kind = POINTWISE
        first = node.outputs[0] if node.outputs else None
        row = 0.0
        if first is not None and first.rank:
            row = float(evaluate(first.shape[-1], self.sizes) * first.dtype.itemsize)
        width, count = self._row_shape(node) if kind == POINTWISE else (0.0, 0.0)
        facts = _NodeFacts(kind, float(flops), ins, outs, row, self._columns(node) if kind == CONTRACTION else None,
                           width, count)
        if kind == CONTRACTION and node.op.rows_kernel is not None and first is not None and first.rank >= 2:
            kernel = node.op.rows_kernel([v.type for v in node.inputs], node.attrs)
            if kernel:
                facts.rows_kernel, facts.whole_rows = kernel, float(evaluate(first.shape[-2], self.sizes))
        return facts

    def _row_shape(self, node: Node) -> tuple[float, float]:
        """(elements a row, rows) of a row-wise kernel: its first output's axes that the op computes
        across (``mix`` in its dims record: softmax's axis, a layer norm's normalized axes) make a
        row, the others count rows.  (0, 0) for an op without such axes (elementwise)."""
        out = node.outputs[0] if node.outputs else None
        if out is None or not out.rank:
            return 0.0, 0.0
        extents = [float(evaluate(d, self.sizes)) for d in out.shape]
        mixed = [a for a, flow in enumerate(node.dims()[0]) if flow.kind == "mix"]
        if not mixed:
            return 0.0, 0.0
        width = math.prod(extents[a] for a in mixed)
        return width, math.prod(extents) / width if width else 0.0

    def _columns(self, node: Node) -> float | None:
        """The columns of a contraction's output: its last axis, when one operand (rank >= 2) alone
        gives it — a matmul's right operand, a linear layer's weight, an attention's values (its
        head size).  None where no operand does (a convolution's spatial axis mixes its input)."""
        out = node.outputs[0] if node.outputs else None
        if out is None or not out.rank:
            return None
        flow = node.dims()[0][out.rank - 1]
        operands = {s.input for s in flow.sources}
        if flow.kind != "carry" or len(operands) != 1 or node.inputs[next(iter(operands))].rank < 2:
            return None
        return float(evaluate(out.shape[-1], self.sizes))

    def _fused(self) -> frozenset[int]:
        """Schedule indices of the elementwise nodes Inductor fuses into their readers: every
        reader of every result an elementwise node or a view (whose own readers fuse in turn,
        Inductor inlining views), no result a graph output."""
        outputs = set(self.graph.outputs)
        fused = set()
        for i in reversed(range(len(self.facts))):  # readers first: a view's readers decide it
            node = self.graph.nodes[i]
            if self.facts[i].kind == CONTRACTION or not node.outputs or any(o in outputs for o in node.outputs):
                continue
            readers = [self.position[u] for o in node.outputs for u in o.users]
            if readers and all(self.facts[r].kind == POINTWISE or (self.facts[r].kind == VIEW and r in fused)
                               for r in readers):
                fused.add(i)
        return frozenset(fused)

    def _seconds(self, i: int, work: Work) -> float:
        """The machine's seconds for node ``i``'s call ``work``; a fused node's (:meth:`_fused`)
        arithmetic alone."""
        if i not in self.fused:
            return self.machine.seconds(work)
        if work.kind == VIEW:
            return 0.0
        return self.fused_seconds(work)

    def fused_seconds(self, work: Work) -> float:
        """An elementwise call fused into another kernel: its arithmetic at the machine's rate for
        its op, without the call, the bytes it moves or a fresh output."""
        bare = Work(POINTWISE, 0.0, 0.0, 0.0, (), op=work.op)
        return max(0.0, self.machine.seconds(replace(bare, flops=work.flops)) - self.machine.seconds(bare))

    def _work(self, i: int, chunked: Mapping[Value, object] = {}, share: float = 1.0,
              rows: float | None = None, last_axis: bool = False, cold: float = 1.0,
              query_rows: float | None = None, flops_share: float | None = None) -> Work:
        """Node ``i``'s call when its outputs and the ``chunked`` inputs are ``share`` of their size
        (``last_axis``: its output is chunked along its last axis, so its rows shrink too; ``cold``:
        the share of its operands that what ran since they were last touched has evicted from the
        caches, all of them between two whole calls of a program of large tensors; ``query_rows``:
        a fused attention's query rows in this call, when a chunk of them (default: all);
        ``flops_share``: the share of its FLOPs the call does where it is not ``share``, as
        the op record counts them on the call's slices (:func:`block_flops`))."""
        f, node = self.facts[i], self.graph.nodes[i]
        ins = [b * share if v in chunked else b for v, b in zip(node.inputs, f.in_bytes)]
        outs = tuple(b * share for b in f.out_bytes)
        row = round(f.row_bytes * share) if last_axis else f.row_bytes
        columns = f.columns * share if last_axis and f.columns is not None else f.columns
        flops = f.flops * (share if flops_share is None else flops_share)
        return Work(f.kind, flops, sum(ins) + sum(outs), max(ins + list(outs), default=0.0),
                    () if f.kind == VIEW else outs, rows, sum(outs), row % CACHE_LINE == 0,
                    sum(ins) if f.kind == CONTRACTION else 0.0, cold, node.op.name, columns,
                    f.rows_kernel, f.whole_rows if query_rows is None else query_rows, f.whole_rows,
                    f.row_width, f.row_count * share)  # a chunk never splits a row (mix axes are not chunked)

    def _call_seconds(self, i: int, sliced_inputs: tuple[bool, ...], share: float, rows: float | None,
                      last_axis: bool = False, cold: float = 1.0, query_rows: float | None = None,
                      flops_share: float | None = None) -> float:
        """Seconds of node ``i``'s call on ``share`` of its outputs and of the inputs flagged in
        ``sliced_inputs`` (the machine's price of :meth:`_work`), remembered: the selection
        prices many regions that run the same node on the same share."""
        key = (i, sliced_inputs, share, rows, last_axis, cold, query_rows, flops_share)
        t = self._call_cache.get(key)
        if t is None:
            node = self.graph.nodes[i]
            chunked = {v: None for v, flag in zip(node.inputs, sliced_inputs) if flag}
            t = self._call_cache[key] = self._seconds(
                i, self._work(i, chunked, share, rows, last_axis, cold, query_rows, flops_share))
        return t

    def iteration_bytes(self, loop: Sequence[int], chunked: Mapping[Value, tuple[int, int]], share: float) -> float:
        """Distinct bytes one iteration of a chunk loop touches: the region inputs it reads (the
        sliced ones at ``share`` of their size) and the most its own values (views excepted) hold at
        once — the allocator hands a freed chunk's block to the next value of its size, so the
        outputs of a long body do not all add up.  The more it is, the more of an operand read in
        one iteration is gone from the caches by the next (a loop invariant such as a weight or an
        attention's keys): the machine's ``cold_share``."""
        _, _, _, _, scaled, fixed, _, _ = self._body(loop, chunked)
        return share * scaled + fixed

    def _body(self, loop: Sequence[int], chunked: Mapping[Value, tuple[int, int]]) -> tuple:
        """What pricing a loop at any chunk needs of its nodes and ``chunked``, found once per loop
        and chunking (the selection prices each candidate at several chunks, and its loop's nodes
        again in other candidates): per node (schedule index, which inputs are sliced, its
        product's rows when whole (:meth:`_rows`), whether its output is chunked along its last
        axis, whether it is a contraction), views apart (the seconds of one call of them all, the
        same on any chunk); how many region inputs are sliced (viewed each
        iteration) and those of them that are strided; :meth:`iteration_bytes` as the bytes
        that scale with the chunk and those that do not; and the most the loop's fresh outputs
        hold at once and the largest of them (``heap_returned_seconds``)."""
        key = (id(chunked), tuple(loop))
        found = self._body_cache.get(key)
        if found is not None and found[0] is chunked:
            return found[1]
        nodes = self.graph.nodes
        inside = {nodes[i] for i in loop}
        peak = self._loop_peak(tuple(loop), inside)
        read = {v: None for i in loop for v in nodes[i].inputs if v.producer not in inside}
        scaled = peak + sum(self.nbytes[v] for v in read if v in chunked)
        fixed = float(sum(self.nbytes[v] for v in read if v not in chunked))
        made = [self.out_bytes[i] for i in loop if self.facts[i].kind != VIEW]
        body, views = [], 0.0
        for i in loop:
            node = nodes[i]
            if self.facts[i].kind == VIEW and not self.facts[i].flops:
                views += self.times[i]  # a view costs the same on any chunk: summed once
                continue
            out = node.outputs[0] if node.outputs else None
            body.append((i, tuple([v in chunked for v in node.inputs]), self._rows(i, chunked),
                         out in chunked and chunked[out][0] == out.rank - 1,
                         self._operands_from_outside(i, chunked, inside) if self.facts[i].kind == CONTRACTION
                         else None,
                         # a fused attention chunked along its queries: its whole query rows (OpDef.rows_kernel)
                         self.facts[i].whole_rows if self.facts[i].rows_kernel and out in chunked
                         and chunked[out][0] == out.rank - 2 else None))
        sliced = tuple(v for v in chunked if v.producer not in inside)
        # sliced along an axis that is not the outermost: a strided view, often copied
        strided = tuple(v for v in sliced if any(not (isinstance(s, int) and s == 1) for s in v.shape[:chunked[v][0]]))
        parts = (tuple(body), views, len(sliced), strided, scaled, fixed, peak, max(made, default=0.0))
        self._body_cache[key] = (chunked, parts)  # keeps ``chunked`` alive: its id is not reused
        return parts

    def _operands_from_outside(self, i: int, chunked: Mapping[Value, tuple[int, int]],
                               inside: set[Node]) -> tuple[float, float, float, float]:
        """A loop contraction's operand bytes that the iteration did not make — region inputs
        (a weight, an attention's keys) and views of them, which it last touched an iteration or
        more ago — against all its operand bytes, each split into sliced bytes (scaled by the
        chunk's share) and whole ones: (outside sliced, outside whole, all sliced, all whole).
        Only these are read cold; an operand the previous node just wrote is as warm as the
        caches keep anything (:meth:`loop_seconds`)."""
        node = self.graph.nodes[i]
        found = [0.0, 0.0, 0.0, 0.0]
        for v, nbytes in zip(node.inputs, self.facts[i].in_bytes):
            root = v
            while root.producer in inside and self.facts[self.position[root.producer]].kind == VIEW \
                    and root.producer.inputs:
                root = root.producer.inputs[0]  # a view made in the loop: whose storage it shows
            outside = root.producer not in inside
            part = 0 if v in chunked else 1
            found[2 + part] += nbytes
            if outside:
                found[part] += nbytes
        return tuple(found)

    def _loop_peak(self, loop: tuple[int, ...], inside: set[Node]) -> float:
        """The most a loop's own values (views excepted) hold at once, whole (see
        :meth:`iteration_bytes`), remembered per loop."""
        peak = self._peak_cache.get(loop)
        if peak is None:
            nodes = self.graph.nodes
            last = {}  # loop value -> its last reader in the loop
            for k, i in enumerate(loop):
                for v in nodes[i].inputs:
                    if v.producer in inside:
                        last[v] = k
            live = peak = 0.0
            for k, i in enumerate(loop):
                if self.facts[i].kind != VIEW:
                    live += sum(self.facts[i].out_bytes)
                peak = max(peak, live)
                for v in nodes[i].inputs:
                    if last.get(v) == k and self.facts[self.position[v.producer]].kind != VIEW:
                        live -= self.nbytes[v]
                        last.pop(v)
            self._peak_cache[loop] = peak
        return peak

    def _cold_share(self, iteration_bytes: float) -> float:
        """The machine's cold share at ``iteration_bytes``, to two places (a key of the call cache)."""
        share = self._cold_cache.get(iteration_bytes)
        if share is None:
            share = self._cold_cache[iteration_bytes] = round(self.machine.cold_share(iteration_bytes), 2)
        return share

    def _rows(self, i: int, chunked: Mapping[Value, tuple[int, int]]) -> float | None:
        """Rows of node ``i``'s matrix product when its output is whole, if chunking its output
        shrinks them: the chunk axis comes from one operand (rank >= 2) only, and the rows are
        that axis times the later output axes the same operand gives (or that the op mixes, as
        a convolution's spatial axes).  None: a batch axis that every operand shares."""
        node = self.graph.nodes[i]
        out = node.outputs[0] if node.outputs else None
        if self.facts[i].kind != CONTRACTION or out not in chunked:
            return None
        axis = chunked[out][0]
        key = (i, axis)
        if key not in self._rows_cache:
            record = node.dims()[0]
            operands = {s.input for s in record[axis].sources if node.inputs[s.input].rank >= 2}
            rows = None
            if len(operands) == 1:
                (src,) = operands
                rows = float(evaluate(out.shape[axis], self.sizes))
                for a in range(axis + 1, out.rank):
                    flow = record[a]
                    if flow.kind == "mix" or any(s.input == src for s in flow.sources):
                        rows *= evaluate(out.shape[a], self.sizes)
            self._rows_cache[key] = rows
        return self._rows_cache[key]

    # -- chunk loops ---------------------------------------------------------------

    def loop_seconds(self, loop: Sequence[int], chunked: Mapping[Value, tuple[int, int]], outputs: Sequence[Value],
                     extent: int, chunk: int, reused: Sequence[Value] = (),
                     accumulators: Sequence[Value] = (),
                     halos: Mapping[Value, tuple[int, int]] | None = None,
                     per_node: dict[int, float] | None = None) -> float:
        """Seconds of a chunk loop: its nodes (schedule indices) run on chunks of ``chunk`` of
        ``extent`` units, ``chunked`` the values sliced in it ({value: (axis, unit)}), ``outputs``
        written into full buffers (``reused``: those written over an input's storage;
        ``accumulators``: those merged whole, in place, once per iteration but the first);
        ``halos`` the rows beyond its chunk a loop value holds (chunkc.passes.halo): its node
        computes them again in each iteration, the overlap's price.  ``per_node``, when given,
        gets each node's calls over all iterations added (the rest is the loop's own: a
        diagnostic, benchmarks.node_times)."""
        m = self.machine
        chunk = max(1, min(chunk, extent))
        full, rest = divmod(extent, chunk)
        parts = [(full, chunk / extent)] + ([(1, rest / extent)] if rest else [])
        iterations = full + (1 if rest else 0)
        body, views, sliced, strided, scaled, fixed, live, largest = self._body(loop, chunked)
        cold = [self._cold_share(share * scaled + fixed) for _, share in parts]
        total = iterations * views
        if live:
            total += sum(count * m.heap_returned_seconds(share * live, share * largest, self.blocks)
                         for count, share in parts)
        cache, call = self._call_cache, self._call_seconds
        nodes = self.graph.nodes
        for (count, share), evicted in zip(parts, cold):
            calls = 0.0  # one iteration's calls (the selection's inner loop: _call_seconds's cache asked here first)
            for i, sliced_inputs, rows, last_axis, outside, queries in body:
                grown = min(1.0, share * _overlap(nodes[i], chunked, halos, chunk)) if halos else share
                cold = 1.0
                if outside is not None:  # a contraction: its operands from outside the iteration read cold
                    total_bytes = outside[2] * grown + outside[3]
                    cold = round(evicted * (outside[0] * grown + outside[1]) / total_bytes, 2) if total_bytes else 0.0
                args = (i, sliced_inputs, grown, None if rows is None else rows * grown, last_axis, cold,
                        None if queries is None else queries * grown, None)  # _call_seconds's key
                t = cache.get(args)
                if t is None:
                    t = call(*args)
                calls += t
                if per_node is not None:
                    per_node[i] = per_node.get(i, 0.0) + count * t
            total += count * calls
        total += iterations * (m.iteration_s + sliced * m.slice_s + (COMPILED_BODY_S if self.compiled else 0.0))
        for v in strided:
            total += self._priced("copy", v, self.nbytes[v])
        for v in outputs:
            if v in accumulators:  # a pointwise merge in place: reads two, writes one
                total += (iterations - 1) * self._priced("merge", v, self.nbytes[v])
                continue
            if v not in reused:  # the buffer
                total += self._priced("buffer", v, self.nbytes[v])
            for count, share in parts:
                total += count * self._priced("write", v, self.nbytes[v] * share)
        return total

    def _priced(self, what: str, v: Value, nbytes: float) -> float:
        """The machine's seconds for ``what`` a loop does with ``nbytes`` of ``v`` (a strided
        slice's ``copy``, an accumulator's ``merge``, an output's ``buffer`` or a chunk's
        ``write`` into it), remembered: the selection prices many loops writing the same values."""
        key = (what, v, nbytes)
        t = self._priced_cache.get(key)
        if t is None:
            m = self.machine
            if what == "copy":
                t = m.copy_seconds(nbytes)
            elif what == "merge":
                t = m.seconds(Work(POINTWISE, float(nbytes) / max(v.dtype.itemsize, 1), 3 * float(nbytes),
                                   float(nbytes), ()))
            elif what == "buffer":
                t = m.seconds(Work(POINTWISE, 0.0, 0.0, 0.0, (float(nbytes),)))
            else:
                t = m.write_seconds(nbytes)
            self._priced_cache[key] = t
        return t

    def region_overhead(self, cand, chunk: int) -> float:
        """Extra seconds a region (a search Candidate) costs over running its nodes
        unchunked; negative when chunking makes it faster."""
        extent = evaluate(cand.extent, self.sizes)
        chunked = cand.axes
        looped = self.loop_seconds(cand.loop, chunked, cand.outputs, extent, chunk,
                                   accumulators=getattr(cand, "accumulators", ()), halos=getattr(cand, "halos", None))
        return looped - sum(self.times[i] for i in cand.loop)

    def chunk_options(self, cand, largest: int) -> list[tuple[int, int | None]]:
        """Chunks worth pricing: the largest the budget allows, and the largest that
        keeps every loop tensor within each of the kernel model's size classes.
        (chunk, size class bytes or None).  Compiled (``compiled``): the largest only.  Inductor
        fuses the elementwise chains and the written-out attention whose intermediates a smaller
        chunk keeps in cache, and its fused kernels block for the caches themselves, while each
        chunk runs them on fewer rows and reads the loop's invariant operands again (the ViT of
        the inductor benchmark, side 768, at 20%: chunks of 55, 128, 256 and 2305 rows ran 1.40,
        1.20, 1.11 and 1.04x the compiled unchunked program; docs/passes.md)."""
        extent = evaluate(cand.extent, self.sizes)
        biggest = max((self.out_bytes[i] for i in cand.loop), default=0)
        options = [(largest, None)]
        if self.compiled:
            return options
        for limit in self.size_classes:
            if biggest:
                c = int(limit * extent // biggest)  # a chunk is a whole number of units
                if 1 <= c < largest:
                    options.append((c, limit))
        return options

    def slowdown(self, extra_seconds: float) -> float:
        """Estimated time ratio chunked / unchunked for ``extra_seconds`` of overhead."""
        return 1.0 + extra_seconds / self.total


def _overlap(node, chunked: Mapping[Value, tuple[int, int]], halos, chunk: int) -> float:
    """How much more than its chunk a loop node computes: its output's rows with the halo
    over the chunk's rows (1 without a halo)."""
    if not halos or not node.outputs or node.outputs[0] not in halos:
        return 1.0
    lo, hi = halos[node.outputs[0]]
    rows = chunked[node.outputs[0]][1] * chunk
    return (rows + lo + hi) / rows


def check_compiler(compiled: str | None) -> None:
    """A clear error for a ``compiled=`` option the cost model does not know."""
    if compiled not in COMPILERS:
        known = ", ".join(repr(c) for c in COMPILERS)
        raise ChunkcError(f"autochunk: compiled={compiled!r} is not a compiler the cost model prices; "
                          f"use one of {known} (None: eager PyTorch, 'inductor': torch.compile's default)")


def predict_seconds(graph: Graph, plan=None, sizes: Mapping[str, int] | None = None,
                    machine: Kernels | None = None, backend: str = "torch", compiled: str | None = None) -> float:
    """Predicted seconds of one call of ``graph`` (``plan.graph`` when a plan is given),
    chunked by ``plan``, at ``sizes`` (default: the plan's): the per-node costs of the
    model the selection uses, the plan's loops priced by :meth:`TimeModel.loop_seconds`
    (nested loops by :func:`nested_seconds`).  The ratio of a plan's prediction to the
    unchunked graph's is its predicted slowdown, the rewrites before the search
    (rematerialized values) included.  ``compiled``: the compiler the program runs under
    (:class:`TimeModel`)."""
    if plan is not None:
        graph, sizes = plan.graph, dict(plan.sizes if sizes is None else sizes)
    return plan_seconds(TimeModel(graph, dict(sizes or {}), machine, backend, compiled=compiled), plan)


def plan_seconds(model: TimeModel, plan=None) -> float:
    """:func:`predict_seconds` with a time model of the plan's graph built already (pricing
    several chunkings of one graph)."""
    from .plan_index import PlanIndex, RegionView

    total = 0.0
    for step in PlanIndex.build(model.graph, plan).steps:
        if not isinstance(step, RegionView):
            total += model.times[model.position[step]]
        elif step.inner:
            total += nested_seconds(model, step)
        else:
            total += _flat_seconds(model, step, step.nodes)
    return total


def _flat_seconds(model: TimeModel, step, nodes) -> float:
    chunked = {v: (c.axis, c.unit) for v, c in step.chunk.items()}
    extent = evaluate(step.region.extent, model.sizes)
    chunk = evaluate(step.region.chunk_size, model.sizes)
    return model.loop_seconds([model.position[n] for n in nodes], chunked, step.outputs, extent, chunk,
                              reused=tuple(step.reuse), accumulators=tuple(step.accumulators),
                              halos={v: c.halo for v, c in step.chunk.items()})


def block_flops(model: TimeModel, node: Node, outer: Mapping[Value, object], inner: Mapping[Value, object],
                start: int, rows: int, stop: int) -> float:
    """FLOPs of ``node`` on the outer chunk's units [start, start + rows) of the values ``outer``
    slices and the units [0, stop) of those ``inner`` slices ({value: ChunkedValue}), as its op
    record counts them on those slices, a positional output axis moving its attributes
    (``slice_attrs``): the record says what the call works (a causal attention: the keys up to
    the chunk's last query row, attention.causal_pairs), not the whole call's share."""
    def sliced(v: Value, ranges) -> TensorType:
        shape = list(v.type.shape)
        for chunks, units in ranges:
            c = chunks.get(v)
            if c is not None:
                shape[c.axis] = units * c.unit
        return TensorType(v.type.dtype, tuple(shape))

    ranges = ((outer, rows), (inner, stop))
    ins = [sliced(v, ranges) for v in node.inputs]
    outs = [sliced(v, ranges[:1]) for v in node.outputs]
    attrs = dict(node.attrs)
    c = outer.get(node.outputs[0]) if node.outputs else None
    if c is not None and node.dims()[0][c.axis].positional and node.op.slice_attrs is not None:
        attrs = node.op.slice_attrs(attrs, [v.type for v in node.inputs], c.axis, start * c.unit, rows * c.unit)
    return float(evaluate(node.op.flops(ins, attrs, outs), model.sizes))


def nested_seconds(model: TimeModel, step) -> float:
    """Seconds of a region with inner loops (ChunkRegion.inner, chunkc.passes.nest): its own
    nodes as a flat loop; each inner loop once per outer iteration, over the units up to the
    outer chunk's stop where it stops there (``stop_at``).  An inner iteration runs its chain
    (keys and values recomputed from held values: the same work whatever the outer chunk) at
    the inner chunk's share, and its accumulating node on the outer chunk's rows of its output
    only (its share: inner share x outer share, the scores of a query chunk against a key
    chunk), merged into the outer chunk's accumulator after the first; its FLOPs over an outer
    chunk's runs are what its record counts on those slices (:func:`block_flops`: the causal
    pairs of the chunk's rows against the keys before its stop, fewer than the rectangle)."""
    inner_nodes = {n for q in step.inner for n in q.nodes}
    total = _flat_seconds(model, step, [n for n in step.nodes if n not in inner_nodes])
    extent = evaluate(step.region.extent, model.sizes)
    chunk = max(1, min(evaluate(step.region.chunk_size, model.sizes), extent))
    outer = [(s, min(chunk, extent - s)) for s in range(0, extent, chunk)]
    for q in step.inner:
        keys = evaluate(q.region.extent, model.sizes)
        size = max(1, min(evaluate(q.region.chunk_size, model.sizes), keys))
        chunked = {v: (c.axis, c.unit) for v, c in q.chunk.items()}
        loop = [model.position[n] for n in q.nodes]
        ends = [model.position[v.producer] for v in q.accumulators]
        iterations = -(-keys // size)
        per_chain = model.loop_seconds([i for i in loop if i not in ends], chunked, (), keys, size)
        for start, rows in outer:
            stop = min(keys, start + rows) if q.region.stop_at is not None else keys
            runs = -(-stop // size)
            t = per_chain * runs / iterations
            for i, v in zip(ends, q.accumulators):
                node = model.graph.nodes[i]
                share = rows / extent * size / keys
                whole = model.flops[i]
                flops_share = None
                if whole:
                    flops_share = round(block_flops(model, node, step.chunk, q.chunk, start, rows, stop)
                                        / (runs * whole), 6)
                t += runs * model._call_seconds(i, tuple(True for _ in node.inputs), share, None,
                                                flops_share=flops_share)
                t += (runs - 1) * model._priced("merge", v, model.nbytes[v] * rows / extent)
            total += t
    return total


__all__ = ["COMPILERS", "COMPILED_BODY_S", "check_compiler", "Machine", "KernelTable", "Kernels", "Work", "TimeModel", "predict_seconds", "plan_seconds", "nested_seconds",
           "default_kernels",
           "find_table", "table_path", "table_key", "allocator_tag", "ALLOCATOR_ENV", "cache_dir", "machine_name",
           "VIEW", "POINTWISE", "CONTRACTION"]
