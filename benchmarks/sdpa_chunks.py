"""The plans with chunked fused attention, quickly: for GPT-2 (SDPA) and ViT at 30% (the
fused-attention section) and GPT-2 (SDPA), BERT and T5 at 20% (library-defaults), the chosen
chunks, the predicted slowdown and the measured time ratio against the unchunked program
(interleaved rounds, one thread, CPU time of this thread).  A shortcut for checking the attention rows curve
(``KernelTable.attention``) without rerunning those sections.

    python -m benchmarks.sdpa_chunks [--rounds 7] [--only gpt2_30,vit_30] [--heap] [--plan-only]
    python -m benchmarks.sdpa_chunks --compare OLD_TABLE.json   # plans under both tables, timed together

``--heap``: rerun itself with large blocks kept on glibc's heap (as the library-defaults section's
second time column); the plans then use that allocator's kernel table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from . import common as C
from .memory_speed import BIG_BLOCKS_ON_HEAP


def cases():
    from chunkc import zoo
    gpt = dict(n_layer=2, n_embd=256, n_head=4, n_positions=16384)
    return {
        "gpt2_30": (lambda: zoo.gpt2(attn="sdpa", **gpt), 4096, 0.3),
        "vit_30": (lambda: zoo.vit(attn="sdpa", n_layer=2, hidden=256, heads=8, patch=16, max_side=2048), 1024, 0.3),
        "gpt2_20": (lambda: zoo.gpt2(attn="sdpa", **gpt), 4096, 0.2),
        "bert_20": (lambda: zoo.bert(), 4096, 0.2),
        "t5_20": (lambda: zoo.t5_encoder(), 2048, 0.2),
    }


def regions(plan, sizes) -> str:
    """Each region's chunk/extent, marked with the attention kernels it runs (OpDef.rows_kernel)."""
    from chunkc.ir.sizes import evaluate
    nodes = {n.name: n for n in plan.graph.nodes}
    found = []
    for r in plan.regions:
        kinds = sorted({n.op.name for n in (nodes[name] for name in r.nodes) if n.op.rows_kernel is not None})
        found.append(f"{evaluate(r.chunk_size, sizes)}/{evaluate(r.extent, sizes)}"
                     + (f" [{', '.join(kinds)}]" if kinds else ""))
    return "; ".join(found) or "no regions"


def _setup(key: str):
    """Case ``key`` imported: (graph, inputs, sizes, unchunked program, its measured peak, budget fraction)."""
    factory, size, fraction = cases()[key]
    case = factory()
    graph = C.import_case(case)
    args = case.make_inputs(size)
    sizes = graph.bind_sizes(args)
    plain = C.compile_torch(graph)
    return graph, args, sizes, plain, C.measure(plain, args), fraction


def compare(key: str, rounds: int, old_table: str) -> str:
    """The plans under the kernel table at ``old_table`` (before) and this process's (after), timed
    against the unchunked program and each other in the same rounds."""
    import chunkc
    from chunkc.passes.cost import KernelTable, default_kernels
    graph, args, sizes, plain, peak, fraction = _setup(key)
    budget = int(fraction * peak)
    plans = {name: chunkc.autochunk(graph, budget, sizes=dict(sizes), backend="torch", progress=False, machine=table)
             for name, table in (("before", KernelTable.load(old_table)), ("after", default_kernels()))}
    line = "; ".join(f"{name} {regions(p, sizes)} predicted x{p.estimated_slowdown:.3f}" for name, p in plans.items())
    if regions(plans["before"], sizes) == regions(plans["after"], sizes):
        return f"{key}: same chunks: {line}"
    fns = {"unchunked": plain, **{name: C.compile_torch(graph, p) for name, p in plans.items()}}
    times = C.round_robin_times(fns, args, rounds, clock=time.thread_time)
    ratios = {name: C.ratio(times, "unchunked", name).cell() for name in plans}
    return (f"{key}: {line}; measured before {ratios['before']}, after {ratios['after']}, after/before "
            f"{C.ratio(times, 'before', 'after').cell()}")


def run_one(key: str, rounds: int, plan_only: bool = False) -> str:
    graph, args, sizes, plain, peak, fraction = _setup(key)
    t0 = time.perf_counter()
    plan = C.plan_under(graph, int(fraction * peak), sizes)
    planned = time.perf_counter() - t0
    if plan_only:
        return f"{key}: {regions(plan, sizes)}; predicted x{plan.estimated_slowdown:.3f}; planned in {planned:.1f} s"
    fn = C.compile_torch(graph, plan)
    diff = C.max_abs_diff(fn(*args), plain(*args))
    measured = C.measure(fn, args)
    # this thread's CPU time: on a loaded machine wall time adds whatever the scheduler gives others
    r = C.round_robin({"unchunked": plain, "chunked": fn}, args, rounds, clock=time.thread_time)["chunked"]
    return (f"{key}: {regions(plan, sizes)}; predicted x{plan.estimated_slowdown:.3f}, measured "
            f"{r.cell()}; peak {measured / peak:.1%} of unchunked; diff {diff:.1e}; planned in {planned:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="")
    parser.add_argument("--heap", action="store_true")
    parser.add_argument("--plan-only", action="store_true", help="chunks and predictions, no timing")
    parser.add_argument("--compare", default="", help="a kernel table file: plan under it too and time both")
    args = parser.parse_args()
    keys = [k for k in cases() if not args.only or k in args.only.split(",")]
    if args.heap:
        cmd = [sys.executable, "-m", "benchmarks.sdpa_chunks"] + [a for a in sys.argv[1:] if a != "--heap"]
        sys.exit(subprocess.run(cmd, env={**os.environ, **BIG_BLOCKS_ON_HEAP}).returncode)
    C.set_threads(1)
    for key in keys:
        print(compare(key, args.rounds, args.compare) if args.compare else run_one(key, args.rounds, args.plan_only),
              flush=True)


if __name__ == "__main__":
    main()
