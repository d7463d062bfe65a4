"""The GPU section of docs/benchmarks.md, from the results a GPU run wrote.

    python -m benchmarks.gpu.report path/to/gpu_results.json   # rewrite the section from them
    python -m benchmarks.gpu.report --pending                  # say that it awaits a GPU run
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.common import DOC, ensure_intro, order_sections, replace_section

from .cases import BUDGETS, MANIFEST

SECTION = "gpu"
RUN_COMMAND = "python -m benchmarks.gpu.run --out \"$OUT\""
ESTIMATE_TARGET = 0.05  # measured within 5% of the GPU estimate
TIME_TARGETS = ((0.5, 1.03), (0.2, 1.10))  # (budget, at most this slowdown) from the paper's A100 figures


def _mib(n) -> str:
    return "–" if n is None else f"{n / 2**20:.1f}"


def _intro() -> list[str]:
    return [
        "## On a GPU",
        "",
        "The same saved graphs and plans (`benchmarks/gpu/data`, made by `python -m benchmarks.gpu.prepare`: "
        "torch.export import and `chunkc.autochunk` at 50/40/20/10% of the unchunked estimated peak) compiled "
        "for CuPy and for PyTorch on CUDA.  *Measured* is `chunkc.measure_peak` (PyTorch: the caching "
        "allocator's `max_memory_allocated` above what was allocated before the call; CuPy: its memory pool), "
        "*estimated* is `chunkc.estimate_memory(..., device=\"cuda\")` (allocations rounded as each allocator "
        "rounds them, the CUDA kernels' workspace; docs/memory.md).  *Time* is chunked / unchunked, timed in "
        "rotating order with every call CUDA-synchronized, median (range) over the rounds.  Targets (the "
        "paper's A100 figures): within 5% of the estimate; at most 1.03× the time at 50% of the memory, "
        "at most 1.10× at 20% and below.",
        "",
    ]


def render(results: dict) -> str:
    """The section's body for a run's results."""
    m = results["machine"]
    lines = _intro()
    if m.get("dry_run"):
        lines += ["*A CPU dry run (PyTorch on the CPU, NumPy in place of CuPy, small sizes): a check of the "
                  "script, not figures to quote.*", ""]
    for key, model in results["models"].items():
        size = next((b.get("size") for b in model["backends"].values() if "size" in b), None)
        lines += [f"### {model['label']}: {model['size_name']} = {size}", "", f"{model['config']}.", ""]
        for budget, why in model.get("unplanned", {}).items():
            lines += [f"- no plan at {budget}: {why}"]
        if model.get("unplanned"):
            lines += [""]
        lines += ["| backend | program | estimated MiB | measured MiB | measured / estimated | memory vs unchunked "
                  "| time vs unchunked | result |", "|---|---|---|---|---|---|---|---|"]
        for label, b in model["backends"].items():
            if "error" in b:
                lines += [f"| {label} | – | – | – | – | – | – | failed: {b['error'][:160]} |"]
                continue
            base = b["variants"]["unchunked"]["measured"]
            for name, v in b["variants"].items():
                est, meas = v["estimate"], v["measured"]
                off = meas / est - 1 if est else 0.0
                mark = "" if abs(off) <= ESTIMATE_TARGET else " ✗"
                t = v.get("time_ratio")
                tcell = "–" if t is None else f"{t['median']:.3f} ({t['low']:.2f}–{t['high']:.2f})"
                if t is not None and name != "unchunked":
                    frac = int(name.rstrip("%")) / 100
                    limit = next((lim for bud, lim in TIME_TARGETS if frac >= bud), TIME_TARGETS[-1][1])
                    tcell += "" if t["median"] <= limit else " ✗"
                memory = "1.00" if name == "unchunked" else f"{meas / base:.2f}" if base else "–"
                ok = "same as unchunked" if v.get("correct") else f"differs (max {v.get('max_abs_diff', 0):.2g})"
                if name == "unchunked":
                    ok = "reference"
                lines += [f"| {label} | {name} | {_mib(est)} | {_mib(meas)} | {off:+.1%}{mark} | {memory} | {tcell} "
                          f"| {ok} |"]
            if "timing" in b:
                lines += [f"| {label} | – | – | – | – | – | {b['timing']} | – |"]
        lines += [""]
    if results.get("stopped"):
        lines += [f"*Stopped early: {results['stopped']}.*", ""]
    gpu = m.get("gpu")
    where = (f"{gpu} ({m.get('gpu_memory_gib')} GiB, compute capability {m.get('compute_capability')}), "
             f"CUDA {m.get('cuda')}, CuPy {m.get('cupy')}, " if gpu else "") + \
        f"torch {m['torch']}, NumPy {m['numpy']}, Python {m['python']}"
    lines += [f"*Produced by `{results.get('command', RUN_COMMAND)}` on {results.get('started')}; machine: {where}; "
              f"{results.get('rounds')} timed rounds; the run took {results.get('seconds', 0) / 60:.1f} min. "
              f"Plans prepared {results.get('prepared', {}).get('when')} with torch "
              f"{results.get('prepared', {}).get('torch')}.*"]
    return "\n".join(lines)


def render_pending() -> str:
    """The section before any GPU run: what is prepared and the command to run."""
    lines = _intro()
    lines += ["**Awaiting a GPU run.**  On a machine with an NVIDIA GPU (PyTorch with CUDA and CuPy installed), "
              "from the repository root:", "", "```bash", RUN_COMMAND, "```", "",
              "It needs no network and no torch.export, finishes in under 8 minutes (`--time-budget`, default "
              "420 s, stops starting new work), and rewrites this section and `gpu_results.json` after every "
              "model and backend (also into `--out`).  Back on a development machine, "
              "`python -m benchmarks.gpu.report gpu_results.json` rewrites this section from the results.  "
              "`python -m benchmarks.gpu.run --dry-run` runs the same script on the CPU (a test does).", ""]
    if MANIFEST.exists():
        manifest = json.loads(MANIFEST.read_text())
        lines += ["Prepared (" + str(manifest.get("prepared")) + ", torch " + str(manifest.get("torch")) + "):", "",
                  "| model | size | unchunked estimate (CPU) MiB | plans (estimated MiB) |", "|---|---|---|---|"]
        for model in manifest["models"].values():
            plans = ", ".join(f"{round(p['budget'] * 100)}%: " + (_mib(p['estimated_peak_bytes']) if "file" in p
                                                                  else "none reached")
                              for p in model["plans"])
            lines += [f"| {model['label']} | {model['size_name']} = {model['size']} | "
                      f"{_mib(model['unchunked_estimate_bytes'])} | {plans} |"]
    return "\n".join(lines)


def write_section(body: str, doc: Path = DOC) -> Path:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    text = order_sections(replace_section(ensure_intro(text), SECTION, body))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc


def write_pending(doc: Path = DOC) -> Path:
    return write_section(render_pending(), doc)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--pending"]:
        print(write_pending())
        return 0
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    results = json.loads(Path(args[0]).read_text())
    print(write_section(render(results)))
    return 0


__all__ = ["render", "render_pending", "write_section", "write_pending", "BUDGETS"]

if __name__ == "__main__":
    sys.exit(main())
