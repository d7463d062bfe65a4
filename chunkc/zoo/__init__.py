"""The chunkc model zoo: small, randomly initialised models for tests and benchmarks.

Every factory returns a `ModelCase` (module, inputs at a size, torch.export dynamic shapes);
docs/models.md describes each one. transformers/diffusers are imported only by the factories
that need them (zoo.py: the first models; language.py and diffusion.py: models with their
libraries' defaults).
"""

from .case import ModelCase, inference_module, make_dim, seeded_generator
from .chunking import chunk_apply
from .evoformer import Evoformer, EvoformerConfig
from .transformer import PreLNTransformer
from .diffusion import unet_cond
from .language import bert, llama, t5_encoder
from .zoo import evoformer, evoformer_chunked, gpt2, transformer, unet, vit

__all__ = [
    "ModelCase",
    "make_dim",
    "inference_module",
    "seeded_generator",
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
    "llama",
    "bert",
    "t5_encoder",
    "unet_cond",
]
