"""An AlphaFold-2 style Evoformer block in plain PyTorch, written from the algorithm
descriptions of the AlphaFold 2 supplement (Jumper et al., 2021, Algorithms 6-15).

Inference only (no dropout, no masks). Attention is written as explicit
`softmax(q @ k^T * scale + bias) @ v` so that an ATen decomposition of the block stays simple.

Every sub-module takes `chunk_size`: when set, it runs its work over slices of a batch-like
axis through `chunk_apply`, the way OpenFold chunks AlphaFold by hand. Outputs are the same
as the unchunked block (up to float rounding).

Shapes: msa m [B, S, N, c_m] (S sequences, N residues), pair z [B, N, N, c_z].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .chunking import chunk_apply


@dataclass(frozen=True)
class EvoformerConfig:
    c_m: int = 32  # MSA channels
    c_z: int = 16  # pair channels
    heads_msa: int = 4
    heads_pair: int = 2
    c_hidden_msa_att: int = 8  # per-head width, MSA attention
    c_hidden_pair_att: int = 8  # per-head width, triangle attention
    c_hidden_opm: int = 8  # outer product mean projection width
    c_hidden_mul: int = 16  # triangle multiplication width
    transition_n: int = 4  # transition expansion factor


class GatedAttention(nn.Module):
    """Multi-head attention along axis -2 with sigmoid gating (the core of Algorithms 7, 8, 13, 14).

    x: [*, Q, c_in]; optional additive biases broadcastable to [*, H, Q, Q]. Axis -2 is both
    queries and keys; all leading axes are independent (batch-like).
    """

    def __init__(self, c_in: int, c_hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.c_hidden = heads, c_hidden
        width = heads * c_hidden
        self.linear_q = nn.Linear(c_in, width, bias=False)
        self.linear_k = nn.Linear(c_in, width, bias=False)
        self.linear_v = nn.Linear(c_in, width, bias=False)
        self.linear_g = nn.Linear(c_in, width)
        self.linear_o = nn.Linear(width, c_in)

    def _heads(self, t: Tensor) -> Tensor:
        # [*, Q, H*c] -> [*, H, Q, c]
        return t.unflatten(-1, (self.heads, self.c_hidden)).transpose(-2, -3)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        q = self._heads(self.linear_q(x)) * (1.0 / math.sqrt(self.c_hidden))
        k = self._heads(self.linear_k(x))
        v = self._heads(self.linear_v(x))
        logits = q @ k.transpose(-1, -2)  # [*, H, Q, K]
        if bias is not None:
            logits = logits + bias
        weights = torch.softmax(logits, dim=-1)
        o = (weights @ v).transpose(-2, -3).flatten(-2)  # [*, Q, H*c]
        return self.linear_o(torch.sigmoid(self.linear_g(x)) * o)


class MSARowAttentionWithPairBias(nn.Module):
    """Algorithm 7: each MSA row attends over residues, biased by a projection of the pair."""

    def __init__(self, cfg: EvoformerConfig) -> None:
        super().__init__()
        self.norm_m = nn.LayerNorm(cfg.c_m)
        self.norm_z = nn.LayerNorm(cfg.c_z)
        self.linear_b = nn.Linear(cfg.c_z, cfg.heads_msa, bias=False)
        self.attention = GatedAttention(cfg.c_m, cfg.c_hidden_msa_att, cfg.heads_msa)
        self.chunk_size: int | None = None

    def _rows(self, m: Tensor, bias: Tensor) -> Tensor:
        return self.attention(self.norm_m(m), bias)

    def forward(self, m: Tensor, z: Tensor) -> Tensor:
        # b_ij^h from the pair, shared by every MSA row: [B, 1, H, N, N]
        bias = self.linear_b(self.norm_z(z)).permute(0, 3, 1, 2).unsqueeze(1)
        return chunk_apply(self._rows, (m,), (bias,), axis=1, chunk_size=self.chunk_size)


class MSAColumnAttention(nn.Module):
    """Algorithm 8: each MSA column (residue) attends over the sequences."""

    def __init__(self, cfg: EvoformerConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.c_m)
        self.attention = GatedAttention(cfg.c_m, cfg.c_hidden_msa_att, cfg.heads_msa)
        self.chunk_size: int | None = None

    def _columns(self, mt: Tensor) -> Tensor:
        return self.attention(self.norm(mt))

    def forward(self, m: Tensor) -> Tensor:
        mt = m.transpose(1, 2)  # [B, N, S, c_m]: attend along S
        out = chunk_apply(self._columns, (mt,), axis=1, chunk_size=self.chunk_size)
        return out.transpose(1, 2)


class Transition(nn.Module):
    """Algorithms 9 and 15: LayerNorm, expand by n, ReLU, project back."""

    def __init__(self, c: int, n: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.linear_1 = nn.Linear(c, n * c)
        self.linear_2 = nn.Linear(n * c, c)
        self.chunk_size: int | None = None

    def _transition(self, x: Tensor) -> Tensor:
        return self.linear_2(torch.relu(self.linear_1(self.norm(x))))

    def forward(self, x: Tensor) -> Tensor:
        return chunk_apply(self._transition, (x,), axis=1, chunk_size=self.chunk_size)


class OuterProductMean(nn.Module):
    """Algorithm 10: z_ij += Linear(flatten(mean_s a_si (x) b_sj))."""

    def __init__(self, cfg: EvoformerConfig) -> None:
        super().__init__()
        c = cfg.c_hidden_opm
        self.norm = nn.LayerNorm(cfg.c_m)
        self.linear_a = nn.Linear(cfg.c_m, c)
        self.linear_b = nn.Linear(cfg.c_m, c)
        self.linear_out = nn.Linear(c * c, cfg.c_z)
        self.chunk_size: int | None = None

    def _rows(self, a: Tensor, b: Tensor) -> Tensor:
        # a: [B, S, I, c] (a slice of residues i), b: [B, S, J, c] (all residues j)
        outer = torch.einsum("bsic,bsjd->bijcd", a, b) / a.shape[1]
        return self.linear_out(outer.flatten(-2))

    def forward(self, m: Tensor) -> Tensor:
        m = self.norm(m)
        a, b = self.linear_a(m), self.linear_b(m)
        return chunk_apply(self._rows, (a,), (b,), axis=2, out_axis=1, chunk_size=self.chunk_size)


class TriangleMultiplication(nn.Module):
    """Algorithms 11 (outgoing: sum_k a_ik b_jk) and 12 (incoming: sum_k a_ki b_kj).

    Not chunked: like OpenFold's default inference path, it runs whole.
    """

    def __init__(self, cfg: EvoformerConfig, outgoing: bool) -> None:
        super().__init__()
        c = cfg.c_hidden_mul
        self.outgoing = outgoing
        self.norm_in = nn.LayerNorm(cfg.c_z)
        self.linear_a_g = nn.Linear(cfg.c_z, c)
        self.linear_a_p = nn.Linear(cfg.c_z, c)
        self.linear_b_g = nn.Linear(cfg.c_z, c)
        self.linear_b_p = nn.Linear(cfg.c_z, c)
        self.linear_g = nn.Linear(cfg.c_z, cfg.c_z)
        self.norm_out = nn.LayerNorm(c)
        self.linear_z = nn.Linear(c, cfg.c_z)
        self.chunk_size: int | None = None  # accepted for uniformity; unused

    def forward(self, z: Tensor) -> Tensor:
        z = self.norm_in(z)
        a = torch.sigmoid(self.linear_a_g(z)) * self.linear_a_p(z)
        b = torch.sigmoid(self.linear_b_g(z)) * self.linear_b_p(z)
        if self.outgoing:
            x = torch.einsum("bikc,bjkc->bijc", a, b)
        else:
            x = torch.einsum("bkic,bkjc->bijc", a, b)
        return torch.sigmoid(self.linear_g(z)) * self.linear_z(self.norm_out(x))


class TriangleAttention(nn.Module):
    """Algorithms 13 (around the starting node) and 14 (around the ending node).

    Starting node: o_ij = sum_k softmax_k(q_ij . k_ik + b_jk) v_ik (row i attends along j).
    The ending-node form equals the starting-node form applied to the transposed pair.
    """

    def __init__(self, cfg: EvoformerConfig, starting: bool) -> None:
        super().__init__()
        self.starting = starting
        self.norm = nn.LayerNorm(cfg.c_z)
        self.linear_b = nn.Linear(cfg.c_z, cfg.heads_pair, bias=False)
        self.attention = GatedAttention(cfg.c_z, cfg.c_hidden_pair_att, cfg.heads_pair)
        self.chunk_size: int | None = None

    def _rows(self, zn: Tensor, bias: Tensor) -> Tensor:
        return self.attention(zn, bias)

    def forward(self, z: Tensor) -> Tensor:
        if not self.starting:
            z = z.transpose(1, 2)
        zn = self.norm(z)
        bias = self.linear_b(zn).permute(0, 3, 1, 2).unsqueeze(1)  # b_jk: [B, 1, H, J, K]
        out = chunk_apply(self._rows, (zn,), (bias,), axis=1, chunk_size=self.chunk_size)
        return out if self.starting else out.transpose(1, 2)


class EvoformerBlock(nn.Module):
    """Algorithm 6 (one Evoformer block): MSA stack, communication, pair stack; all residual."""

    def __init__(self, cfg: EvoformerConfig) -> None:
        super().__init__()
        self.msa_row = MSARowAttentionWithPairBias(cfg)
        self.msa_col = MSAColumnAttention(cfg)
        self.msa_transition = Transition(cfg.c_m, cfg.transition_n)
        self.outer_product_mean = OuterProductMean(cfg)
        self.tri_mul_out = TriangleMultiplication(cfg, outgoing=True)
        self.tri_mul_in = TriangleMultiplication(cfg, outgoing=False)
        self.tri_att_start = TriangleAttention(cfg, starting=True)
        self.tri_att_end = TriangleAttention(cfg, starting=False)
        self.pair_transition = Transition(cfg.c_z, cfg.transition_n)

    def forward(self, m: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        m = m + self.msa_row(m, z)
        m = m + self.msa_col(m)
        m = m + self.msa_transition(m)
        z = z + self.outer_product_mean(m)
        z = z + self.tri_mul_out(z)
        z = z + self.tri_mul_in(z)
        z = z + self.tri_att_start(z)
        z = z + self.tri_att_end(z)
        z = z + self.pair_transition(z)
        return m, z


class Evoformer(nn.Module):
    """A stack of Evoformer blocks; `chunk_size` (None = unchunked) applies to every block."""

    def __init__(self, cfg: EvoformerConfig, n_blocks: int = 1, chunk_size: int | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.blocks = nn.ModuleList(EvoformerBlock(cfg) for _ in range(n_blocks))
        self.set_chunk_size(chunk_size)

    def set_chunk_size(self, chunk_size: int | None) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"Evoformer: chunk_size must be None or >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        for sub in self.modules():
            if hasattr(sub, "chunk_size") and sub is not self:
                sub.chunk_size = chunk_size

    def forward(self, msa: Tensor, pair: Tensor) -> tuple[Tensor, Tensor]:
        for block in self.blocks:
            msa, pair = block(msa, pair)
        return msa, pair
