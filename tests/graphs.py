"""Small graphs built by hand with the builder API, shared by the pass tests."""

from __future__ import annotations

import numpy as np

import chunkc
from chunkc import ops as O


def _weights(g, rng):
    return lambda *shape: g.add_constant("w", (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32))


def attention(g, x, W, L, D, H, causal_mask=None):
    """Multi-head self-attention on x [L, D], written out op by op."""
    def heads(t):
        return O.permute(O.reshape(t, shape=(L, H, D // H)), dims=(1, 0, 2))
    q, k, v = heads(O.linear(x, W(D, D))), heads(O.linear(x, W(D, D))), heads(O.linear(x, W(D, D)))
    s = O.matmul(q, O.transpose(k, -1, -2)) * (1.0 / np.sqrt(D // H))
    if causal_mask is not None:
        s = O.masked_fill(s, causal_mask, value=-1e9)
    p = O.softmax(s, axis=-1)
    o = O.reshape(O.permute(O.matmul(p, v), dims=(1, 0, 2)), shape=(L, D))
    return O.linear(o, W(D, D))


def layer_norm_by_hand(x, eps=1e-5):
    mu = O.mean(x, axes=-1, keepdim=True)
    xc = x - mu
    var = O.mean(xc * xc, axes=-1, keepdim=True)
    return xc * O.rsqrt(var + eps)


def attention_block(L="L", D=64, H=4, seed=0) -> chunkc.Graph:
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("attention_block")
    x = g.add_input("x", "f32", (L, D))
    W = _weights(g, rng)
    g.set_outputs(attention(g, x, W, L, D, H) + x)
    return g


def mlp(L="L", D=32, F=128, seed=0) -> chunkc.Graph:
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("mlp")
    x = g.add_input("x", "f32", ("B", L, D))
    W = _weights(g, rng)
    h = O.gelu(O.linear(x, W(F, D)))
    g.set_outputs(O.linear(h, W(D, F)) + x)
    return g


def transformer(layers=2, L="L", D=64, H=4, F=256, seed=0) -> chunkc.Graph:
    """A pre-LayerNorm transformer stack (LayerNorm written with reductions, keepdim)."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph(f"transformer{layers}")
    x = g.add_input("x", "f32", (L, D))
    W = _weights(g, rng)
    for _ in range(layers):
        x = x + attention(g, layer_norm_by_hand(x), W, L, D, H)
        x = x + O.linear(O.gelu(O.linear(layer_norm_by_hand(x), W(F, D))), W(D, F))
    g.set_outputs(x)
    return g


def inputs_for(graph: chunkc.Graph, sizes: dict[str, int], seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(v.type.concrete_shape(sizes)).astype(np.float32) for v in graph.inputs]
