"""A tiny pre-LayerNorm transformer stack in plain PyTorch (the model the AutoChunk reference
implementation was measured on in PAPER.md: d=256, 4 heads).

Input: hidden states x [B, L, d] (no embedding), output: [B, L, d]. Attention is explicit
`softmax(q @ k^T * scale) @ v` ("eager") or `F.scaled_dot_product_attention` ("sdpa").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_KINDS = ("eager", "sdpa")


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, attn: str = "eager", causal: bool = False) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"SelfAttention: d={d} is not divisible by heads={heads}")
        if attn not in ATTENTION_KINDS:
            raise ValueError(f"SelfAttention: attn must be one of {ATTENTION_KINDS}, got {attn!r}")
        self.heads, self.attn, self.causal = heads, attn, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # [B, H, L, c]
        if self.attn == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
            if self.causal:
                n = x.shape[1]
                keep = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
                scores = scores.masked_fill(~keep, float("-inf"))
            o = torch.softmax(scores, dim=-1) @ v
        return self.proj(o.transpose(1, 2).flatten(-2))


class PreLNBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)) with a 4x GELU MLP."""

    def __init__(self, d: int, heads: int, attn: str = "eager", causal: bool = False) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads, attn, causal)
        self.ln_2 = nn.LayerNorm(d)
        self.fc_1 = nn.Linear(d, 4 * d)
        self.fc_2 = nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.fc_2(F.gelu(self.fc_1(self.ln_2(x))))


class PreLNTransformer(nn.Module):
    """`n_layer` pre-LN blocks and a final LayerNorm."""

    def __init__(
        self, d: int = 256, heads: int = 4, n_layer: int = 2, attn: str = "eager", causal: bool = False
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(PreLNBlock(d, heads, attn, causal) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)
