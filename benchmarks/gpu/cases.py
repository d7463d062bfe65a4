"""The models the GPU benchmark runs, at what sizes, under which budgets.

Small configurations with long sequences: the activations dominate (attention scores grow
with the square of the sequence), the weights stay small enough for the repository, and each
kernel has enough work that a GPU is not bound by the host's kernel launches (many heads).  The
same saved graphs and plans run at ``size`` on the GPU and at ``dry_size`` in the CPU dry
run (the plans' chunk sizes are clipped to the extent at a smaller size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

DATA = Path(__file__).resolve().parent / "data"
BUDGETS = (0.5, 0.4, 0.2, 0.1)  # fractions of the unchunked estimated peak
MANIFEST = DATA / "manifest.json"


@dataclass(frozen=True)
class GpuCase:
    key: str  # folder name under data/
    label: str
    factory: Callable[[], Any]  # -> chunkc.zoo.ModelCase
    size: int  # the model's size on the GPU (sequence length, image side, residues)
    dry_size: int  # the size of the CPU dry run
    size_name: str
    config: str


def cases() -> dict[str, GpuCase]:
    from chunkc import zoo
    return {c.key: c for c in (
        GpuCase("gpt2", "GPT-2 (prefill)",
                lambda: zoo.gpt2(n_layer=2, n_embd=256, n_head=16, n_positions=8192), 8192, 128, "L",
                "transformers GPT2Model, 2 layers, n_embd 256, 16 heads, eager attention"),
        GpuCase("vit", "ViT",
                lambda: zoo.vit(n_layer=2, hidden=256, heads=16, patch=16, max_side=1280), 1280, 64, "image side",
                "transformers ViTModel, 2 layers, hidden 256, 16 heads, patch 16 ((side/16)^2 + 1 tokens), "
                "eager attention"),
        GpuCase("evoformer", "Evoformer block",
                lambda: zoo.evoformer(max_res=512), 512, 24, "N",
                "one AlphaFold-2 Evoformer block, c_m 32, c_z 16, 8 sequences, 4 MSA / 2 pair heads"),
    )}


def budget_name(budget: float) -> str:
    return f"plan_{round(budget * 100):02d}.json"
