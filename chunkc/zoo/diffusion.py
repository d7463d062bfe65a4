"""A conditional diffusion UNet as users run it: diffusers UNet2DConditionModel with its
defaults (SDPA attention processor, GroupNorm, cross-attention on text states), random
weights from a small config. See docs/models.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .case import ModelCase, inference_module, make_dim, seeded_generator


class ConditionalUNetSample(nn.Module):
    """Calls a UNet2DConditionModel with (sample, timestep, encoder_hidden_states) and
    returns the predicted sample only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def unet_cond(
    block_out_channels: tuple[int, ...] = (32, 64, 64),
    cross_attention_levels: int = 1,
    layers_per_block: int = 1,
    norm_num_groups: int = 8,
    attention_head_dim: int = 8,
    cross_attention_dim: int = 32,
    text_length: int = 77,
    channels: int = 4,
    max_side: int = 512,
    seed: int = 0,
) -> ModelCase:
    """diffusers UNet2DConditionModel; (sample [1, C, H, H], timestep [1], text states
    [1, text_length, cross_attention_dim]) -> sample [1, C, H, H].

    The last `cross_attention_levels` resolutions (the lowest) use CrossAttnDownBlock2D /
    CrossAttnUpBlock2D (self-attention, cross-attention on the text states, a feed-forward),
    the others plain ResNet blocks; the mid block (UNetMidBlock2DCrossAttn) attends too.
    Attention sits at the low resolutions so that one call at H = 256 takes seconds on a CPU
    (at H/2 it would attend over 16384 positions). H is a multiple of
    2**(len(block_out_channels) - 1).
    """
    from diffusers import UNet2DConditionModel

    n = len(block_out_channels)
    if not 0 <= cross_attention_levels <= n:
        raise ValueError(f"unet_cond: cross_attention_levels must be in [0, {n}], got {cross_attention_levels}")
    attends = [i >= n - cross_attention_levels for i in range(n)]
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends))
    multiple = 2 ** (n - 1)
    torch.manual_seed(seed)
    model = UNet2DConditionModel(
        sample_size=max_side,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(block_out_channels),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups,
        attention_head_dim=attention_head_dim,
        cross_attention_dim=cross_attention_dim,
        dropout=0.0,
    )
    module = inference_module(ConditionalUNetSample(model))

    def make_inputs(size: int) -> tuple[Tensor, Tensor, Tensor]:
        g = seeded_generator(seed + size)
        sample = torch.randn(1, channels, size, size, generator=g)
        text = torch.randn(1, text_length, cross_attention_dim, generator=seeded_generator(seed))
        return (sample, torch.tensor([10.0]), text)

    def dynamic_shapes() -> tuple[dict[int, Any], None, None]:
        side = make_dim("h", 2 * multiple, max_side, multiple=multiple)
        return ({2: side, 3: side}, None, None)

    return ModelCase(
        name=f"unet_cond_{'x'.join(map(str, block_out_channels))}",
        module=module,
        make_inputs=make_inputs,
        dynamic_shapes=dynamic_shapes,
        dynamic_name="h",
        size_multiple=multiple,
        test_sizes=(4 * multiple, 6 * multiple),
        bench_sizes=(256,) if max_side >= 256 else (max_side,),
        min_size=2 * multiple,
        max_size=max_side,
        description=(f"UNet2DConditionModel blocks={block_out_channels}, cross-attention at the lowest "
                     f"{cross_attention_levels} level(s), text [1, {text_length}, {cross_attention_dim}]"),
        config=dict(block_out_channels=tuple(block_out_channels), cross_attention_levels=cross_attention_levels,
                    layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
                    attention_head_dim=attention_head_dim, cross_attention_dim=cross_attention_dim,
                    text_length=text_length, channels=channels, max_side=max_side),
    )
