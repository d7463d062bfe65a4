"""Shared machinery of the benchmark suite (``python -m benchmarks``).

* :class:`Settings`: what a run was asked for (threads, rounds, quick mode, the command).
* Interleaved timing: :func:`interleaved_ratio` (A B A B ..., warm-up first, median of
  per-pair ratios) and :func:`round_robin` (several variants, each round runs all of them
  once in a rotating order; ratios against the reference of the same round).  Only ratios
  are reported: on a shared 2-core machine absolute times drift, ratios of neighbours in
  time do not.
* Model helpers: import a zoo case through ``chunkc.from_torch``, plan under a byte
  budget for the PyTorch backend, compile, measure with ``chunkc.measure_peak``.
* :func:`write_section`: rewrite one section of docs/benchmarks.md between
  ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``, keeping every other section, stamped
  with the command, the date (UTC) and the machine.
"""

from __future__ import annotations

import datetime
import gc
import os
import re
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"

# Sections in the order they appear in the doc.  The last two are written by their own
# modules (benchmarks.backend_speed, benchmarks.memory_accuracy); this suite only runs them.
SECTION_ORDER = ("memory-speed", "cost-model", "regret", "inductor", "library-defaults", "max-length",
                 "expert-chunking", "fused-attention", "compile-speed", "eager-parity", "training", "backend-speed",
                 "memory-accuracy", "fuzz")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    threads: int = 1  # torch.set_num_threads for every timing
    rounds: int = 7  # timed rounds (pairs) after the warm-up
    quick: bool = False  # small sizes and few rounds: a smoke run, not figures to quote
    command: str = "python -m benchmarks"
    doc: Path = DOC
    img: Path = IMG
    cases: int | None = None  # fuzz: cases to run (None: the section's default)
    seed: int = 0  # fuzz: the campaign seed
    jobs: int = 1  # fuzz: worker processes
    models: tuple[str, ...] = ()  # max-length: rerun only these models, keep the other rows


def machine_line(threads: int | None = None) -> str:
    """Cores, CPU, Python, NumPy and torch versions, torch threads."""
    import numpy as np
    parts = [f"{os.cpu_count()} cores ({platform.machine()}, {platform.system()})",
             f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    try:
        import torch
        parts.append(f"torch {torch.__version__}")
        parts.append(f"{threads if threads is not None else torch.get_num_threads()} torch thread(s)")
    except ImportError:
        pass
    return ", ".join(parts)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Ratio:
    """Median of per-round time ratios t(variant) / t(reference), with their range."""

    median: float
    low: float
    high: float
    rounds: int

    def cell(self) -> str:
        return f"{self.median:.3f} ({self.low:.2f}–{self.high:.2f})"

    @staticmethod
    def of(ratios: Sequence[float]) -> "Ratio":
        return Ratio(statistics.median(ratios), min(ratios), max(ratios), len(ratios))


Clock = Callable[[], float]


def time_call(fn: Callable, args: tuple, clock: Clock = time.perf_counter, collect: bool = True) -> float:
    """Seconds of one call; garbage is collected before the clock starts (``collect``)."""
    if collect:
        gc.collect()
    t0 = clock()
    out = fn(*args)
    t = clock() - t0
    del out
    return t


def round_robin_times(fns: Mapping[str, Callable], args: tuple, rounds: int, warmup: int = 1,
                      clock: Clock = time.perf_counter, collect: bool = True) -> dict[str, list[float]]:
    """Interleaved timing of several variants of one computation: seconds per round.

    Each round runs every variant once; the order rotates from round to round (and is
    reversed every other cycle) so that no variant always follows the same neighbour.
    ``warmup`` untimed rounds come first.  Compare two variants with :func:`ratio`.
    ``collect``: collect garbage before every call (else the caller keeps the collector
    out of the way; a full collection costs a quarter of a second in a large process).
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            time_call(fns[name], args, clock, collect)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        order = names[k:] + names[:k]
        if (r // len(names)) % 2:
            order.reverse()
        for name in order:
            times[name].append(time_call(fns[name], args, clock, collect))
    return times


def ratio(times: Mapping[str, Sequence[float]], reference: str, variant: str) -> Ratio:
    """Median over rounds of t(variant) / t(reference), both from the same round."""
    return Ratio.of([b / a for a, b in zip(times[reference], times[variant])])


def round_robin(fns: Mapping[str, Callable], args: tuple, rounds: int, warmup: int = 1,
                clock: Clock = time.perf_counter) -> dict[str, Ratio]:
    """:func:`round_robin_times`, then every variant against the first (the reference)."""
    names = list(fns)
    if len(names) < 2:
        raise ValueError("round_robin: needs a reference and at least one variant")
    times = round_robin_times(fns, args, rounds, warmup, clock)
    return {name: ratio(times, names[0], name) for name in names[1:]}


def interleaved_ratio(a: Callable, b: Callable, args: tuple, pairs: int, warmup: int = 1,
                      clock: Clock = time.perf_counter) -> Ratio:
    """t(b) / t(a): pairs A B, B A, A B, ... after ``warmup`` untimed pairs; median of the pairs."""
    return round_robin({"a": a, "b": b}, args, pairs, warmup, clock)["b"]


# --------------------------------------------------------------------------- models


def set_threads(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def import_case(case) -> Any:
    """The zoo case imported through torch.export with its dynamic dimension symbolic."""
    import chunkc
    return chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())


def plan_under(graph, budget_bytes: int, sizes: Mapping[str, int]):
    """``chunkc.autochunk`` for the PyTorch backend under a budget in bytes."""
    import chunkc
    return chunkc.autochunk(graph, int(budget_bytes), sizes=dict(sizes), backend="torch", progress=False)


def compile_torch(graph, plan=None):
    import chunkc
    return chunkc.compile(graph, plan, backend="torch")


def eager(module) -> Callable:
    """The module under ``torch.inference_mode`` (how the generated programs run)."""
    import torch

    def run(*args):
        with torch.inference_mode():
            return module(*args)
    return run


def measure(fn: Callable, args: tuple, module=None) -> int:
    """Activation bytes of one call (``chunkc.measure_peak``); a module's weights excluded."""
    import chunkc
    if module is not None:
        return chunkc.measure_peak(module, *args)
    return chunkc.measure_peak(fn, *args)


def max_abs_diff(got, want) -> float:
    """Largest absolute difference over (possibly nested tuples of) tensors."""
    if isinstance(got, (tuple, list)):
        return max(max_abs_diff(g, w) for g, w in zip(got, want))
    return float((got.float() - want.float()).abs().max())


def plan_summary(plan, sizes: Mapping[str, int]) -> str:
    """'3 regions, chunks 512/4096, ...' at the planning sizes."""
    from chunkc.ir.sizes import evaluate
    if not plan.regions:
        return "no regions"
    chunks = sorted({f"{evaluate(r.chunk_size, sizes)}/{evaluate(r.extent, sizes)}" for r in plan.regions})
    return f"{len(plan.regions)} region(s), chunk/extent {', '.join(chunks)}"


# --------------------------------------------------------------------------- formatting


def mib(n: int | float | None) -> str:
    return "–" if n is None else f"{n / 2**20:.1f}"


def pct(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def short_error(exc: BaseException, limit: int = 220) -> str:
    """One line for a table cell: the error's type and first line, pipes escaped."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}".replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_error(exc: BaseException, reference_bytes: int | None = None) -> str:
    """A table cell for a failed plan: for an infeasible budget, the lowest peak chunkc
    reaches (an estimate), the node holding it and the largest values held in full there;
    otherwise the error itself."""
    lowest = getattr(exc, "lowest_peak_bytes", None)
    if lowest is None:
        return short_error(exc)
    share = f" = {pct(lowest / reference_bytes)} of the unchunked peak" if reference_bytes else ""
    held = list(getattr(exc, "held", {}).items())[:3]  # the largest values held in full there
    whole = ("; held in full: " + ", ".join(f"`{name}` {mib(nbytes)} MiB" for name, nbytes in held)) if held else ""
    return f"infeasible: lowest reachable ≈ {mib(lowest)} MiB{share}, at `{getattr(exc, 'peak_node', '')}`{whole}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the doc


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def current_section(doc: Path, name: str) -> str:
    """Section ``name`` of ``doc`` as last written, markers excluded ('' when absent)."""
    text = doc.read_text() if doc.exists() else ""
    start, end = markers(name)
    if start not in text or end not in text:
        return ""
    return text.split(start, 1)[1].split(end, 1)[0]


def stamped_at(section: str) -> str | None:
    """The UTC time in a section's stamp line (see :func:`stamp`)."""
    found = re.search(r"\*Produced by `[^`]*` on ([0-9-]+ [0-9:]+ UTC)", section)
    return found.group(1) if found else None


def stamp(command: str, threads: int | None, seconds: float | None = None) -> str:
    took = f" The section took {seconds / 60:.1f} min." if seconds is not None else ""
    return (f"*Produced by `{command}` on {utc_now()}; machine: {machine_line(threads)}.{took}*")


def replace_section(text: str, name: str, body: str, order: Sequence[str] = SECTION_ORDER) -> str:
    """``text`` with section ``name`` set to ``body`` (markers added here).

    An existing section is replaced in place.  A new one goes before the first section
    that comes after it in ``order`` and is present, else at the end.  Everything
    outside the section is kept byte for byte.
    """
    start, end = markers(name)
    block = f"{start}\n{body.strip(chr(10))}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + block + rest.split(end, 1)[1]
    later = list(order)[list(order).index(name) + 1:] if name in order else []
    for other in later:
        other_start = markers(other)[0]
        if other_start in text:
            head, rest = text.split(other_start, 1)
            return head + block + "\n\n" + other_start + rest
    return text.rstrip("\n") + "\n\n" + block + "\n"


def order_sections(text: str, order: Sequence[str] = SECTION_ORDER) -> str:
    """The known sections moved, unchanged, into ``order`` right after the intro; any other
    text stays after them."""
    blocks: dict[str, str] = {}
    for name in order:
        start, end = markers(name)
        if start in text and end in text:
            head, rest = text.split(start, 1)
            body, tail = rest.split(end, 1)
            blocks[name] = start + body + end
            text = head.rstrip("\n") + "\n\n" + tail.lstrip("\n")
    if INTRO_END in text:
        head, tail = text.split(INTRO_END, 1)
        head += INTRO_END
    else:
        head, tail = "", text
    parts = [head.strip("\n")] + [blocks[n] for n in order if n in blocks] + [tail.strip("\n")]
    return "\n\n".join(p for p in parts if p) + "\n"


def write_section(name: str, body: str, settings: Settings, seconds: float | None = None) -> Path:
    """Rewrite section ``name`` of the doc (created with its intro if missing), stamped."""
    doc = settings.doc
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    text = ensure_intro(text)
    full = body.rstrip("\n") + "\n\n" + stamp(settings.command, settings.threads, seconds)
    text = order_sections(replace_section(text, name, full))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc


INTRO = """# Benchmarks

Every figure below was produced by the scripts in `benchmarks/`; none is typed in by hand.
Reproduce everything with one command (sized to finish in about 40 minutes on a 2-core CPU):

```bash
./run.sh bench                      # = python -m benchmarks
python -m benchmarks memory-speed   # one section (or several, by name)
python -m benchmarks --quick        # a smoke run with small sizes: not figures to quote
```

Each section is rewritten in place between `<!-- name:start -->` and `<!-- name:end -->`
markers and says which command produced it, when (UTC) and on what machine.

{last_run}

| section | question |
|---|---|
| [memory-speed](#activation-memory-against-speed) | activation memory and speed of chunkc's plans at budgets of 100–10% of the unchunked peak (GPT-2, ViT, Evoformer, UNet) |
| [cost-model](#cost-model-predicted-against-measured-time) | the cost model's predicted slowdown of every memory-speed plan beside the measured one (this machine's kernel table) |
| [regret](#regret-of-the-selection) | the plan chunkc chooses timed against the other plans its search makes under the same budget |
| [inductor](#composition-with-torchcompile-inductor) | chunked programs compiled with `torch.compile` (Inductor): memory cut and time against the compiled unchunked program and model |
| [library-defaults](#models-as-users-run-them) | transformers and diffusers models with their library defaults (SDPA, library masks, rotary and relative positions, a conditional UNet): the lowest peak chunkc reaches, plans at 50% and 20%, outputs against eager |
| [max-length](#breaking-the-memory-wall) | the longest input that fits a fixed activation budget, unchunked against chunkc |
| [expert-chunking](#against-expert-chunking) | the Evoformer chunked by hand the way OpenFold does it, against chunkc at the same memory |
| [fused-attention](#with-fused-attention) | models using `scaled_dot_product_attention`: how much more chunkc removes |
| [compile-speed](#compiler-speed) | search time against the number of GPT-2 layers (1 to 48); import time against torch.export |
| [eager-parity](#the-generated-program-against-eager-pytorch) | the unchunked generated program against eager PyTorch on every zoo model, and the lowering choices behind it |
| [training](#training) | a GPT-2 training step at L = 2048: eager, per-block `torch.utils.checkpoint`, both with mini-sequence MLPs, and chunkc at 20%; the longest trainable sequence under eager's memory |
| [backend-speed](#speed-of-the-generated-pytorch-code-cpu) | the generated PyTorch program against eager PyTorch |
| [memory-accuracy](#memory-estimate-vs-measured-peak) | the memory estimate against the measured peak |
| [gpu](#on-a-gpu) | CuPy and PyTorch-CUDA programs on a GPU: measured peak against the GPU estimate, chunked against unchunked time (`python -m benchmarks.gpu.run`) |
| [fuzz](#differential-fuzzing) | random graphs at random budgets: crashes, wrong values, broken budgets, off estimates, non-monotone or self-contradicting answers |

How things are measured, everywhere:

- *Activation memory* is the peak of bytes allocated during one call, inputs and weights
  excluded, outputs included, measured with `chunkc.measure_peak` (PyTorch on the CPU: every
  block the CPU allocator hands out, kernel temporaries included, from the profiler's memory
  events; NumPy: tracemalloc; see docs/memory.md).  Sections stamped before 2026-11-28 were
  measured at the storage level (every storage an ATen op returns, kernel temporaries not
  seen): rerun them for figures with kernel temporaries.  Estimates, where shown, are
  `chunkc.estimate_memory` and are labelled as such.
- *Speed* is only ever given as a ratio of two programs timed interleaved in one process
  (A B A B …, or all variants in rotating order each round, after an untimed warm-up round),
  the median of the per-round ratios with its range in brackets; absolute times on a shared
  machine are not comparable from one run to the next.  The only absolute times are the
  compiler's own search times.
- Budgets are fractions of the *measured* unchunked peak of the generated program, passed to
  `chunkc.autochunk` in bytes with `backend="torch"`.
"""

INTRO_START, INTRO_END = markers("intro")
LAST_START, LAST_END = markers("last-run")


def ensure_intro(text: str, last_run: str | None = None) -> str:
    """Put the intro (between intro markers) at the top of ``text``, or refresh it there.

    The intro's line about the last full run is kept unless ``last_run`` replaces it."""
    if last_run is None and LAST_START in text and LAST_END in text:
        last_run = text.split(LAST_START, 1)[1].split(LAST_END, 1)[0].strip()
    last = f"{LAST_START}\n{last_run or 'No full run of the suite is recorded yet.'}\n{LAST_END}"
    block = f"{INTRO_START}\n{INTRO.strip().format(last_run=last)}\n{INTRO_END}"
    if INTRO_START in text and INTRO_END in text:
        head, rest = text.split(INTRO_START, 1)
        return head + block + rest.split(INTRO_END, 1)[1]
    body = text
    if body.startswith("# Benchmarks"):
        body = body[len("# Benchmarks"):]
    return block + "\n\n" + body.lstrip("\n")


def record_full_run(settings: Settings, seconds: float) -> None:
    """Note in the intro how long the last run of every section took."""
    text = settings.doc.read_text() if settings.doc.exists() else "# Benchmarks\n"
    line = (f"Last full run: `{settings.command}` took {seconds / 60:.0f} min, finished {utc_now()}; "
            f"{machine_line(settings.threads)}.")
    settings.doc.write_text(ensure_intro(text, line))


# --------------------------------------------------------------------------- plots


def save_figure(fig, name: str, settings: Settings) -> str:
    """Save a matplotlib figure as docs/img/NAME.png; the doc's relative link to it."""
    settings.img.mkdir(parents=True, exist_ok=True)
    path = settings.img / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return os.path.relpath(path, settings.doc.parent)


def new_figure(width: float = 6.4, height: float = 4.0):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(width, height))


@dataclass
class SectionResult:
    """What a section hands back to the driver: its markdown body and any failures."""

    body: str
    failures: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the benchmark models


@dataclass(frozen=True)
class BenchModel:
    """A zoo model as the benchmarks use it: a factory and what its dynamic size means."""

    key: str  # "gpt2", "vit", "evoformer", "unet"
    label: str  # for tables
    factory: Callable[[], Any]  # -> chunkc.zoo.ModelCase
    size_name: str  # "L", "image side", "N"
    config: str  # the model's size, for the tables

    def case(self):
        return self.factory()


def unet_explicit_attention(**kwargs):
    """The zoo UNet with diffusers' classic attention processor (bmm + softmax, as the AutoChunk
    paper's UNet), instead of its default fused scaled_dot_product_attention."""
    from diffusers.models.attention_processor import Attention, AttnProcessor

    from chunkc.zoo import unet
    case = unet(**kwargs)
    for m in case.module.modules():
        if isinstance(m, Attention):
            m.set_processor(AttnProcessor())
    case.name += "_bmm"
    case.description += ", explicit (bmm + softmax) attention"
    return case


def bench_models() -> dict[str, BenchModel]:
    """The four models of the paper's evaluation, sized for a 2-core CPU."""
    from chunkc import zoo
    return {
        "gpt2": BenchModel(
            "gpt2", "GPT-2 (prefill)",
            lambda: zoo.gpt2(n_layer=2, n_embd=256, n_head=4, n_positions=16384),
            "L", "transformers GPT2Model, 2 layers, n_embd 256, 4 heads, eager attention"),
        "vit": BenchModel(
            "vit", "ViT",
            lambda: zoo.vit(n_layer=2, hidden=256, heads=8, patch=16, max_side=2048),
            "image side", "transformers ViTModel, 2 layers, hidden 256, 8 heads, patch 16 "
                          "((side/16)^2 + 1 tokens), eager attention"),
        "evoformer": BenchModel(
            "evoformer", "Evoformer block",
            lambda: zoo.evoformer(max_res=1024),
            "N", "one AlphaFold-2 Evoformer block, c_m 32, c_z 16, 8 sequences, 4 MSA / 2 pair heads"),
        "unet": BenchModel(
            "unet", "UNet",
            lambda: unet_explicit_attention(max_side=512),
            "image side", "diffusers UNet2DModel, blocks (32, 64), attention in the 64-channel blocks "
                          "(8 heads), explicit attention"),
    }
