"""Import and plan the GPU benchmark's models here; save what the GPU needs.

    python -m benchmarks.gpu.prepare            # every model (a minute or two)
    python -m benchmarks.gpu.prepare gpt2 vit   # some

For each model of :mod:`benchmarks.gpu.cases`: torch.export import (``chunkc.from_torch``),
``chunkc.save`` of the graph, ``chunkc.autochunk`` at each budget for the GPU
(``backend="torch", device="cuda"``: CUDA's allocator and kernels, a GPU's costs) at the GPU size and ``chunkc.save_plan`` of each plan (sharing the graph's weights), and an
entry in ``data/manifest.json``: sizes, inputs (dtype, shape, value range), the plans'
estimates, a budget the search could not reach.  Then the GPU section of
docs/benchmarks.md is set to say that it awaits a GPU run.
"""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import time

from .cases import BUDGETS, DATA, MANIFEST, budget_name, cases


def _inputs(case, graph, size: int) -> list[dict]:
    """Each graph input: name, dtype, shape (sizes as text) and the range of its values."""
    from chunkc.ir.sizes import format_size
    examples = case.make_inputs(size)
    out = []
    for v, example in zip(graph.inputs, examples):
        entry = {"name": v.name, "dtype": v.dtype.name, "shape": [format_size(s) for s in v.shape]}
        if not v.dtype.is_floating:
            entry["below"] = int(example.max()) + 1  # integer inputs (token ids) stay in range
        out.append(entry)
    return out


def prepare(keys: list[str] | None = None, log=print) -> dict:
    import torch

    import chunkc
    from chunkc.errors import InfeasibleBudgetError

    DATA.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"models": {}}
    manifest.update(prepared=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    torch=torch.__version__, budgets=list(BUDGETS))
    for key, spec in cases().items():
        if keys and key not in keys:
            continue
        t0 = time.perf_counter()
        case = spec.factory()
        graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
        folder = DATA / key
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        chunkc.save(graph, folder / "graph.chunkc")
        sizes = {case.dynamic_name: case.symbol_value(spec.size)}
        unchunked = chunkc.estimate_memory(graph, sizes=sizes, backend="torch", device="cuda").peak_bytes
        plans = []
        for budget in BUDGETS:
            entry: dict = {"budget": budget}
            try:
                plan = chunkc.autochunk(graph, budget, sizes=sizes, backend="torch", device="cuda", progress=False)
            except InfeasibleBudgetError as exc:
                entry["error"] = str(exc).splitlines()[0]
                plans.append(entry)
                log(f"  {key} at {budget:.0%}: {entry['error']}")
                continue
            chunkc.save_plan(plan, folder / budget_name(budget), weights=folder / "graph.chunkc")
            entry.update(file=budget_name(budget), regions=len(plan.regions), budget_bytes=plan.budget_bytes,
                         estimated_peak_bytes=plan.estimated_peak_bytes)
            plans.append(entry)
        manifest["models"][key] = {
            "label": spec.label, "config": spec.config, "size_name": spec.size_name,
            "symbol": case.dynamic_name, "size_multiple": case.size_multiple,
            "size": spec.size, "dry_size": spec.dry_size,
            "inputs": _inputs(case, graph, spec.dry_size), "unchunked_estimate_bytes": unchunked, "plans": plans,
        }
        log(f"{key}: {len(graph.nodes)} nodes, {sum(1 for p in plans if 'file' in p)} plans, "
            f"{time.perf_counter() - t0:.0f} s")
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    keys = list(sys.argv[1:] if argv is None else argv)
    unknown = sorted(set(keys) - set(cases()))
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(cases())}", file=sys.stderr)
        return 2
    prepare(keys or None)
    from .report import write_pending
    write_pending()
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    print(f"saved under {DATA} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
