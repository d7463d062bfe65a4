"""Op info of attention split over its keys (chunkc/ir/ops/attention_keys.py):
attention_partial, against torch's scores."""

from __future__ import annotations

import math

import numpy as np
import torch

from chunkc import ops as O
from opdb import L, OpInfo, S, T, bools, rnd, to_numpy


def _scores(k, q, mask, is_causal, scale, query_offset, key_offset, enable_gqa):
    k, q = T(k).double(), T(q).double()
    if enable_gqa:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    s = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        rows = torch.arange(s.shape[-2])[:, None] + query_offset
        cols = torch.arange(s.shape[-1])[None, :] + key_offset
        s = s.masked_fill(cols > rows, -math.inf)
    elif mask is not None:
        m = T(mask)
        s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + m.double()
    return s


def _qkv(rng, B=2, H=3, Lq=5, Sk=6, E=4, Ev=3, Hk=None):
    Hk = Hk or H
    return rnd(rng, (B, H, Lq, E)), rnd(rng, (B, Hk, Sk, E)), rnd(rng, (B, Hk, Sk, Ev))


def _partial_ref(k, v, q, mask=None, **attrs):
    """SDPA over these keys (torch's scores in float64) with the log-sum-exp as a last column."""
    s = _scores(k, q, mask, attrs.get("is_causal", False), attrs.get("scale"), attrs.get("query_offset", 0),
                attrs.get("key_offset", 0), attrs.get("enable_gqa", False))
    lse = torch.logsumexp(s, -1, keepdim=True)
    p = torch.exp(s - torch.where(lse.isneginf(), 0.0, lse))
    vv = T(v).double()
    if attrs.get("enable_gqa"):
        vv = vv.repeat_interleave(T(q).shape[-3] // vv.shape[-3], dim=-3)
    return to_numpy(torch.cat([p @ vv, lse], -1).to(T(q).dtype))


def _partial_samples(rng):
    q, k, v = _qkv(rng)
    qg, kg, vg = _qkv(rng, H=4, Hk=2)
    mask = bools(rng, (2, 1, 5, 6)) | np.eye(5, 6, dtype=bool)
    empty = mask.copy()
    empty[..., 1, :] = False
    return [S(k, v, q), S(k, v, q, mask, desc="bool mask"), S(k, v, q, empty, desc="a row attends no key: 0, -inf"),
            S(k, v, q, rnd(rng, (5, 6)), scale=0.3, desc="float mask"),
            S(k, v, q, is_causal=True, desc="causal"),
            S(k, v, q, is_causal=True, query_offset=3, key_offset=1, desc="causal, the first keys seen by every row"),
            S(k, v, q, is_causal=True, query_offset=1, key_offset=3, desc="causal, the first rows attend none"),
            S(k, v, q, is_causal=True, key_offset=9, desc="every key past every query: 0, -inf"),
            S(kg, vg, qg, enable_gqa=True, desc="grouped queries"),
            S(kg, vg, qg, is_causal=True, query_offset=4, key_offset=2, enable_gqa=True, desc="grouped, causal")]


def _big(rng):
    q, k, v = _qkv(rng, B=1, H=4, Lq=256, Sk=256, E=32, Ev=32)
    return [S(k, v, q), S(k, v, q, is_causal=True), S(k, v, q, is_causal=True, query_offset=64)]


def _split_graph(s):
    """SDPA split over its keys, causal and not."""
    q = s.inp("f32", (2, 3, L, 8), name="q")
    k = s.inp("f32", (2, 3, L, 8), name="k")
    v = s.inp("f32", (2, 3, L, 5), name="v")
    return O.attention_partial(k, v, q, is_causal=True), O.attention_partial(k, v, q)


OPINFOS = [OpInfo("attention_partial", _partial_samples, _partial_ref, big=_big, graphs=[_split_graph])]
