"""Where the cost model's time goes wrong: every statement of a generated PyTorch program timed
against the model's price of its node (issue 13's diagnosis, not a section of docs/benchmarks.md).

The program's source is instrumented with a clock tick after every statement of ``forward`` and of
each chunk function (one torch thread: a statement's time is its kernels'), the unchunked and the
chunked program are called in turn (A B A B, median per statement over rounds), and each
statement's time is set beside :class:`chunkc.passes.cost.TimeModel`'s seconds for its node (a chunk
loop's nodes summed over the iterations, as ``loop_seconds`` prices them) and grouped by op.

    python -m benchmarks.node_times gpt2 0.5 [--rounds 5] [--top 25]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import defaultdict

STATEMENT = re.compile(r"^(\s+)(?!def |return |#|@|class |\"|')(\S.*)$")
LHS = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\[.*\])? = ")
OP = re.compile(r"# (\w+) -> ")


def instrument(source: str) -> tuple[str, list[str]]:
    """``source`` with ``_tick(k)`` after every statement of ``forward`` and of the chunk
    functions, and the label of each statement k: ``<value>|<op>`` (or ``del``, ``write <value>``,
    ``loop``, ``other``)."""
    out, labels, inside = [], [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("def forward("):
            inside = True
            out.append(line)
            continue
        if inside and line and not line.startswith("    ") and stripped:
            inside = False
        m = STATEMENT.match(line) if inside else None
        out.append(line)
        if not m or len(m.group(1)) < 8 or stripped.startswith(("def ", "return", "#", "@")) or stripped.split("  #")[0].endswith(":"):
            if inside and stripped.startswith("def chunk_region"):  # run_chunks's own time per iteration
                labels.append("iteration")
                out.append(line[:len(line) - len(line.lstrip())] + f"    _tick({len(labels) - 1})")
            continue
        indent, text = m.group(1), m.group(2)
        lhs, op = LHS.match(text), OP.search(text)
        if text.startswith("del "):
            label = "del"
        elif lhs and lhs.group(2):
            label = f"write {lhs.group(1)}"
        elif lhs and op:
            label = f"{lhs.group(1)}|{op.group(1)}"
        elif "run_chunks" in text:
            label = "loop return"
        elif "torch.empty" in text:
            label = f"buffer {lhs.group(1) if lhs else ''}"
        elif lhs and "_chunk = " in text:
            label = "slice"
        else:
            label = "other"
        labels.append(label)
        out.append(f"{indent}_tick({len(labels) - 1})")
    text = "\n".join(out)
    text = text.replace("    def forward(self, *inputs):\n", "    def forward(self, *inputs):\n        _tick(-1)\n", 1)
    return text, labels


class Clock:
    def __init__(self, n: int):
        self.acc = [0.0] * n
        self.last = 0.0

    def __call__(self, k: int) -> None:
        now = time.perf_counter()
        if k >= 0:
            self.acc[k] += now - self.last
        self.last = time.perf_counter()


def load_instrumented(graph, plan):
    """The generated module with every statement ticking a Clock; (module, clock, labels)."""
    import chunkc
    from chunkc.backends.runtime import load_source
    module = chunkc.compile(graph, plan, backend="torch")
    inner = getattr(module, "module", module)
    source = inner.chunkc_source if hasattr(inner, "chunkc_source") else module.chunkc_source
    text, labels = instrument(source)
    clock = Clock(len(labels))
    mod = load_source(text, f"chunkc_ticked_{id(plan)}")
    mod._tick = clock
    cls = next(v for k, v in vars(mod).items() if isinstance(v, type) and k.startswith("Chunked_"))
    ticked = cls()
    ticked.load_state_dict(inner.state_dict(), assign=True)
    return ticked.eval(), clock, labels


def model_prices(model, plan) -> dict[str, float]:
    """The model's seconds per value name (its node's calls, summed over a loop's iterations),
    plus ``loop overhead <k>`` for each loop's bookkeeping, views, copies, buffers and writes."""
    from chunkc.ir.graph import sanitize_name
    from chunkc.ir.sizes import evaluate
    from chunkc.passes.plan_index import PlanIndex, RegionView
    prices: dict[str, float] = defaultdict(float)
    name = lambda i: sanitize_name(model.graph.nodes[i].outputs[0].name) if model.graph.nodes[i].outputs else "?"
    for k, step in enumerate(PlanIndex.build(model.graph, plan).steps):
        if not isinstance(step, RegionView):
            i = model.position[step]
            prices[name(i)] += model.times[i]
            continue
        chunked = {v: (c.axis, c.unit) for v, c in step.chunk.items()}
        extent = evaluate(step.region.extent, model.sizes)
        chunk = max(1, min(evaluate(step.region.chunk_size, model.sizes), extent))
        loop = [model.position[n] for n in step.nodes]
        per_node: dict[int, float] = {}
        whole = model.loop_seconds(loop, chunked, step.outputs, extent, chunk, reused=tuple(step.reuse),
                                   accumulators=tuple(step.accumulators), per_node=per_node)
        for i, t in per_node.items():
            prices[name(i)] += t
        nodes_total = sum(per_node.values())
        prices[f"loop overhead {k}"] += whole - nodes_total
    return prices


def main(argv=None) -> None:
    import torch
    import chunkc
    from benchmarks import common as C
    from benchmarks.subjects import zoo_subjects
    from chunkc.passes.cost import TimeModel, default_kernels
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("fraction", type=float)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sub = zoo_subjects(C.Settings(), [a.model])[0]
    plain = C.compile_torch(sub.graph)
    peak = C.measure(plain, sub.args)
    table = default_kernels()
    plan = chunkc.autochunk(sub.graph, int(a.fraction * peak), sizes=dict(sub.sizes), backend="torch",
                            machine=table, progress=False)
    progs = {"plain": load_instrumented(sub.graph, None), "chunked": load_instrumented(sub.graph, plan)}
    base = TimeModel(sub.graph, dict(sub.sizes), table)
    model = TimeModel(plan.graph, dict(plan.sizes), table)
    predicted = {"plain": model_prices(base, None), "chunked": model_prices(model, plan)}
    runs = {k: [] for k in progs}
    totals = {k: [] for k in progs}
    for r in range(a.rounds + 1):
        for key in (("plain", "chunked") if r % 2 else ("chunked", "plain")):
            mod, clock, labels = progs[key]
            clock.acc = [0.0] * len(labels)
            import gc
            gc.collect()
            t0 = time.perf_counter()
            mod(*sub.args)
            t1 = time.perf_counter()
            if r:
                runs[key].append(list(clock.acc))
                totals[key].append(t1 - t0)
    for key in progs:
        labels = progs[key][2]
        med = [statistics.median(run[k] for run in runs[key]) for k in range(len(labels))]
        by_label: dict[str, float] = defaultdict(float)
        for lab, t in zip(labels, med):
            by_label[lab] += t
        pred = predicted[key]
        print(f"\n=== {a.model} {key}: measured total {statistics.median(totals[key]) * 1e3:.1f} ms "
              f"(ticked statements {sum(med) * 1e3:.1f} ms), predicted {sum(pred.values()) * 1e3:.1f} ms")
        by_op_m: dict[str, float] = defaultdict(float)
        by_op_p: dict[str, float] = defaultdict(float)
        rows = []
        seen = set()
        for lab, t in by_label.items():
            value, _, op = lab.partition("|")
            value = value[:-6] if value.endswith("_chunk") else value
            p_ = pred.get(value, 0.0) if op else 0.0
            if op:
                seen.add(value)
            by_op_m[op or lab.split(" ")[0]] += t
            by_op_p[op or lab.split(" ")[0]] += p_
            rows.append((t - p_, lab, t, p_))
        for k, v in pred.items():
            if k not in seen:
                by_op_p[k.split(" ")[0] if k.startswith("loop") else "unmatched"] += v
        print(f"{'op':<16}{'measured ms':>12}{'predicted ms':>13}{'diff':>9}")
        for op in sorted(set(by_op_m) | set(by_op_p), key=lambda o: -abs(by_op_m[o] - by_op_p[o])):
            print(f"{op:<16}{by_op_m[op] * 1e3:>12.2f}{by_op_p[op] * 1e3:>13.2f}{(by_op_m[op] - by_op_p[op]) * 1e3:>+9.2f}")
        print("largest statement differences:")
        for d, lab, t, p_ in sorted(rows, key=lambda r: -abs(r[0]))[:a.top]:
            print(f"  {lab:<40}{t * 1e3:>10.2f}{p_ * 1e3:>10.2f}{d * 1e3:>+9.2f}")
    print("\nloop overheads predicted:", {k: round(v * 1e3, 2) for k, v in predicted["chunked"].items() if k.startswith("loop")})


if __name__ == "__main__":
    main()
