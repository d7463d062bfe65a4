"""Run the differential fuzzer from the shell.

    python -m chunkc.fuzz --cases 200 --seed 0            # a campaign: counts and failure classes
    python -m chunkc.fuzz --cases 200 --shrink            # ... with each class shrunk to a small graph
    python -m chunkc.fuzz --case 17                       # one case, every finding, its graph
    python -m chunkc.fuzz --case 17 --shrink              # ... shrunk, for each finding class
    python -m chunkc.fuzz --cases 50 --log findings.jsonl # one JSON line per case
"""

from __future__ import annotations

import argparse
import json
import sys

from ..ir.printer import print_graph
from .campaign import WALL_FACTOR, Profile, run_campaign
from .graphs import random_case
from .oracle import BACKENDS, check_case
from .shrink import shrink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chunkc.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="cases in the campaign (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed: case i is seed*1000000+i (default 0)")
    parser.add_argument("--case", type=int, default=None, help="run only the case of this seed")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="backends (default: all)")
    parser.add_argument("--shrink", action="store_true", help="shrink one case of every failure class")
    parser.add_argument("--no-measure", action="store_true", help="skip the memory measurements")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help=f"seconds of CPU time per case before it is abandoned (the wall clock ends it at "
                             f"{WALL_FACTOR:g} times that)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--log", default=None, help="append one JSON line per case to this file")
    args = parser.parse_args(argv)
    backends = tuple(args.backend or BACKENDS)
    if args.case is not None:
        return _one(args.case, backends, not args.no_measure, args.shrink)
    log = open(args.log, "a") if args.log else None

    def on_case(result):
        status = "timeout" if result.timed_out else ("ok" if result.ok else
                                                     ", ".join(sorted({f.kind for f in result.findings})))
        print(f"case {result.seed}: {status}", file=sys.stderr, flush=True)
        if log is not None:
            log.write(json.dumps(_record(result)) + "\n")
            log.flush()

    profile = Profile(backends=backends, measure=not args.no_measure, timeout=args.timeout)
    summary = run_campaign(args.cases, args.seed, profile, shrink_classes=args.shrink, jobs=args.jobs,
                           on_case=on_case)
    print(summary.format())
    return 0 if summary.ok else 1


def _record(result) -> dict:
    if result.timed_out:
        return {"seed": result.seed, "timeout": True}
    return {"seed": result.seed, "seconds": round(result.seconds, 2), "nodes": result.nodes,
            "families": list(result.families),
            "outcomes": [{"backend": o.backend, "budget": str(o.budget), "budget_bytes": o.budget_bytes,
                          "status": o.status, "regions": o.regions, "estimated": o.estimated, "measured": o.measured,
                          "lowest": o.lowest} for o in result.outcomes],
            "findings": [{"kind": f.kind, "stage": f.stage, "backend": f.backend, "budget": str(f.budget),
                          "signature": f.signature, "message": f.message} for f in result.findings]}


def _one(seed: int, backends, measure: bool, do_shrink: bool) -> int:
    case = random_case(seed)
    print(case.describe())
    print(print_graph(case.graph))
    report = check_case(case, backends=backends, measure=measure)
    for o in report.outcomes:
        print(f"  {o.backend} {o.budget} ({o.budget_bytes} B): {o.status}"
              + (f", {o.regions} region(s), estimated {o.estimated} B, measured {o.measured} B"
                 if o.status == "planned" else "") + (f", lowest {o.lowest} B" if o.lowest is not None else ""))
    for f in report.findings:
        print(f"  {f}")
    if do_shrink:
        seen = set()
        for f in report.findings:
            if f.signature in seen:
                continue
            seen.add(f.signature)
            small = shrink(case, f)
            print(f"\n{f.signature}: shrunk to {len(small.graph.nodes)} node(s), sizes {small.sizes}, "
                  f"budget(s) {', '.join(map(str, small.budgets))}")
            print(print_graph(small.graph))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
