"""Training: one forward and backward step of GPT-2 at prefill lengths, against what users do today.

Contenders, all on the same weights and the same input:

* **eager**: the transformers module, autograd keeping what every op's backward needs;
* **checkpoint**: ``torch.utils.checkpoint`` (non-reentrant) around every transformer block;
* **both**: per-block checkpointing plus the MLP run over slices of the sequence, each slice
  checkpointed (the hand-written mini-sequence recipe);
* **chunkc**: ``chunkc.from_torch(..., train=True)`` planned with
  ``chunkc.autochunk(..., mode="train")`` at 20% of eager's measured step peak (bytes);
* **chunkc at checkpoint's memory**: the same, planned at the checkpoint contender's measured
  peak (bytes), so that the two compare at equal memory (issue 18: faster than per-block
  checkpointing at equal memory, or less memory at equal time).

Memory is ``chunkc.measure_step`` (the step's activation memory: outputs, what autograd saves,
the backward's temporaries; weights, inputs and gradient buffers excluded).  Time is the step
time over eager's, every contender timed in rotating order each round (median, range); the
equal-memory comparison is chunkc's step time over checkpoint's, from the same rounds.  The
longest trainable sequence under eager's step memory at L = 1024: by the plan (the largest L
the planner fits in that budget) and measured at 8x.

    python -m benchmarks training
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import common as C

NAME = "training"
BUDGET = 0.2  # of eager's measured step peak
LONGER = 8  # the sequence-length factor measured under eager's memory at the base length
EQUAL_MEMORY = "chunkc at checkpoint's memory"


@dataclass(frozen=True)
class Config:
    n_layer: int
    n_embd: int
    n_head: int
    vocab: int
    length: int  # the step compared
    base: int  # eager's memory at this length is the budget of the longest sequence
    cap: int  # the longest sequence searched (and the position table's size)
    mlp_slices: int  # "both": the MLP's sequence slices


FULL = Config(n_layer=2, n_embd=128, n_head=4, vocab=1000, length=2048, base=1024, cap=16384, mlp_slices=8)
QUICK = Config(n_layer=2, n_embd=64, n_head=4, vocab=128, length=512, base=128, cap=1024, mlp_slices=4)


@dataclass
class Row:
    name: str
    measured: int | None = None
    ratio: C.Ratio | None = None
    note: str = ""


@dataclass
class Result:
    config: Config
    rows: list[Row] = field(default_factory=list)
    budget: int = 0
    longest_by_plan: int | None = None
    base_peak: int = 0
    longer_measured: int | None = None
    longer_estimate: int | None = None
    longer_note: str = ""
    longer_seconds: float | None = None  # planning, compiling and measuring the longer step
    equal_memory: C.Ratio | None = None  # chunkc at checkpoint's memory: its time / checkpoint's

    def row(self, prefix: str) -> Row | None:
        return next((r for r in self.rows if r.name.startswith(prefix)), None)


def make_case(cfg: Config):
    from chunkc import zoo
    case = zoo.gpt2(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, vocab_size=cfg.vocab,
                    n_positions=cfg.cap)
    for p in case.module.parameters():
        p.requires_grad_(True)
    return case


class Checkpointed:
    """Module surgery on a GPT-2 for the baselines (weights shared with the eager module)."""

    @staticmethod
    def blocks(module, mlp_slices: int | None = None):
        """A copy of ``module`` whose blocks run under ``torch.utils.checkpoint``; with
        ``mlp_slices``, each block's MLP also runs over that many checkpointed sequence slices."""
        import copy

        import torch

        class Block(torch.nn.Module):
            def __init__(self, block):
                super().__init__()
                self.block = block

            def forward(self, *args, **kwargs):
                return torch.utils.checkpoint.checkpoint(self.block, *args, use_reentrant=False, **kwargs)

        class SlicedMLP(torch.nn.Module):
            def __init__(self, mlp, slices: int):
                super().__init__()
                self.mlp, self.slices = mlp, slices

            def forward(self, x):
                parts = x.chunk(self.slices, dim=1)
                return torch.cat([torch.utils.checkpoint.checkpoint(self.mlp, p, use_reentrant=False)
                                  for p in parts], dim=1)

        def shallow(m):  # a new module object over the same parameters (and its own child table)
            c = copy.copy(m)
            c._modules = dict(m._modules)
            return c

        out = shallow(module)
        out.model = shallow(module.model)
        blocks = []
        for block in module.model.h:
            inner = shallow(block)
            if mlp_slices:
                inner.mlp = SlicedMLP(block.mlp, mlp_slices)
            blocks.append(Block(inner))
        out.model.h = torch.nn.ModuleList(blocks)
        return out


def step_fn(module, seed) -> Callable:
    """A training step of ``module`` from the output gradient ``seed`` (gradients accumulate)."""
    def run(ids):
        module(ids).backward(seed)
    return run


def longest_by_plan(graph, budget: int, start: int, cap: int) -> int:
    """The largest L (multiple of 64) whose training step the planner fits in ``budget``."""
    import chunkc
    from chunkc.errors import InfeasibleBudgetError

    from .max_length import longest

    def fits(units: int) -> bool:
        try:
            chunkc.autochunk(graph, budget, sizes={"L": units * 64}, mode="train")
            return True
        except InfeasibleBudgetError:
            return False
    return 64 * longest(fits, start // 64, cap // 64)


def measure(cfg: Config, settings: C.Settings) -> Result:
    import time

    import torch

    import chunkc
    from chunkc.errors import InfeasibleBudgetError

    case = make_case(cfg)
    eager = case.module
    res = Result(cfg)
    ids = case.make_inputs(cfg.length)
    graph = chunkc.from_torch(eager, ids, dynamic_shapes=case.dynamic_shapes(), train=True)
    with torch.no_grad():
        seed = torch.randn(eager(*ids).shape, generator=torch.Generator().manual_seed(0))
    checkpoint = "checkpoint every block"
    contenders: dict[str, torch.nn.Module] = {
        "eager": eager,
        checkpoint: Checkpointed.blocks(eager),
        f"both (checkpoint + MLP in {cfg.mlp_slices} slices)": Checkpointed.blocks(eager, cfg.mlp_slices),
    }
    measured = {name: chunkc.measure_step(m, *ids, grad_outputs=(seed,)) for name, m in contenders.items()}
    eager_peak = measured["eager"]
    res.budget = int(BUDGET * eager_peak)
    notes: dict[str, str] = {}
    # chunkc at 20% of eager, and at the checkpoint contender's measured peak (equal memory)
    for label, budget in ((f"chunkc at {C.pct(BUDGET)} of eager", res.budget),
                          (EQUAL_MEMORY, measured[checkpoint])):
        try:
            plan = chunkc.autochunk(graph, budget, sizes={"L": cfg.length}, mode="train")
            contenders[label] = chunkc.compile(graph, plan, backend="torch")
            measured[label] = chunkc.measure_step(contenders[label], *ids, grad_outputs=(seed,))
            notes[label] = f"{len(plan.regions)} regions, estimate {C.mib(plan.estimated_peak_bytes)} MiB"
        except InfeasibleBudgetError as exc:
            notes[label] = C.plan_error(exc, eager_peak)
        res.rows.append(Row(label, measured.get(label), note=notes[label]))
    res.rows[:0] = [Row(name, measured[name]) for name in list(contenders)[:3]]
    times = C.round_robin_times({name: step_fn(m, seed) for name, m in contenders.items()}, tuple(ids),
                                settings.rounds)
    for row in res.rows[1:]:
        if row.name in times:
            row.ratio = C.ratio(times, "eager", row.name)
    if EQUAL_MEMORY in times:
        res.equal_memory = C.ratio(times, checkpoint, EQUAL_MEMORY)

    # the longest sequence under eager's step memory at the base length
    base_ids = case.make_inputs(cfg.base)
    with torch.no_grad():
        base_seed = torch.randn(eager(*base_ids).shape, generator=torch.Generator().manual_seed(0))
    res.base_peak = chunkc.measure_step(eager, *base_ids, grad_outputs=(base_seed,))
    res.longest_by_plan = longest_by_plan(graph, res.base_peak, cfg.base, cfg.cap)
    longer = LONGER * cfg.base
    started = time.perf_counter()
    try:
        plan = chunkc.autochunk(graph, res.base_peak, sizes={"L": longer}, mode="train")
        res.longer_estimate = plan.estimated_peak_bytes
        module = chunkc.compile(graph, plan, backend="torch")
        long_ids = case.make_inputs(longer)
        res.longer_measured = chunkc.measure_step(module, *long_ids)
        res.longer_seconds = time.perf_counter() - started
    except InfeasibleBudgetError as exc:
        res.longer_note = C.plan_error(exc, res.base_peak)
    return res


def render(res: Result, settings: C.Settings) -> str:
    cfg = res.config
    eager_peak = res.rows[0].measured
    lines = ["## Training", "",
             f"One training step (forward, then backward from a fixed output gradient) of GPT-2 "
             f"(transformers GPT2Model, {cfg.n_layer} layers, n_embd {cfg.n_embd}, {cfg.n_head} heads, explicit "
             f"attention) at L = {cfg.length}.  *Activation memory*: `chunkc.measure_step` (outputs, what autograd "
             "saves, the backward's temporaries; weights, inputs and gradient buffers excluded).  *Time*: step "
             f"time over eager's, all contenders in rotating order each round ({settings.rounds} rounds; median, "
             "range).  *checkpoint*: `torch.utils.checkpoint` (non-reentrant) around every block; *both*: that "
             "and the MLP run over checkpointed sequence slices (the mini-sequence recipe); *chunkc*: "
             f"`from_torch(..., train=True)`, `autochunk(..., mode=\"train\")` at {C.pct(BUDGET)} of eager's "
             "measured peak, in bytes; *chunkc at checkpoint's memory*: planned at the checkpoint contender's "
             "measured peak, for the comparison at equal memory.  See docs/training.md.", ""]
    rows = []
    for r in res.rows:
        mem = "–" if r.measured is None else f"{C.mib(r.measured)} ({C.pct(r.measured / eager_peak)})"
        rows.append([r.name, mem, r.ratio.cell() if r.ratio else ("1" if r.name == "eager" else "–"), r.note])
    lines += C.table(["contender", "step peak MiB (% of eager)", "time / eager", "notes"], rows) + [""]
    chunk_row = res.row(f"chunkc at {C.pct(BUDGET)}")
    if chunk_row.measured is not None and chunk_row.ratio is not None:
        ok_mem = chunk_row.measured <= BUDGET * eager_peak
        ok_time = chunk_row.ratio.median <= 1.35
        lines += [f"Issue 18's targets at {C.pct(BUDGET)}: peak ≤ {C.pct(BUDGET)} of eager: "
                  f"{'yes' if ok_mem else '**no**'}; time ≤ 1.35× eager: {'yes' if ok_time else '**no**'}.", ""]
    lines += [equal_memory_text(res), ""]
    longer = LONGER * cfg.base
    lines += [f"**Longest trainable sequence** under eager's step memory at L = {cfg.base} "
              f"({C.mib(res.base_peak)} MiB, measured): by chunkc's plan, L = {res.longest_by_plan} "
              f"({res.longest_by_plan / cfg.base:.1f}×; searched up to {cfg.cap}).  Measured at L = {longer} "
              f"({LONGER}×): " + (f"{C.mib(res.longer_measured)} MiB (estimate {C.mib(res.longer_estimate)} MiB), "
                                  f"{'within' if res.longer_measured <= res.base_peak else '**over**'} the budget "
                                  f"(planned, compiled and measured in {res.longer_seconds:.0f} s)."
                                  if res.longer_measured is not None else f"no plan: {res.longer_note}."), ""]
    return "\n".join(lines)


def equal_memory_text(res: Result) -> str:
    """The equal-memory comparison against per-block checkpointing, in words."""
    ckpt, equal = res.row("checkpoint every block"), res.row(EQUAL_MEMORY)
    head = (f"**At equal memory** (chunkc planned at checkpoint's measured peak, "
            f"{C.mib(ckpt.measured)} MiB): ")
    if equal is None or equal.measured is None or res.equal_memory is None:
        return head + f"no plan: {equal.note if equal else 'not run'}."
    faster = res.equal_memory.median < 1
    within = equal.measured <= ckpt.measured
    return (head + f"chunkc measured {C.mib(equal.measured)} MiB ({'within' if within else '**over**'} it); its step "
            f"takes {res.equal_memory.cell()} of checkpoint's time (same rounds), so chunkc is "
            + ("faster at equal memory." if faster and within else "**not** faster at equal memory."))


def run(settings: C.Settings) -> C.SectionResult:
    cfg = QUICK if settings.quick else FULL
    res = measure(cfg, settings)
    failures = []
    chunk_row = res.row(f"chunkc at {C.pct(BUDGET)}")
    if chunk_row.measured is not None and chunk_row.measured > res.budget:
        failures.append(f"{NAME}: chunkc's step measured {chunk_row.measured} B over its budget {res.budget} B")
    if res.longer_measured is not None and res.longer_measured > res.base_peak:
        failures.append(f"{NAME}: at {LONGER}x the step measured {res.longer_measured} B over {res.base_peak} B")
    return C.SectionResult(render(res, settings), failures)


__all__ = ["run", "measure", "render", "Config", "FULL", "QUICK", "Checkpointed", "longest_by_plan", "equal_memory_text", "EQUAL_MEMORY"]
