"""The chunkc model zoo: small, randomly initialised models for tests and benchmarks.

Every factory returns a `ModelCase` (module, inputs at a size, torch.export dynamic shapes);
docs/models.md describes each one. transformers/diffusers are imported only by the factories
that need them.
"""

from .case import ModelCase, make_dim
from .chunking import chunk_apply
from .evoformer import Evoformer, EvoformerConfig
from .transformer import PreLNTransformer
from .zoo import evoformer, evoformer_chunked, gpt2, transformer, unet, vit

__all__ = [
    "ModelCase",
    "make_dim",
    "chunk_apply",
    "Evoformer",
    "EvoformerConfig",
    "PreLNTransformer",
    "evoformer",
    "evoformer_chunked",
    "gpt2",
    "transformer",
    "unet",
    "vit",
]
