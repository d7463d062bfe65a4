"""Language-model factories of the zoo, as users run them: transformers models with their
library defaults (SDPA attention, the library's own mask builders, rotary or relative
position encodings). Random weights from small configs; nothing is downloaded.

    llama()       LlamaModel: rotary embeddings, grouped-query attention, causal mask
    bert()        BertModel: learned positions, a padding mask from `attention_mask`
    t5_encoder()  T5EncoderModel: relative position bias from a bucket table

See docs/models.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .case import ModelCase, inference_module, sequence_case, token_ids
from .zoo import LastHiddenState

# Sequence models: benchmarks where activations dominate.
BENCH_LENGTHS = (2048, 4096)


def _sequence_case(name: str, module: nn.Module, make_inputs, n_inputs: int, max_len: int,
                   description: str, config: dict[str, Any]) -> ModelCase:
    """sequence_case at the lengths of BENCH_LENGTHS the model takes."""
    return sequence_case(name, module, make_inputs, n_inputs, max_len,
                         tuple(s for s in BENCH_LENGTHS if s <= max_len), description, config)


def llama(
    n_layer: int = 2,
    hidden: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 448,
    attn: str = "sdpa",
    vocab_size: int = 1000,
    max_positions: int = 8192,
    seed: int = 0,
) -> ModelCase:
    """transformers LlamaModel (prefill, no KV cache): rotary position embeddings, grouped-query
    attention (`kv_heads` < `heads`), RMSNorm, SwiGLU MLP, causal mask built by transformers.
    input_ids [1, L] -> last_hidden_state [1, L, hidden].  The MLP is 3.5x the hidden size, the
    ratio of Llama 3 8B and Mistral 7B (14336 / 4096); transformers' LlamaConfig default is
    11008 / 4096 = 2.69x."""
    from transformers import LlamaConfig, LlamaModel

    if heads % kv_heads:
        raise ValueError(f"llama: heads={heads} is not a multiple of kv_heads={kv_heads}")
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=n_layer,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        use_cache=False,
        attn_implementation=attn,
        bos_token_id=0,  # the defaults lie outside a small vocabulary
        eos_token_id=1,
        pad_token_id=2,
    )
    torch.manual_seed(seed)
    module = inference_module(LastHiddenState(LlamaModel(config), use_cache=False))
    return _sequence_case(
        f"llama_{n_layer}l_{attn}", module, token_ids(vocab_size, seed), 1, max_positions,
        f"LlamaModel {n_layer} layers, hidden={hidden}, {heads} heads / {kv_heads} kv heads, {attn} attention",
        dict(n_layer=n_layer, hidden=hidden, heads=heads, kv_heads=kv_heads, intermediate=intermediate,
             attn=attn, vocab_size=vocab_size, max_positions=max_positions),
    )


class MaskedEncoder(nn.Module):
    """Calls a Hugging Face encoder with (input_ids, attention_mask) and returns
    `last_hidden_state` only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def padded_length(size: int) -> int:
    """How many of `size` positions `bert`'s inputs mark as padding (the last ones): an
    eighth, at least one."""
    return max(1, size // 8)


def bert(
    n_layer: int = 2,
    hidden: int = 128,
    heads: int = 4,
    attn: str = "sdpa",
    vocab_size: int = 1000,
    max_positions: int = 8192,
    seed: int = 0,
) -> ModelCase:
    """transformers BertModel (no pooler) with a padding mask: (input_ids [1, L],
    attention_mask [1, L] with the last `padded_length(L)` positions 0) -> last_hidden_state
    [1, L, hidden]. The [1, 1, L, L] mask is built by transformers from `attention_mask`."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=n_layer,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation=attn,
    )
    torch.manual_seed(seed)
    module = inference_module(MaskedEncoder(BertModel(config, add_pooling_layer=False)))
    ids = token_ids(vocab_size, seed)

    def make_inputs(size: int) -> tuple[Tensor, Tensor]:
        mask = torch.ones(1, size, dtype=torch.int64)
        mask[:, size - padded_length(size):] = 0
        return ids(size) + (mask,)

    return _sequence_case(
        f"bert_{n_layer}l_{attn}", module, make_inputs, 2, max_positions,
        f"BertModel {n_layer} layers, hidden={hidden}, {heads} heads, {attn} attention, padding mask",
        dict(n_layer=n_layer, hidden=hidden, heads=heads, attn=attn, vocab_size=vocab_size,
             max_positions=max_positions),
    )


def t5_encoder(
    n_layer: int = 2,
    d_model: int = 128,
    heads: int = 4,
    d_kv: int = 32,
    d_ff: int = 256,
    num_buckets: int = 32,
    max_distance: int = 128,
    attn: str = "sdpa",
    vocab_size: int = 1000,
    max_len: int = 8192,
    seed: int = 0,
) -> ModelCase:
    """transformers T5EncoderModel: relative position bias [1, heads, L, L] looked up from a
    (num_buckets x heads) table by bucketed position differences, computed by the first layer
    and shared by every layer. input_ids [1, L] -> last_hidden_state [1, L, d_model].
    T5 has no position limit; `max_len` bounds the Dim only."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=n_layer,
        num_heads=heads,
        relative_attention_num_buckets=num_buckets,
        relative_attention_max_distance=max_distance,
        dropout_rate=0.0,
        use_cache=False,
        attn_implementation=attn,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    module = inference_module(LastHiddenState(T5EncoderModel(config)))
    return _sequence_case(
        f"t5_encoder_{n_layer}l_{attn}", module, token_ids(vocab_size, seed), 1, max_len,
        f"T5EncoderModel {n_layer} layers, d_model={d_model}, {heads} heads, {num_buckets} buckets, {attn} attention",
        dict(n_layer=n_layer, d_model=d_model, heads=heads, d_kv=d_kv, d_ff=d_ff, num_buckets=num_buckets,
             max_distance=max_distance, attn=attn, vocab_size=vocab_size, max_len=max_len),
    )
