"""The main job: compile a real model under a memory budget and show the result.

    python -m chunkc.demo [--model gpt2] [--length 2048] [--budget 20%] [--out out]

It builds GPT-2 from transformers with random weights (nothing is downloaded),
imports it through torch.export with a dynamic sequence length, plans chunking
under the budget, generates PyTorch code, checks the chunked outputs against
eager PyTorch, measures activation memory of both programs and their speed as
an interleaved ratio, and writes the Graphviz dump, the memory plot and the
generated source.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def _mib(n: int) -> str:
    return f"{n / 2**20:8.1f} MiB"


def interleaved_ratio(fn_a, fn_b, args, repeats: int = 5) -> float:
    """Median of time(a)/time(b) over pairs run A B A B ... (after one warm-up each)."""
    fn_a(*args), fn_b(*args)
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn_a(*args); t1 = time.perf_counter(); fn_b(*args); t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chunkc.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt2", choices=["gpt2", "evoformer"])
    parser.add_argument("--length", type=int, default=2048, help="sequence length (residues for evoformer)")
    parser.add_argument("--budget", default="20%", help="a percentage of the unchunked peak, or bytes")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--out", default="out", help="folder for the dump, the plot and the source")
    args = parser.parse_args(argv)

    from chunkc.errors import ChunkcError
    from chunkc.passes.budget_text import parse_budget
    try:
        budget = parse_budget(args.budget)
        if args.layers < 1:
            raise ChunkcError(f"--layers {args.layers}: give 1 or more")
        return run(args, budget)
    except (ChunkcError, ValueError) as exc:  # bad options and what the model refuses: one line
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1


def plan_within_reach(chunkc, graph, budget, sizes):
    """``chunkc.autochunk``; when the budget is out of reach, say what can be reached and plan for that."""
    try:
        return chunkc.autochunk(graph, budget, sizes=sizes)
    except chunkc.InfeasibleBudgetError as exc:
        unchunked = chunkc.estimate_memory(graph, sizes=sizes).peak_bytes
        reach = exc.lowest_peak_bytes
        print(f"the budget ({_mib(int(budget * unchunked) if isinstance(budget, float) else budget).strip()}) is out "
              f"of reach at these sizes: the lowest peak chunking reaches is about {_mib(reach).strip()} "
              f"({reach / unchunked:.0%} of the unchunked {_mib(unchunked).strip()}); planning for that instead\n")
        for slack in (1.0, 1.05, 1.2):  # the reachable peak is itself an estimate of the search's
            try:
                return chunkc.autochunk(graph, int(reach * slack), sizes=sizes)
            except chunkc.InfeasibleBudgetError:
                continue
        raise


def run(args, budget) -> int:
    import numpy as np
    import torch

    import chunkc
    from chunkc.zoo import evoformer, gpt2
    from chunkc.backends import emit_source
    from chunkc.viz.dot import render_dot
    from chunkc.viz.plot import plot_memory

    torch.manual_seed(0)
    torch.set_num_threads(1)  # timings on a shared 2-core machine are only stable on one thread
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.model == "gpt2":
        case = gpt2(n_layer=args.layers, n_embd=256, n_head=8, attn="eager")
    else:
        case = evoformer()
    case.check_size(args.length)  # a ValueError naming the sizes the model takes
    print(f"== {case.name}: {sum(p.numel() for p in case.module.parameters()) / 1e6:.1f} M parameters, "
          f"random weights; {case.dynamic_name} = {args.length}")

    t0 = time.perf_counter()
    graph = chunkc.from_torch(case.module, case.make_inputs(case.test_sizes[0]), dynamic_shapes=case.dynamic_shapes())
    symbol = sorted(graph.symbols())[0]
    size = args.length // case.size_multiple if getattr(case, "size_multiple", 1) > 1 else args.length
    sizes = {symbol: size}
    print(f"imported through torch.export: {len(graph.nodes)} nodes, symbolic size {symbol} "
          f"({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    plan = plan_within_reach(chunkc, graph, budget, sizes)
    print(f"planned in {time.perf_counter() - t0:.2f} s\n")
    print(plan)

    inputs = case.make_inputs(args.length)
    plain = chunkc.compile(graph, backend="torch")
    chunked = chunkc.compile(graph, plan=plan, backend="torch")
    with torch.inference_mode():
        expected = case.module(*inputs)
        expected = expected[0] if isinstance(expected, (tuple, list)) else expected
        got = chunked(*inputs)
        got = got[0] if isinstance(got, (tuple, list)) else got
    err = float((got - expected).abs().max())
    print(f"chunked output vs eager PyTorch: max abs difference {err:.2e}")

    eager_peak = chunkc.measure_peak(case.module, *inputs)
    plain_peak = chunkc.measure_peak(plain, *inputs)
    chunked_peak = chunkc.measure_peak(chunked, *inputs)
    est = chunkc.estimate_memory(plan.graph, plan=plan, sizes=sizes).peak_bytes
    print("\nactivation memory (measured, inputs and weights excluded):")
    print(f"  eager PyTorch            {_mib(eager_peak)}")
    print(f"  chunkc, unchunked        {_mib(plain_peak)}")
    print(f"  chunkc, chunked          {_mib(chunked_peak)}   (estimate {_mib(est).strip()}, "
          f"budget {_mib(plan.budget_bytes).strip()})")
    print(f"  saved                    {1 - chunked_peak / max(plain_peak, 1):8.1%}")
    with torch.inference_mode():
        ratio = interleaved_ratio(chunked, plain, inputs)
    print(f"\nspeed: chunked / unchunked time = {ratio:.3f} (median of interleaved pairs)")

    dot_path = render_dot(chunkc.to_dot(graph, plan=plan), out / "plan.svg")
    plot_path = plot_memory(graph, plan=plan, sizes=sizes, path=out / "memory.png")
    src_path = out / "model_chunked.py"
    src_path.write_text(emit_source(graph, plan=plan, backend="torch"))
    print(f"\nwrote {dot_path}, {plot_path} and {src_path}")
    if not np.isfinite(err) or err > 1e-3:
        print("error: chunked output differs from eager PyTorch", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
