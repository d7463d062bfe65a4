"""Factories of the test and benchmark model zoo. Each returns a `ModelCase`.

Weights are random (seeded with `torch.manual_seed(seed)`), built from configs: nothing is
ever downloaded. Modules are float32 and in eval mode. See docs/models.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .case import ModelCase, inference_module, make_dim, seeded_generator, sequence_case, token_ids
from .evoformer import Evoformer, EvoformerConfig
from .transformer import PreLNTransformer


# --------------------------------------------------------------------------- plain PyTorch


def transformer(
    n_layer: int = 2,
    d: int = 256,
    heads: int = 4,
    attn: str = "eager",
    causal: bool = False,
    max_len: int = 16384,
    seed: int = 0,
) -> ModelCase:
    """The tiny pre-LN transformer stack (PAPER.md's measurement model); input x [1, L, d]."""
    torch.manual_seed(seed)
    module = inference_module(PreLNTransformer(d, heads, n_layer, attn, causal))

    def make_inputs(size: int) -> tuple[Tensor]:
        return (torch.randn(1, size, d, generator=seeded_generator(seed + size)),)

    return sequence_case(
        f"transformer_{n_layer}l_{attn}", module, make_inputs, 1, max_len, (1024, 2048, 4096),
        f"pre-LN transformer, d={d}, {heads} heads, {n_layer} layers, {attn} attention",
        dict(n_layer=n_layer, d=d, heads=heads, attn=attn, causal=causal, max_len=max_len))


def evoformer(
    c_m: int = 32,
    c_z: int = 16,
    heads_msa: int = 4,
    heads_pair: int = 2,
    n_blocks: int = 1,
    n_seq: int = 8,
    chunk_size: int | None = None,
    max_res: int = 1024,
    seed: int = 0,
) -> ModelCase:
    """AlphaFold-style Evoformer block(s); inputs msa [1, S, N, c_m], pair [1, N, N, c_z].

    `chunk_size` set gives the OpenFold-style hand-chunked variant (same weights for the
    same seed, same outputs); it runs eagerly but is not meant for torch.export (its Python
    loop depends on N).
    """
    cfg = EvoformerConfig(c_m=c_m, c_z=c_z, heads_msa=heads_msa, heads_pair=heads_pair)
    torch.manual_seed(seed)
    module = inference_module(Evoformer(cfg, n_blocks=n_blocks, chunk_size=chunk_size))

    def make_inputs(size: int) -> tuple[Tensor, Tensor]:
        g = seeded_generator(seed + size)
        return (torch.randn(1, n_seq, size, c_m, generator=g), torch.randn(1, size, size, c_z, generator=g))

    def dynamic_shapes() -> tuple[dict[int, Any], dict[int, Any]]:
        n = make_dim("N", 2, max_res)
        return ({2: n}, {1: n, 2: n})

    suffix = "" if chunk_size is None else f"_chunk{chunk_size}"
    return ModelCase(
        name=f"evoformer{suffix}",
        module=module,
        make_inputs=make_inputs,
        dynamic_shapes=dynamic_shapes,
        dynamic_name="N",
        test_sizes=(12, 20),
        bench_sizes=(128, 256, 384, 512),
        max_size=max_res,
        description=f"Evoformer x{n_blocks}, c_m={c_m}, c_z={c_z}, S={n_seq}, chunk_size={chunk_size}",
        config=dict(c_m=c_m, c_z=c_z, heads_msa=heads_msa, heads_pair=heads_pair, n_blocks=n_blocks,
                    n_seq=n_seq, chunk_size=chunk_size, max_res=max_res),
    )


def evoformer_chunked(chunk_size: int = 4, **kwargs: Any) -> ModelCase:
    """The OpenFold-style hand-chunked Evoformer (see `evoformer`)."""
    return evoformer(chunk_size=chunk_size, **kwargs)


# --------------------------------------------------------------------------- transformers


class LastHiddenState(nn.Module):
    """Wraps a Hugging Face encoder so that it returns only `last_hidden_state` (one tensor)."""

    def __init__(self, model: nn.Module, **call_kwargs: Any) -> None:
        super().__init__()
        self.model = model
        self.call_kwargs = call_kwargs

    def forward(self, x: Tensor) -> Tensor:
        # one named positional input, so that torch.export's dynamic_shapes spec is ({axis: dim},)
        return self.model(x, **self.call_kwargs).last_hidden_state


def gpt2(
    n_layer: int = 2,
    n_embd: int = 128,
    n_head: int = 4,
    attn: str = "eager",
    vocab_size: int = 1000,
    n_positions: int = 8192,
    seed: int = 0,
) -> ModelCase:
    """transformers GPT2Model (prefill, no KV cache); input_ids [1, L] -> last_hidden_state [1, L, n_embd]."""
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        use_cache=False,
        attn_implementation=attn,
        bos_token_id=vocab_size - 1,  # the defaults (50256) lie outside a small vocabulary
        eos_token_id=vocab_size - 1,
    )
    torch.manual_seed(seed)
    module = inference_module(LastHiddenState(GPT2Model(config), use_cache=False))
    return sequence_case(
        f"gpt2_{n_layer}l_{attn}", module, token_ids(vocab_size, seed), 1, n_positions, (1024, 2048, 4096),
        f"GPT-2 {n_layer} layers, n_embd={n_embd}, {n_head} heads, {attn} attention",
        dict(n_layer=n_layer, n_embd=n_embd, n_head=n_head, attn=attn, vocab_size=vocab_size, n_positions=n_positions))


def _cropped_vit_embeddings_class() -> type:
    from transformers.models.vit.modeling_vit import ViTEmbeddings

    class CroppedViTEmbeddings(ViTEmbeddings):
        """ViT embeddings whose position table covers the largest image (config.image_size);
        a smaller image uses its top-left h x w grid of it. Unlike bicubic interpolation this
        exports to plain slicing, with no guard on the grid size."""

        def interpolate_pos_encoding(self, embeddings: Tensor, height: int, width: int) -> Tensor:
            grid_h = self.image_size[0] // self.patch_size
            grid_w = self.image_size[1] // self.patch_size
            dim = self.position_embeddings.shape[-1]
            table = self.position_embeddings[:, 1:].reshape(1, grid_h, grid_w, dim)
            patches = table[:, : height // self.patch_size, : width // self.patch_size].reshape(1, -1, dim)
            return torch.cat((self.position_embeddings[:, :1], patches), dim=1)

    return CroppedViTEmbeddings


def vit(
    n_layer: int = 2,
    hidden: int = 128,
    heads: int = 4,
    patch: int = 16,
    max_side: int = 1024,
    pos_embedding: str = "crop",
    attn: str = "eager",
    seed: int = 0,
) -> ModelCase:
    """transformers ViTModel, dynamic image side H = W (a multiple of `patch`);
    pixel_values [1, 3, H, H] -> last_hidden_state [1, (H/patch)^2 + 1, hidden].

    pos_embedding="crop" (default): the position table covers a max_side image and smaller
    images use its top-left grid (exports to slice/reshape/concat only). "interpolate": Hugging
    Face's bicubic interpolation of the table (`interpolate_pos_encoding=True`); the table's
    native grid is made one patch wider than max_side so that no exported size hits the
    early-return branch (which would otherwise become a guard). Bicubic upsampling has no
    chunkc op: it becomes an opaque node on the constant-only position path.
    """
    from transformers import ViTConfig, ViTModel

    if pos_embedding not in ("crop", "interpolate"):
        raise ValueError(f"vit: pos_embedding must be 'crop' or 'interpolate', got {pos_embedding!r}")
    if max_side % patch:
        raise ValueError(f"vit: max_side={max_side} is not a multiple of patch={patch}")
    native = max_side if pos_embedding == "crop" else max_side + patch
    config = ViTConfig(
        hidden_size=hidden,
        num_hidden_layers=n_layer,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        image_size=native,
        patch_size=patch,
        num_channels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation=attn,
    )
    torch.manual_seed(seed)
    model = ViTModel(config, add_pooling_layer=False)
    if pos_embedding == "crop":
        cropped = _cropped_vit_embeddings_class()(config)
        cropped.load_state_dict(model.embeddings.state_dict())
        model.embeddings = cropped
    module = inference_module(LastHiddenState(model, interpolate_pos_encoding=True))

    def make_inputs(size: int) -> tuple[Tensor]:
        return (torch.randn(1, 3, size, size, generator=seeded_generator(seed + size)),)

    def dynamic_shapes() -> tuple[dict[int, Any]]:
        side = make_dim("h", 2 * patch, max_side, multiple=patch)
        return ({2: side, 3: side},)

    return ModelCase(
        name=f"vit_{n_layer}l_{attn}_{pos_embedding}",
        module=module,
        make_inputs=make_inputs,
        dynamic_shapes=dynamic_shapes,
        dynamic_name="h",
        size_multiple=patch,
        test_sizes=(2 * patch, 3 * patch),
        bench_sizes=tuple(s for s in (256, 512, 768, 1024) if s <= max_side),
        min_size=2 * patch,
        max_size=max_side,
        description=f"ViT {n_layer} layers, hidden={hidden}, {heads} heads, patch={patch}, {pos_embedding} positions",
        config=dict(n_layer=n_layer, hidden=hidden, heads=heads, patch=patch, max_side=max_side,
                    pos_embedding=pos_embedding, attn=attn),
    )


# --------------------------------------------------------------------------- diffusers


class UNetSample(nn.Module):
    """Wraps a diffusers UNet2DModel so that it returns the `sample` tensor only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, sample: Tensor, timestep: Tensor) -> Tensor:
        return self.model(sample, timestep, return_dict=False)[0]


def unet(
    block_out_channels: tuple[int, ...] = (32, 64),
    attention: bool = True,
    layers_per_block: int = 1,
    norm_num_groups: int = 8,
    attention_head_dim: int = 8,
    channels: int = 3,
    max_side: int = 512,
    seed: int = 0,
) -> ModelCase:
    """diffusers UNet2DModel; (sample [1, C, H, H], timestep [1]) -> sample [1, C, H, H].

    The first block is a plain ResNet block, the others attention blocks
    (AttnDownBlock2D / AttnUpBlock2D) when `attention`. Every down block but the last halves
    the image, so H is a multiple of 2**(len(block_out_channels) - 1).
    """
    from diffusers import UNet2DModel

    n = len(block_out_channels)
    inner = "AttnDownBlock2D" if attention else "DownBlock2D"
    down = ("DownBlock2D",) + (inner,) * (n - 1)
    up = tuple("AttnUpBlock2D" if attention else "UpBlock2D" for _ in range(n - 1)) + ("UpBlock2D",)
    multiple = 2 ** (n - 1)
    torch.manual_seed(seed)
    model = UNet2DModel(
        sample_size=max_side,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(block_out_channels),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups,
        attention_head_dim=attention_head_dim,
        dropout=0.0,
    )
    module = inference_module(UNetSample(model))

    def make_inputs(size: int) -> tuple[Tensor, Tensor]:
        g = seeded_generator(seed + size)
        return (torch.randn(1, channels, size, size, generator=g), torch.tensor([10.0]))

    def dynamic_shapes() -> tuple[dict[int, Any], None]:
        side = make_dim("h", 2 * multiple, max_side, multiple=multiple)
        return ({2: side, 3: side}, None)

    return ModelCase(
        name=f"unet_{'x'.join(map(str, block_out_channels))}{'_attn' if attention else ''}",
        module=module,
        make_inputs=make_inputs,
        dynamic_shapes=dynamic_shapes,
        dynamic_name="h",
        size_multiple=multiple,
        test_sizes=(8 * multiple, 12 * multiple),
        bench_sizes=tuple(s for s in (64, 96, 128) if s <= max_side and s % multiple == 0),
        min_size=2 * multiple,
        max_size=max_side,
        description=f"UNet2DModel blocks={block_out_channels}, attention={attention}, groups={norm_num_groups}",
        config=dict(block_out_channels=tuple(block_out_channels), attention=attention,
                    layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
                    attention_head_dim=attention_head_dim, channels=channels, max_side=max_side),
    )
