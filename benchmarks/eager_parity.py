"""The unchunked generated PyTorch program against eager PyTorch, on every zoo model, and the
per-op lowering choices that decide it.

1. Models: the eager module (under ``torch.inference_mode``), the generated program of the
   imported graph, and the generated program after the ``canonicalize`` pass (what
   ``autochunk`` plans from), timed in rotating order each round.  Target: canonicalized
   generated / eager <= 1.02 on every model.
2. Lowering choices, each against the alternative it replaced: SDPA with the causal bool mask
   torch.export materializes vs ``is_causal=True``; transformers' ``repeat_kv`` copy of the
   key/value heads vs ``enable_gqa=True``.

    python -m benchmarks eager-parity
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable

from . import common as C

NAME = "eager-parity"
TARGET = 1.02


@dataclass(frozen=True)
class ParityModel:
    label: str
    factory: Callable  # () -> chunkc.zoo.ModelCase
    size: int
    quick_size: int


def parity_models() -> list[ParityModel]:
    from chunkc import zoo
    return [
        ParityModel("GPT-2, eager attention", lambda: zoo.gpt2(), 2048, 256),
        ParityModel("GPT-2, SDPA", lambda: zoo.gpt2(attn="sdpa"), 2048, 256),
        ParityModel("Llama (rotary, GQA, SDPA)", lambda: zoo.llama(), 2048, 256),
        ParityModel("BERT (padding mask, SDPA)", lambda: zoo.bert(), 2048, 256),
        ParityModel("T5 encoder (relative bias, SDPA)", lambda: zoo.t5_encoder(), 2048, 256),
        ParityModel("ViT", lambda: zoo.vit(), 512, 128),
        ParityModel("conditional UNet", lambda: zoo.unet_cond(), 256, 64),
        ParityModel("Evoformer block", lambda: zoo.evoformer(), 256, 64),
        ParityModel("pre-LN transformer", lambda: zoo.transformer(), 2048, 256),
    ]


@dataclass
class ModelRow:
    label: str
    size: int
    nodes: tuple[int, int] = (0, 0)  # imported, canonicalized
    raw: C.Ratio | None = None
    canonical: C.Ratio | None = None
    error: str = ""


def measure_model(m: ParityModel, settings: C.Settings) -> ModelRow:
    import chunkc
    from chunkc.passes.canonicalize import canonicalize
    case = m.factory()
    size = m.quick_size if settings.quick else m.size
    row = ModelRow(m.label, size)
    graph = C.import_case(case)
    canon = canonicalize(graph)
    row.nodes = (len(graph.nodes), len(canon.nodes))
    fns = {"eager": C.eager(case.module), "generated": chunkc.compile(graph, backend="torch"),
           "canonical": chunkc.compile(canon, backend="torch")}
    args = case.make_inputs(size)
    ratios = C.round_robin(fns, args, settings.rounds)
    row.raw, row.canonical = ratios["generated"], ratios["canonical"]
    return row


@dataclass
class ChoiceRow:
    choice: str
    size: int
    ratio: C.Ratio


def lowering_choices(settings: C.Settings) -> list[ChoiceRow]:
    """Each row: t(the lowering chunkc emits) / t(the one it replaced), interleaved."""
    import torch
    import torch.nn.functional as F
    rows = []
    heads, kv, dim = 4, 2, 32
    for length in ((256,) if settings.quick else (1024, 2048)):
        g = torch.Generator().manual_seed(length)
        q = torch.randn(1, heads, length, dim, generator=g)
        k = torch.randn(1, kv, length, dim, generator=g)
        v = torch.randn(1, kv, length, dim, generator=g)
        mask = torch.ones(length, length, dtype=torch.bool).tril_()[None, None]

        def repeat(x):
            return x[:, :, None].expand(1, kv, heads // kv, length, dim).reshape(1, heads, length, dim)

        kr, vr = repeat(k), repeat(v)
        with torch.inference_mode():
            causal = C.round_robin({
                "mask": lambda: F.scaled_dot_product_attention(q, kr, vr, attn_mask=mask),
                "is_causal": lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=True)}, (), settings.rounds)
            gqa = C.round_robin({
                "repeat_kv": lambda: F.scaled_dot_product_attention(q, repeat(k), repeat(v), is_causal=True),
                "enable_gqa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)},
                (), settings.rounds)
        rows.append(ChoiceRow("SDPA: `is_causal=True` / the causal bool mask", length, causal["is_causal"]))
        rows.append(ChoiceRow("SDPA: `enable_gqa=True` / `repeat_kv` copies", length, gqa["enable_gqa"]))
    return rows


def render(models: list[ModelRow], choices: list[ChoiceRow], settings: C.Settings) -> str:
    lines = ["## The generated program against eager PyTorch", "",
             "Each zoo model with its libraries' defaults, unchunked.  *generated*: `chunkc.compile` of the "
             "imported graph; *canonicalized*: after the `canonicalize` pass (causal masks proven to be "
             "`key <= query` become `is_causal=True`, key/value heads proven to be repeats become "
             "`enable_gqa=True`, all-true masks and all-zero biases that eager never builds are dropped; see "
             "docs/passes.md).  Time ratios against the eager module under "
             f"`torch.inference_mode`, median over {settings.rounds} rounds of the three programs in rotating "
             f"order (range in brackets), {settings.threads} torch thread(s).  Target: canonicalized / eager "
             f"≤ {TARGET}.", ""]
    table = []
    for r in models:
        if r.error:
            table.append([r.label, r.size, "–", r.error, "–", "–"])
            continue
        met = "yes" if r.canonical.median <= TARGET else "**no**"
        table.append([r.label, r.size, f"{r.nodes[0]} → {r.nodes[1]}", r.raw.cell(), r.canonical.cell(), met])
    lines += C.table(["model", "size", "nodes (imported → canonicalized)", "generated / eager",
                      "canonicalized / eager", f"≤ {TARGET}"], table)
    lines += ["", "### Lowering choices", "",
              "Each choice chunkc's lowering makes, timed against the alternative (4 query heads, 2 key/value "
              "heads, head size 32, causal; median of interleaved rounds; below 1: chunkc's choice is faster).", ""]
    lines += C.table(["choice", "L", "time ratio"], [[c.choice, c.size, c.ratio.cell()] for c in choices])
    return "\n".join(lines + [""])


def run(settings: C.Settings) -> C.SectionResult:
    rows, failures = [], []
    for m in parity_models():
        try:
            row = measure_model(m, settings)
            C.log(f"[{NAME}] {m.label}: generated {row.raw.median:.3f}, canonicalized {row.canonical.median:.3f}")
        except Exception as exc:
            import traceback
            traceback.print_exc()
            row = ModelRow(m.label, m.quick_size if settings.quick else m.size, error=C.short_error(exc))
            failures.append(f"{NAME} {m.label}: {row.error}")
        rows.append(row)
        gc.collect()
    return C.SectionResult(render(rows, lowering_choices(settings), settings), failures)
