"""Run the benchmark suite and rewrite docs/benchmarks.md (and docs/img/*.png).

    python -m benchmarks                         # every section (./run.sh bench)
    python -m benchmarks memory-speed max-length # the named sections only
    python -m benchmarks --quick                 # small sizes, two rounds: a smoke run
    python -m benchmarks --list
    python -m benchmarks fuzz --cases 10000      # the long fuzzing campaign (--seed, --jobs)
    python -m benchmarks max-length --models gpt2,gpt2_sdpa  # some models; the other rows are kept

Sections (in the doc's order): memory-speed, cost-model, regret, inductor, library-defaults, max-length,
expert-chunking, fused-attention, compile-speed, eager-parity, training (this suite's), backend-speed and
memory-accuracy (written by benchmarks.backend_speed and benchmarks.memory_accuracy, which this driver runs), fuzz.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys
import time
import traceback
from pathlib import Path

from . import common as C

# section name -> module with run(settings) -> SectionResult
OWN = {
    "memory-speed": "benchmarks.memory_speed",
    "cost-model": "benchmarks.cost_model",
    "regret": "benchmarks.regret",
    "inductor": "benchmarks.inductor",
    "library-defaults": "benchmarks.library_defaults",
    "max-length": "benchmarks.max_length",
    "expert-chunking": "benchmarks.expert_chunking",
    "fused-attention": "benchmarks.fused_attention",
    "compile-speed": "benchmarks.compile_speed",
    "eager-parity": "benchmarks.eager_parity",
    "training": "benchmarks.training",
    "fuzz": "benchmarks.fuzz",
}
# section name -> module with main(argv) that writes its own section
DELEGATED = {
    "backend-speed": "benchmarks.backend_speed",
    "memory-accuracy": "benchmarks.memory_accuracy",
}


def _command(argv: list[str]) -> str:
    return " ".join(["python -m benchmarks", *argv]).strip()


def _run_own(name: str, settings: C.Settings) -> list[str]:
    module = importlib.import_module(OWN[name])
    t0 = time.perf_counter()
    try:
        result = module.run(settings)
    except Exception as exc:  # the section could not run at all: say so in its place
        traceback.print_exc()
        result = C.SectionResult(f"## {name}\n\nThis section failed to run: {C.short_error(exc, 600)}",
                                 [f"{name}: {C.short_error(exc)}"])
    doc = C.write_section(name, result.body, settings, time.perf_counter() - t0)
    C.log(f"[{name}] wrote {doc} ({(time.perf_counter() - t0) / 60:.1f} min)")
    return result.failures


def _run_delegated(name: str, settings: C.Settings) -> list[str]:
    """Run a section another module writes.  It writes docs/benchmarks.md itself; for another
    --doc it prints its section, which is put into that file here."""
    try:
        module = importlib.import_module(DELEGATED[name])
        argv = ["--quick"] if settings.quick and name == "backend-speed" else []
        if settings.doc == C.DOC:
            code = module.main(argv)
        else:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                code = module.main(argv + ["--print"])
            start, end = C.markers(name)
            text = buffer.getvalue()
            if start in text and end in text:
                body = text.split(start, 1)[1].split(end, 1)[0]
                doc = settings.doc.read_text() if settings.doc.exists() else "# Benchmarks\n"
                settings.doc.write_text(C.order_sections(C.replace_section(C.ensure_intro(doc), name, body)))
    except Exception as exc:
        traceback.print_exc()
        return [f"{name}: {C.short_error(exc)}"]
    return [] if not code else [f"{name}: exited with {code}"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = list(C.SECTION_ORDER)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="section", help="any of: " + ", ".join(names))
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 rounds (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every timing (default 1)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per comparison (default 7; quick 2)")
    parser.add_argument("--doc", type=Path, default=C.DOC, help="the markdown file to update")
    parser.add_argument("--cases", type=int, default=None, help="fuzz: cases to run (default 200; quick 20)")
    parser.add_argument("--seed", type=int, default=0, help="fuzz: campaign seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="fuzz: worker processes (default 1)")
    parser.add_argument("--models", default="", help="max-length: rerun only these models (comma-separated keys); "
                        "the other rows are kept from the section's last run, with its date")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [s for s in args.sections if s not in names]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = [n for n in names if n in args.sections] if args.sections else names
    settings = C.Settings(threads=args.threads, rounds=args.rounds or (2 if args.quick else 7),
                          quick=args.quick, command=_command(argv), doc=args.doc.resolve(),
                          img=args.doc.resolve().parent / "img", cases=args.cases, seed=args.seed, jobs=args.jobs,
                          models=tuple(m for m in args.models.split(",") if m))
    C.set_threads(settings.threads)
    failures: list[str] = []
    t0 = time.perf_counter()
    for name in chosen:
        C.log(f"== {name}")
        failures += _run_own(name, settings) if name in OWN else _run_delegated(name, settings)
    if chosen == names:  # the whole suite: record its duration in the intro
        C.record_full_run(settings, time.perf_counter() - t0)
    C.log(f"done in {(time.perf_counter() - t0) / 60:.1f} min; {settings.doc}")
    for f in failures:
        C.log(f"problem: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
