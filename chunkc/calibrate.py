"""Measure this machine's kernel table for the cost model (PyTorch backend, CPU).

    python -m chunkc.calibrate               # at torch's thread count; about 20 s
    python -m chunkc.calibrate --upgrade     # measure only what a cached table lacks (an older format, or parts added since)
    python -m chunkc.calibrate --threads 1   # the benchmarks time with one thread
    python -m chunkc.calibrate --show        # print the cached table, measure nothing

The table (:class:`chunkc.passes.cost.KernelTable`) is written to the user's cache
directory (:func:`chunkc.passes.cost.table_path`: keyed by CPU, torch version and
threads) and used by ``chunkc.autochunk`` from then on; without one, the cost
model falls back to built-in constants.  What is measured, each from
several timed calls after a warm-up, in this process (the lower quartile of
the samples; see :func:`_seconds`):

* ``call_s``: ``c = a + b`` on one-element tensors (a generated statement, Python
  and the dispatcher, a tiny allocation); ``view_s``: a slice of a small tensor;
  ``iteration_s``: a chunk loop's own statements;
* ``stream``: ``torch.add(a, b, out=c)`` over float32 tensors from 4 KiB to
  256 MiB, seconds per byte moved (12 bytes per element) at each size, over the
  same call on one element;
* ``alloc``: ``a + b`` (a fresh output, freed after the call) minus the same into
  an existing ``out``: nothing while the allocator reuses its heap, page faults
  once blocks are served by ``mmap`` (from 32 MiB on glibc);
* ``pointwise_flops_per_s``: ``torch.exp`` in cache, at 4 FLOPs an element (the
  FLOPs its op record counts);
* ``gemm``: ``torch.mm(A, B, out=C)`` with A of r x 256 rows and B 256 x 256, FLOPs
  per second for r from 1 to 4096;
* ``gemm_columns``: ``torch.mm(A, B, out=C)`` with A 256 x 256 and B 256 x c, FLOPs per second
  for c from 1 to 256 output columns (:data:`GEMM_COLUMNS`): below 16 columns a product runs a
  narrow kernel, 7 to 25 times slower per FLOP (an attention's weighted sum over heads of 8);
* ``product_out``: ``torch.mm(A, B, out=C)`` with an inner dimension of 8 (A r x 8, B 8 x 1024)
  and outputs from 64 KiB to 64 MiB: seconds per output byte beyond the call and the arithmetic
  at the ``gemm`` rate.  A product writes its output tile by tile; with few FLOPs per element
  (attention scores over heads of 8 to 64) the stores cost more than the arithmetic, and several
  times a streaming kernel's per byte once the output leaves the caches;
  ``product_out_unaligned``: the same with B 8 x 1025, rows that are not whole cache lines (an
  attention over 2305 tokens), whose stores cost about twice as much again out of cache;
* ``operand_warm_s``, ``operand_cold_s``: a product repacks its operands at every call, and on
  few rows (a chunk) that costs as much as a fifth of its arithmetic when the operands come from
  memory: three products on 64 rows (a linear layer's, an attention's scores and its weighted sum,
  :data:`OPERAND_PRODUCTS`), called again at once (warm) and after writing
  :data:`EVICT_BYTES` (cold), seconds per operand byte beyond the ``gemm`` and ``product_out``
  curves (the median of the three);
* ``edge``: the ``stream`` kernel again, every quarter octave from 1 to 64 MiB
  (:data:`EDGE_BYTES`), where the last cache level ends: how far its cost per byte has moved from
  its in-cache end to its in-memory end (on a log scale) at a loop iteration's bytes is the share
  of the iteration's product operands priced cold (``KernelTable.cold_share``);
* ``pointwise_rates``: one exponential's rate does not fit every elementwise kernel (softmax
  vectorizes its exponentials and runs 1.6 times as many of the FLOPs its record counts per
  second; tanh a third as many): every op record counting at least
  :data:`HEAVY_FLOPS_PER_ELEMENT` FLOPs an element that runs on one float32 vector is timed
  through its own generated PyTorch code on :data:`POINTWISE_ELEMENTS` elements in cache;
* ``attention``: ``F.scaled_dot_product_attention`` over :data:`ATTENTION_KEYS` keys, heads of
  :data:`ATTENTION_HEAD`, with no mask, a bool mask and a float mask (``OpDef.rows_kernel``), seconds
  per query row and key of one head for query rows from 32 to 2048 (:data:`ATTENTION_ROWS`), and the
  causal square in chunks of those rows against one causal call (per key attended): ATen's
  CPU flash kernel blocks its queries by how many a call has, and a chunk of 128 rows costs a fifth
  more per row than a call of 1024 (the cost model prices a chunk of a fused attention's queries by
  the curve's ratio at its rows to the whole op's rows).  ``--upgrade`` adds it to a table of format 5.
* ``elementwise_rates``: the same for the light elementwise records (under
  :data:`HEAVY_FLOPS_PER_ELEMENT` FLOPs an element, one to three float32 or bool vectors): a
  comparison or a ``where`` takes two and a half to three times an addition's time an element;
* ``row_costs``: a row-wise kernel (softmax, log_softmax, layer_norm, rms_norm) pays per row as well
  as per element: each on :data:`ROW_ELEMENTS` elements in rows of each of :data:`ROW_WIDTHS`,
  seconds per element by row width (a layer norm over 16 channels: five times as long per element
  as over 1024); row-wise nodes of these records are priced by it instead of their record's rate.

Each curve is then made monotone (:func:`monotone`): per byte, costs grow with size;
per FLOP, a product with more rows is never slower.

Measure on a quiet machine: the table is only as good as its timings.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from .passes.cost import TABLE_FORMAT, KernelTable, find_table, machine_name, table_key, table_path

# 4 KiB .. 256 MiB of output, with points just below glibc's largest mmap threshold (32 MiB),
# where fresh outputs turn from reused heap into page faults
STREAM_BYTES = tuple(sorted({4096 << k for k in range(17)} | {24 << 20, 31 << 20}))
# every quarter octave from 1 to 64 MiB: where the last cache level ends (KernelTable.edge); kept apart
# from the stream curve, whose octave steps give the selection its size classes
EDGE_BYTES = tuple(int(round((1 << 20) * 2 ** (q / 4) / 4096)) * 4096 for q in range(25))
QUICK_EDGE_BYTES = EDGE_BYTES[::4]
QUICK_STREAM_BYTES = tuple(4096 << k for k in (0, 4, 8, 12, 14))  # 4 KiB .. 64 MiB: cache and mmap steps
GEMM_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
QUICK_GEMM_ROWS = (1, 16, 256)
GEMM_INNER = 256  # A is rows x 256, B 256 x 256
# output columns of the gemm_columns curve (A 256 x 256, B 256 x columns): below 16 columns the products
# run a narrow kernel (a tenth of the wide rate at 2 to 8 columns), one column a matrix-vector product
GEMM_COLUMNS = (1, 2, 4, 8, 12, 16, 24, 32, 64, 256)
QUICK_GEMM_COLUMNS = (8, 256)
PRODUCT_OUT_INNER = 8  # the product_out curves: A rows x 8, B 8 x columns
PRODUCT_OUT_COLUMNS, PRODUCT_OUT_UNALIGNED_COLUMNS = 1024, 1025  # rows of 4096 bytes, of 4100
PRODUCT_OUT_ROWS = tuple(16 << k for k in range(11))  # outputs of 64 KiB .. 64 MiB
QUICK_PRODUCT_OUT_ROWS = (16, 256, 8192)  # 64 KiB, 1 MiB, 32 MiB
# products timed for the price of their operands (operand_warm_s, operand_cold_s): a linear layer on
# 64 rows, an attention's scores (an inner dimension of 64) and its weighted sum (64 output columns)
OPERAND_PRODUCTS = (((64, 256), (256, 1024)), ((4, 64, 64), (4, 64, 2048)), ((4, 64, 2048), (4, 2048, 64)))
EVICT_BYTES = 256 << 20  # written between the timed calls: larger than the last cache level of a server CPU
POINTWISE_ELEMENTS = 64 * 1024  # 256 KiB of float32: in cache
HEAVY_FLOPS_PER_ELEMENT = 4  # records counting this many FLOPs an element or more get a rate of their own
# the attention curves (KernelTable.attention): queries from 32 rows (the flash kernel's smallest block) up,
# over 4096 keys in heads of 64 (GPT-2's), 4 heads; its blocks change size at 192 and 768 rows
ATTENTION_ROWS = (32, 64, 128, 192, 256, 384, 512, 768, 1024, 2048)
QUICK_ATTENTION_ROWS = (32, 256, 1024)
ATTENTION_KEYS, ATTENTION_HEAD, ATTENTION_HEADS = 4096, 64, 4
QUICK_ATTENTION_KEYS = 1024
ATTENTION_KERNELS = ("none", "bool", "float", "causal")  # OpDef.rows_kernel's names: by the mask the kernel gets
# row-wise kernels timed by the width of their rows (KernelTable.row_costs): ROW_ELEMENTS float32 elements (in
# cache) in rows of each of these many elements
ROW_WIDTHS = (8, 16, 32, 64, 128, 256, 1024, 4096)
QUICK_ROW_WIDTHS = (16, 1024)
ROW_ELEMENTS = 1 << 18


# This thread's CPU time (user and system, page faults included): on a machine shared with other
# work, wall time adds whatever time the scheduler gives the core to others, and a call of
# milliseconds is nearly always interrupted, so the large sizes' costs came out inflated by the
# load (2-4x on two busy cores) while the small ones' did not.
CLOCK = time.thread_time


def _seconds(runs: Sequence[Callable[[], None]], calls: int, samples: int) -> list[float]:
    """Seconds per call of each of ``runs`` (CPU time, see :data:`CLOCK`): ``samples`` samples of
    ``calls`` calls each, the runs interleaved sample by sample after one untimed round, the
    garbage collector paused.
    Each is the lower quartile of its samples: a loaded machine only adds time, and the first
    calls of a size (before the allocator has settled) are slower than the rest."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        times: list[list[float]] = [[] for _ in runs]
        for k in range(samples + 1):
            for run, found in zip(runs, times):
                t0 = CLOCK()
                for _ in range(calls):
                    run()
                if k:
                    found.append((CLOCK() - t0) / calls)
        return [statistics.quantiles(found, n=4)[0] if len(found) > 1 else found[0] for found in times]
    finally:
        if enabled:
            gc.enable()


def _seconds_per_call(run: Callable[[], None], calls: int, samples: int) -> float:
    """Seconds per call of ``run`` (see :func:`_seconds`)."""
    return _seconds([run], calls, samples)[0]


def _calls_for(seconds_per_call: float, target: float = 2e-3) -> int:
    """Calls per sample so that a sample lasts about ``target`` seconds."""
    return max(1, min(2000, int(target / max(seconds_per_call, 1e-7))))


def _product_rate(a, b, guess: float, call_s: float, samples: int) -> float:
    """FLOPs per second of ``torch.mm(a, b, out=...)`` beyond a call's cost (``guess``: a rate to
    size the samples by)."""
    import torch

    out = torch.empty(a.shape[0], b.shape[1])
    flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]

    def mm():
        torch.mm(a, b, out=out)
    t = _seconds_per_call(mm, _calls_for(flops / guess), samples)
    return flops / max(t - call_s, 1e-3 * t)


def measure_table(threads: int | None = None, quick: bool = False, samples: int = 7,
                  progress: Callable[[str], None] | None = None) -> KernelTable:
    """Measure a kernel table in this process (``quick``: a few small sizes, for tests)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    say = progress or (lambda _: None)
    samples = 3 if quick else samples

    with torch.inference_mode():
        one, other = torch.ones(1), torch.ones(1)

        def tiny_add():
            c = one + other
            del c
        call_s = _seconds_per_call(tiny_add, 500, samples)
        small = torch.ones(4, 8)

        def slice_view():
            v = small[:, 2:6]
            del v
        view_s = _seconds_per_call(slice_view, 500, samples)
        iteration_s = _iteration_seconds(samples)
        say(f"call {call_s * 1e6:.2f} us, view {view_s * 1e6:.2f} us, loop iteration {iteration_s * 1e6:.2f} us")

        unit, unit_out = torch.ones(1), torch.empty(1)

        def tiny_into():
            torch.add(unit, unit, out=unit_out)
        into_s = _seconds_per_call(tiny_into, 500, samples)  # the call of the out= form alone
        stream, alloc = [], []
        for nbytes in (QUICK_STREAM_BYTES if quick else STREAM_BYTES):
            n = nbytes // 4
            a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)

            def into():
                torch.add(a, b, out=c)

            def fresh():
                d = a + b
                del d
            guess = max(12 * nbytes / 4e9, call_s)
            calls = _calls_for(guess)
            reps = samples if nbytes < (64 << 20) else max(3, samples // 2)
            t_into, t_fresh = _seconds([into, fresh], calls, reps)
            per_byte = max(t_into - into_s, 1e-3 * t_into) / (3 * nbytes)
            stream.append((float(nbytes), per_byte))
            alloc.append((float(nbytes), max(0.0, t_fresh - t_into)))
            say(f"stream {nbytes >> 10} KiB: {1 / per_byte / 1e9:.1f} GB/s; fresh output +{(t_fresh - t_into) * 1e6:.0f} us")
            del a, b, c

        n = 64 * 1024
        x, y = torch.rand(n), torch.empty(n)

        def exp():
            torch.exp(x, out=y)
        t_exp = _seconds_per_call(exp, _calls_for(n * 1e-9), samples)
        pointwise = 4 * n / max(t_exp - call_s, 1e-9)
        say(f"pointwise (exp) {pointwise / 1e9:.2f} GFLOP/s")

        gemm = []
        w = torch.rand(GEMM_INNER, GEMM_INNER)
        for rows in (QUICK_GEMM_ROWS if quick else GEMM_ROWS):
            gemm.append((float(rows), _product_rate(torch.rand(rows, GEMM_INNER), w, 20e9, call_s, samples)))
            say(f"gemm {rows} rows: {gemm[-1][1] / 1e9:.1f} GFLOP/s")
        gemm = monotone(gemm)
        gemm_columns = _gemm_columns(QUICK_GEMM_COLUMNS if quick else GEMM_COLUMNS, call_s, samples, say)
        ladder = QUICK_PRODUCT_OUT_ROWS if quick else PRODUCT_OUT_ROWS
        product_out = _product_out(gemm, call_s, PRODUCT_OUT_COLUMNS, ladder, samples, say)
        product_out_unaligned = _product_out(gemm, call_s, PRODUCT_OUT_UNALIGNED_COLUMNS, ladder, samples, say)
        stream = monotone(stream)
        operand_warm, operand_cold = _operand_seconds(gemm, monotone(product_out), call_s, samples, quick, say)
        rates = _pointwise_rates(call_s, samples, say)
        attention = measure_attention(quick, samples, say)
        row_costs = _row_costs(QUICK_ROW_WIDTHS if quick else ROW_WIDTHS, samples, say)
        light = _elementwise_rates(call_s, samples, say)

    return KernelTable(
        key=table_key(threads), call_s=call_s, view_s=view_s, iteration_s=iteration_s,
        stream=stream, alloc=monotone(alloc), pointwise_flops_per_s=pointwise, gemm=gemm, gemm_columns=gemm_columns,
        product_out=monotone(product_out), product_out_unaligned=monotone(product_out_unaligned),
        operand_warm_s=operand_warm, operand_cold_s=operand_cold, pointwise_rates=rates, attention=attention,
        row_costs=row_costs, elementwise_rates=light,
        edge=_edge_stream(QUICK_EDGE_BYTES if quick else EDGE_BYTES, into_s, samples, say),
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        notes=f"{machine_name()}; torch {torch.__version__}, {threads} thread(s)" + ("; quick" if quick else ""))


def _gemm_columns(ladder: Sequence[int], call_s: float, samples: int,
                  say: Callable[[str], None]) -> tuple[tuple[float, float], ...]:
    """(output columns, FLOPs per second) of ``torch.mm(A, B, out=C)``, A 256 x 256 and B 256 x
    columns, for each of ``ladder``: as measured, not made monotone (one column is a matrix-vector
    product, faster than two)."""
    import torch

    a = torch.rand(GEMM_INNER, GEMM_INNER)
    curve = [(float(columns), _product_rate(a, torch.rand(GEMM_INNER, columns), 10e9, call_s, samples))
             for columns in ladder]
    say("gemm GFLOP/s by output columns: " + ", ".join(f"{int(c)} {r / 1e9:.1f}" for c, r in curve))
    return tuple(curve)


def _product_out(gemm: Sequence[tuple[float, float]], call_s: float, columns: int, ladder: Sequence[int],
                 samples: int, say: Callable[[str], None]) -> list[tuple[float, float]]:
    """(output bytes, seconds per output byte) of matrix products with a narrow inner dimension
    and ``columns`` output columns, beyond the call and the arithmetic at the measured ``gemm``
    rate for their rows (see the module's docstring)."""
    import torch

    from .passes.cost import _interpolate
    curve = []
    w = torch.rand(PRODUCT_OUT_INNER, columns)
    for rows in ladder:
        a, out = torch.rand(rows, PRODUCT_OUT_INNER), torch.empty(rows, columns)
        flops = 2.0 * rows * PRODUCT_OUT_INNER * columns
        nbytes = out.numel() * out.element_size()

        def mm():
            torch.mm(a, w, out=out)
        reps = samples if nbytes < (16 << 20) else max(3, samples // 2)
        t = _seconds_per_call(mm, _calls_for(nbytes * 1e-10), reps)
        stores = t - call_s - flops / _interpolate(gemm, float(rows))
        curve.append((float(nbytes), max(stores, 0.0) / nbytes))
        say(f"product output {nbytes >> 10} KiB, rows of {columns} columns: {curve[-1][1] * 1e12:.0f} ps per byte "
            "beyond the arithmetic")
        del a, out
    return curve


def _cold_seconds(run: Callable[[], None], evict: Callable[[], None], samples: int) -> float:
    """Seconds of one call of ``run`` right after ``evict`` (untimed) has pushed its operands out
    of the caches: the lower quartile of ``samples`` calls (CPU time, see :data:`CLOCK`)."""
    found = []
    for k in range(samples + 1):
        evict()
        t0 = CLOCK()
        run()
        if k:
            found.append(CLOCK() - t0)
    return statistics.quantiles(found, n=4)[0] if len(found) > 1 else found[0]


def _operand_seconds(gemm: Sequence[tuple[float, float]], product_out: Sequence[tuple[float, float]],
                     call_s: float, samples: int, quick: bool, say: Callable[[str], None]) -> tuple[float, float]:
    """Seconds per operand byte that a matrix product spends beyond the ``gemm`` curve (a small
    operand in cache) and its stores (``product_out``), (called again at once: warm, after an
    eviction: cold): the medians over :data:`OPERAND_PRODUCTS` (a linear layer's, an attention's two
    products, on 64 rows) of (time - the curves' time) / operand bytes."""
    import torch

    from .passes.cost import _interpolate
    evict_buffer = torch.empty(EVICT_BYTES // 4)

    def evict():
        evict_buffer.add_(1.0)
    warm_found, found = [], []
    for a_shape, b_shape in (OPERAND_PRODUCTS[:1] if quick else OPERAND_PRODUCTS):
        a, b = torch.rand(*a_shape), torch.rand(*b_shape)
        out = torch.matmul(a, b)
        flops = 2.0 * a.numel() * b_shape[-1]
        written = float(out.numel() * out.element_size())
        warm = call_s + flops / _interpolate(gemm, float(a_shape[-2])) + written * _interpolate(product_out, written)
        def product():
            torch.matmul(a, b, out=out)
        t_warm = _seconds_per_call(product, _calls_for(warm), samples)
        t = _cold_seconds(product, evict, samples)
        operands = float((a.numel() + b.numel()) * a.element_size())
        warm_found.append(max(0.0, t_warm - warm) / operands)
        found.append(max(0.0, t - warm) / operands)
        say(f"product {tuple(a_shape)} @ {tuple(b_shape)}: {warm * 1e3:.3f} ms by the curves, {t_warm * 1e3:.3f} ms "
            f"again at once, {t * 1e3:.3f} ms from memory: {warm_found[-1] * 1e12:.0f} and {found[-1] * 1e12:.0f} "
            "ps per operand byte")
    del evict_buffer
    return statistics.median(warm_found), statistics.median(found)


def _edge_stream(ladder: Sequence[int], into_s: float, samples: int,
                 say: Callable[[str], None]) -> tuple[tuple[float, float], ...]:
    """(bytes a tensor, seconds per byte moved) of ``torch.add(a, b, out=c)`` on the ``ladder``
    of sizes, made monotone: the stream curve, finer, where the last cache level ends."""
    import torch

    curve = []
    for nbytes in ladder:
        n = nbytes // 4
        a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)

        def into():
            torch.add(a, b, out=c)
        t = _seconds_per_call(into, _calls_for(12 * nbytes / 4e9), max(3, samples // 2))
        curve.append((float(nbytes), max(t - into_s, 1e-3 * t) / (3 * nbytes)))
        del a, b, c
    curve = monotone(curve)
    say("stream GB/s at the cache's edge: " + ", ".join(f"{s / 2**20:.2f}M {1 / c / 1e9:.1f}" for s, c in curve))
    return curve


def _pointwise_rates(call_s: float, samples: int,
                     say: Callable[[str], None]) -> tuple[tuple[str, float], ...]:
    """(op record, FLOPs per second) of every record whose kernel does at least
    :data:`HEAVY_FLOPS_PER_ELEMENT` FLOPs an element by its record's count (exponentials, tanh,
    softmax...) and runs on one float32 vector with default attributes: each timed in cache on
    :data:`POINTWISE_ELEMENTS` elements through the generated PyTorch code.  One exponential's rate
    does not fit them all: a softmax kernel vectorizes its exponentials, a tanh costs three of them."""
    import torch  # noqa: F401

    found = []
    for name, program in _heavy_programs():
        x = 0.5 + 0.4 * torch.rand(POINTWISE_ELEMENTS)  # in every record's domain but acosh's
        try:
            program(x)
        except Exception:  # a record that needs more than one float vector: it keeps the generic rate
            continue
        t = _seconds_per_call(lambda: program(x), _calls_for(POINTWISE_ELEMENTS * 2e-9), samples)
        flops = program.flops
        found.append((name, flops / max(t - call_s, 1e-3 * t)))
    say("pointwise GFLOP/s by record: " + ", ".join(f"{n} {r / 1e9:.1f}" for n, r in found))
    return tuple(found)


def measure_attention(quick: bool = False, samples: int = 7, say: Callable[[str], None] = lambda _: None
                      ) -> tuple[tuple[str, tuple[tuple[float, float], ...]], ...]:
    """(kernel, ((query rows, seconds per query row and key of one head), ...)) of
    ``F.scaled_dot_product_attention`` for each of :data:`ATTENTION_KERNELS` (no mask, a bool mask
    with a tenth of the keys masked, a float mask; see the module's docstring), made monotone: per
    row, a call of more rows is never slower.  ``causal``: the causal square of as many queries as
    keys, in chunks of the rows as the generated code runs them (``rt.causal_attention``: an unmasked
    call over the keys every row sees and the causal square after them), per query row and key
    attended, with the whole square in one causal call at its last point (rows = keys): not made
    monotone, a whole causal call computes the key blocks across the diagonal that chunks skip."""
    import torch
    import torch.nn.functional as F

    keys = QUICK_ATTENTION_KEYS if quick else ATTENTION_KEYS
    shape = (1, ATTENTION_HEADS)
    k, v = torch.rand(*shape, keys, ATTENTION_HEAD), torch.rand(*shape, keys, ATTENTION_HEAD)
    found = []
    with torch.inference_mode():
        for kernel in ATTENTION_KERNELS:
            if kernel == "causal":
                found.append((kernel, _causal_curve(k, v, quick, samples)))
                say("attention (causal) ns per query row and key attended by rows: "
                    + ", ".join(f"{int(r)} {c * 1e9:.2f}" for r, c in found[-1][1]))
                continue
            curve = []
            for rows in (QUICK_ATTENTION_ROWS if quick else ATTENTION_ROWS):
                q = torch.rand(*shape, rows, ATTENTION_HEAD)
                mask = {"none": None, "bool": torch.rand(rows, keys) > 0.1, "float": torch.rand(rows, keys)}[kernel]

                def call():
                    F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                guess = 4e-9 * rows * keys * ATTENTION_HEADS
                t = _seconds_per_call(call, _calls_for(guess, 4e-3), samples if guess < 0.02 else max(3, samples // 2))
                curve.append((float(rows), t / (rows * keys * ATTENTION_HEADS)))
            # per row non-increasing in the rows: pool the violators of the reversed curve
            curve = tuple(reversed(monotone(list(reversed(curve)))))
            found.append((kernel, curve))
            say(f"attention ({kernel} mask) ns per query row and key by rows: "
                + ", ".join(f"{int(r)} {c * 1e9:.2f}" for r, c in curve))
    return tuple(found)


def _causal_curve(k, v, quick: bool, samples: int) -> tuple[tuple[float, float], ...]:
    """See :func:`measure_attention`: the causal square over ``k``'s keys in chunks of each rows."""
    import torch
    import torch.nn.functional as F

    from .backends.torch_runtime import causal_attention

    heads, keys, head = k.shape[1], k.shape[2], k.shape[3]
    q = torch.rand(1, heads, keys, head)
    pairs = keys * (keys + 1) / 2 * heads
    curve = []
    for rows in [r for r in (QUICK_ATTENTION_ROWS if quick else ATTENTION_ROWS) if r < keys] + [keys]:
        if rows == keys:
            def call():
                F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            def call():
                for start in range(0, keys, rows):
                    causal_attention(q[..., start:start + rows, :], k, v, start)
        t = _seconds_per_call(call, 1, max(3, samples // 2))
        curve.append((float(rows), t / pairs))
    return tuple(curve)


def _elementwise_rates(call_s: float, samples: int,
                       say: Callable[[str], None]) -> tuple[tuple[str, float], ...]:
    """(op record, FLOPs per second) of the light elementwise records (fewer than
    :data:`HEAVY_FLOPS_PER_ELEMENT` FLOPs an element, one to three inputs: float32 vectors, a
    condition as a bool vector) that run with default attributes, each timed in cache on
    :data:`POINTWISE_ELEMENTS` elements through the generated PyTorch code.  An addition streams at
    its bytes' rate, but a comparison (a bool output) takes two and a half times as long an element,
    and a ``where`` three (a causal mask's ``le`` and ``where``: the generic exponential's rate
    priced them at 0.2 ns an element, they take 0.5-0.6).  The condition's first half is true, the
    rest false, as a mask's rows are (a random one would time branch mispredictions)."""
    import torch

    found = []
    n = POINTWISE_ELEMENTS
    floats = [0.5 + 0.4 * torch.rand(n) for _ in range(3)]
    mask = torch.arange(n) < n // 2
    for name, program, kinds in _light_programs():
        args = [mask if k == "bool" else floats[i] for i, k in enumerate(kinds)]
        try:
            program(*args)
        except Exception:
            continue
        t = _seconds_per_call(lambda: program(*args), _calls_for(n * 1e-9), samples)
        found.append((name, program.flops / max(t - call_s, 1e-3 * t)))
    say("light elementwise GFLOP/s by record: " + ", ".join(f"{n} {r / 1e9:.1f}" for n, r in found))
    return tuple(found)


def _light_programs():
    """(record name, compiled one-node program with its ``flops``, input kinds) for
    :func:`_elementwise_rates`: the first arity of float32 vectors (or a bool condition and two
    float32 vectors) each record accepts, when it returns one vector of the same length."""
    import chunkc
    from .ir.registry import all_ops
    from .ir.sizes import evaluate
    from .ops import apply

    n = POINTWISE_ELEMENTS
    for name, op in sorted(all_ops().items()):
        if op.may_alias or op.torch is None:
            continue
        for kinds in (("f32",), ("f32", "f32"), ("bool", "f32", "f32")):
            graph = chunkc.Graph(f"rate_{name}")
            try:
                ins = [graph.add_input(f"x{i}", k, (n,)) for i, k in enumerate(kinds)]
                y = apply(name, *ins, graph=graph)
                if isinstance(y, (tuple, list)) or tuple(y.shape) != (n,):
                    break
                flops = evaluate(y.producer.flops(), {})
                if not n <= flops < HEAVY_FLOPS_PER_ELEMENT * n:
                    break
                graph.set_outputs(y)
                program = chunkc.compile(graph, backend="torch")
            except Exception:  # another arity, required attributes, another dtype
                continue
            program.flops = float(flops)
            yield name, program, kinds
            break


def _row_kernels() -> dict[str, Callable]:
    """The row-wise kernels whose cost per row is measured: op record name -> f(x) on a 2-D
    float32 tensor, computing across its last axis as the generated code calls them."""
    import torch
    import torch.nn.functional as F

    def layer_norm(x):
        w = x.shape[-1]
        return F.layer_norm(x, (w,), torch.ones(w), torch.zeros(w), eps=1e-5)

    def rms_norm(x):
        return F.rms_norm(x, (x.shape[-1],), torch.ones(x.shape[-1]), eps=1e-6)
    return {"softmax": lambda x: F.softmax(x, dim=-1), "log_softmax": lambda x: F.log_softmax(x, dim=-1),
            "layer_norm": layer_norm, "rms_norm": rms_norm}


def _row_costs(widths: Sequence[int], samples: int,
               say: Callable[[str], None]) -> tuple[tuple[str, tuple[tuple[float, float], ...]], ...]:
    """(op record, ((row width, seconds per element), ...)) of each of :func:`_row_kernels`: the kernel
    on :data:`ROW_ELEMENTS` elements in rows of each width.  A row's reduction, its vector tail and
    its loop cost as much on 16 elements as on 1024: a layer norm over an Evoformer's 16 pair
    channels takes five times as long per element as over 1024, a softmax over rows of 8 falls
    back to scalar code (twenty times).  A record's rate (``pointwise_rates``) is measured on one
    long row, which the normalizations run slower per element than rows of a few hundred."""
    import torch

    found = []
    for name, kernel in _row_kernels().items():
        inputs = [torch.rand(ROW_ELEMENTS // w, w) for w in widths]
        try:
            kernel(inputs[0])
        except Exception:  # a torch without this kernel: the record keeps its rate
            continue
        times = _seconds([lambda x=x: kernel(x) for x in inputs], _calls_for(ROW_ELEMENTS * 1e-9), samples)
        found.append((name, tuple((float(w), t / ROW_ELEMENTS) for w, t in zip(widths, times))))
    say("row-wise kernels, ps per element by row width: " + "; ".join(
        f"{n} " + ", ".join(f"{int(w)} {c * 1e12:.0f}" for w, c in curve) for n, curve in found))
    return tuple(found)


def _heavy_programs():
    """(record name, compiled one-node program with its ``flops``) for :func:`_pointwise_rates`."""
    import chunkc
    from .ir.registry import all_ops
    from .ir.sizes import evaluate
    from .ops import apply

    for name, op in sorted(all_ops().items()):
        if op.may_alias or op.torch is None:
            continue
        graph = chunkc.Graph(f"rate_{name}")
        try:
            x = graph.add_input("x", "f32", (POINTWISE_ELEMENTS,))
            y = apply(name, x, graph=graph)
            node = y.producer if not isinstance(y, (tuple, list)) else y[0].producer
            if len(node.inputs) != 1 or len(node.outputs) != 1:
                continue
            flops = evaluate(node.flops(), {})
            if flops < HEAVY_FLOPS_PER_ELEMENT * POINTWISE_ELEMENTS:
                continue
            graph.set_outputs(y)
            program = chunkc.compile(graph, backend="torch")
        except Exception:  # required attributes, another dtype, a second input: not measured
            continue
        program.flops = float(flops)
        yield name, program


def monotone(curve: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """The non-decreasing curve nearest to ``curve`` (least squares on the values: pool adjacent
    violators).  The cost per byte moved only grows with size (caches), so does the cost of a
    fresh output, and a matrix product never gets slower per FLOP with more rows; a single
    noisy timing is averaged into its neighbours instead of bending the curve."""
    blocks: list[list[float]] = []  # [sum, count]
    for _, y in curve:
        blocks.append([y, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    values = [b[0] / b[1] for b in blocks for _ in range(int(b[1]))]
    return tuple((x, y) for (x, _), y in zip(curve, values))


def _iteration_seconds(samples: int) -> float:
    """A chunk loop's own statements per iteration (``stop = min(...)``, a ``del``)."""
    extent, chunk = 1000, 1

    def loop():
        for start in range(0, extent, chunk):
            stop = min(start + chunk, extent)
            del stop
    return _seconds_per_call(loop, 20, samples) / extent


def ensure_table(threads: int, progress: Callable[[str], None] | None = None) -> tuple[KernelTable, bool]:
    """This machine's table at ``threads``: the cached one (what it lacks measured now: see
    :func:`upgrade_table`), or measured now and cached.  (table, whether it was measured now)."""
    table = find_table(threads)
    if table is not None:
        if _lacks(table):
            table = upgrade_table(table, threads, progress)
            table.save(table_path(threads))
        return table, False
    table = measure_table(threads, progress=progress)
    table.save(table_path(threads))
    return table, True


def _lacks(table: KernelTable) -> bool:
    """Whether ``table`` was measured before some of the current format's parts were."""
    return table.format != TABLE_FORMAT or not (table.attention and table.row_costs and table.elementwise_rates)


def describe(table: KernelTable) -> list[str]:
    """The table in a few lines."""
    lines = [table.description, table.notes,
             f"call {table.call_s * 1e6:.2f} us; view {table.view_s * 1e6:.2f} us; "
             f"loop iteration {table.iteration_s * 1e6:.2f} us; "
             f"pointwise {table.pointwise_flops_per_s / 1e9:.2f} GFLOP/s"]
    lines.append("stream GB/s by size: " + ", ".join(f"{_size(s)} {1 / b / 1e9:.1f}" for s, b in table.stream))
    lines.append("fresh output us by size: " + ", ".join(f"{_size(s)} {a * 1e6:.0f}" for s, a in table.alloc))
    lines.append("gemm GFLOP/s by rows: " + ", ".join(f"{int(r)} {f / 1e9:.1f}" for r, f in table.gemm))
    lines.append("gemm GFLOP/s by output columns: "
                 + ", ".join(f"{int(c)} {f / 1e9:.1f}" for c, f in table.gemm_columns))
    for name, curve in (("", table.product_out), (", rows not whole cache lines", table.product_out_unaligned)):
        lines.append(f"product output ps per byte by size{name}: "
                     + ", ".join(f"{_size(s)} {c * 1e12:.0f}" for s, c in curve))
    lines.append(f"product operands ps per byte: {table.operand_warm_s * 1e12:.0f} in cache, "
                 f"{table.operand_cold_s * 1e12:.0f} from memory; heap blocks up to {_size(table.heap_bytes())}")
    lines.append("share of product operands cold by loop iteration bytes: "
                 + ", ".join(f"{_size(s)} {table.cold_share(s):.2f}" for s, _ in table.edge[::4]))
    for kernel, curve in table.attention:
        lines.append(f"attention ({kernel} mask) ns per query row and key by rows: "
                     + ", ".join(f"{int(r)} {c * 1e9:.2f}" for r, c in curve))
    if not table.attention:
        lines.append(f"no attention curves (a table of format {table.format}: python -m chunkc.calibrate --upgrade)")
    if table.pointwise_rates:
        lines.append("pointwise GFLOP/s by op record: "
                     + ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in table.pointwise_rates))
    if table.elementwise_rates:
        lines.append("light elementwise GFLOP/s by op record: "
                     + ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in table.elementwise_rates))
    if table.row_costs:
        lines.append("row-wise kernels, ps per element by row width: " + "; ".join(
            f"{name} " + ", ".join(f"{int(w)} {c * 1e12:.0f}" for w, c in curve) for name, curve in table.row_costs))
    return lines


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**20:g}M" if nbytes >= 2**20 else f"{nbytes / 2**10:g}K"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chunkc.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads to measure with (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here instead of the cache")
    parser.add_argument("--show", action="store_true", help="print the cached table and exit")
    parser.add_argument("--upgrade", action="store_true",
                        help="add the curves an older table lacks (the attention curves), keep the rest")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    if args.show:
        import torch
        threads = args.threads or torch.get_num_threads()
        table = find_table(threads)
        if table is None:
            print(f"no kernel table for this machine at {threads} thread(s) (expected {table_path(threads)}); "
                  "the cost model uses its built-in constants", file=sys.stderr)
            return 1
        print("\n".join(describe(table)))
        return 0
    if args.upgrade:
        return _upgrade(args.threads, args.out)
    table = measure_table(args.threads, progress=lambda line: print(line, file=sys.stderr, flush=True))
    threads = int(table.key.rsplit("-t", 1)[1])
    path = table.save(args.out or table_path(threads))
    print("\n".join(describe(table)))
    print(f"written to {path}")
    return 0


def upgrade_table(table: KernelTable, threads: int, progress: Callable[[str], None] | None = None) -> KernelTable:
    """``table`` (of an older format, or cached before some parts were measured) with what it
    lacks measured now, at ``threads``: the attention curves, the row-wise kernels' costs and
    the light elementwise rates."""
    import torch

    torch.set_num_threads(threads)
    say = progress or (lambda _: None)
    with torch.inference_mode():
        attention = table.attention or measure_attention(say=say)
        row_costs = table.row_costs or _row_costs(ROW_WIDTHS, 7, say)
        light = table.elementwise_rates or _elementwise_rates(table.call_s, 7, say)
    return replace(table, key=table_key(threads), attention=attention, row_costs=row_costs, elementwise_rates=light,
                   format=TABLE_FORMAT, notes=table.notes + f"; completed {_now()}")


def _upgrade(threads: int | None, out: Path | None) -> int:
    import torch
    threads = threads or torch.get_num_threads()
    table = find_table(threads)
    if table is None:
        print(f"no kernel table to upgrade at {threads} thread(s); run python -m chunkc.calibrate", file=sys.stderr)
        return 1
    if not _lacks(table):
        print(f"the table is complete (format {TABLE_FORMAT}) already: {table_path(threads)}")
        return 0
    table = upgrade_table(table, threads, lambda line: print(line, file=sys.stderr, flush=True))
    path = table.save(out or table_path(threads))
    print("\n".join(describe(table)))
    print(f"written to {path}")
    return 0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
