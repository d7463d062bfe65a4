"""Random model-like graphs for the differential fuzzer, built with ``chunkc.ops``.

``random_case(seed)`` draws one :class:`FuzzCase`: a graph, the sizes to plan it
at, other sizes to run the plan at, and budgets.  The same seed always gives the
same case.  Graphs look like the models chunkc is for, assembled at random:

* **sequence models** over ``[B?, L, D]``: embeddings of token ids (and of
  positions), masks built once from index arithmetic and shared by every layer
  (causal ``arange`` comparisons, ``tril``/``triu`` of ones, padding masks from
  the ids, relative-position biases looked up in a bucket table, rotary
  tables), then layers drawn from: attention in several spellings (matmul,
  einsum with and without the head permute, ``bmm``, SDPA with and without a
  mask or ``is_causal``, separate or fused QKV projections split by ``split`` or
  ``slice``, ``v = q``, bool masks through ``masked_fill``/``where``, additive
  float masks), MLPs (plain and gated), norms (``layer_norm``, ``rms_norm``, by
  hand with ``mean``/``var``), convolutions and pools over the sequence, pads,
  cumulative sums, ``topk``/``sort``, gathers, concat/split, reshapes and
  permutes, rolls and flips, branches;
* **image models** over ``[B, C, H, W]``: conv/group-norm/batch-norm blocks,
  pools, pads, down- and up-sampling (``interpolate``, ``conv_transpose``), and
  attention over the flattened pixels.

Values stay finite and moderate (weights scaled by 1/sqrt(fan-in), no
unbounded ``exp``), so a chunked run can be compared with the unchunked
interpreter at float32 tolerance.  Ops whose integer results depend on how ties
are broken (``topk``/``sort`` indices, ``argmax``) read values that have no ties
(a linear map with a random bias), so every backend must agree exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import ops as O
from ..ir.graph import Graph, Value
from ..ir.sizes import sym



@dataclass(frozen=True)
class Budget:
    """A budget: ``fraction`` of the backend's unchunked estimated peak, given to ``autochunk``
    as that fraction or, with ``in_bytes``, as the number of bytes it comes to."""

    fraction: float
    in_bytes: bool = False

    def value(self, unchunked_peak: int) -> float | int:
        return int(self.fraction * unchunked_peak) if self.in_bytes else self.fraction

    def __str__(self) -> str:
        return f"{self.fraction:.1%}" + (" in bytes" if self.in_bytes else "")


@dataclass
class FuzzCase:
    """One drawn case: a graph, its planning sizes, re-run sizes and budgets."""

    seed: int
    graph: Graph
    sizes: dict[str, int]  # the sizes plans are made for
    rerun_sizes: tuple[dict[str, int], ...]  # other sizes each plan also runs at
    budgets: tuple[Budget, ...]
    families: tuple[str, ...] = ()  # what was drawn, in order (for reports)
    int_high: dict[str, int] = field(default_factory=dict)  # integer input -> exclusive upper bound

    def inputs(self, sizes: dict[str, int] | None = None) -> list[np.ndarray]:
        """Input arrays in graph-input order: floats uniform in [-1, 1], integers in [0, high),
        bools mostly True; the same arrays for the same sizes."""
        return make_inputs(self.graph, self.sizes if sizes is None else sizes, self.seed, self.int_high)

    def describe(self) -> str:
        return (f"case {self.seed}: {len(self.graph.nodes)} nodes, sizes {self.sizes}, "
                f"families {', '.join(self.families) or '-'}")


def make_inputs(graph: Graph, sizes: dict[str, int], seed: int, int_high: dict[str, int] | None = None) -> list:
    rng = np.random.default_rng(seed + 7919)
    out = []
    for v in graph.inputs:
        shape = v.type.concrete_shape(sizes)
        if v.dtype.name == "bool":
            out.append(rng.random(shape) < 0.8)
        elif v.dtype.is_floating:
            out.append(rng.uniform(-1, 1, size=shape).astype(v.dtype.numpy))
        else:  # integers index something: in [0, high), 2 when unknown (every indexed axis has at least 2)
            out.append(rng.integers(0, (int_high or {}).get(v.name, 2), size=shape).astype(v.dtype.numpy))
    return out


# -- drawing ---------------------------------------------------------------------------------------------


class _Builder:
    """State while one graph is drawn."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.g = Graph(f"fuzz{seed}")
        self.families: list[str] = []
        self.int_high: dict[str, int] = {}
        self.extra_outputs: list[Value] = []  # values a layer returns besides the hidden state

    def pick(self, options):
        return self.rng.choice(list(options))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def note(self, family: str) -> None:
        self.families.append(family)

    def weight(self, *shape: int, fan_in: int | None = None, name: str = "w") -> Value:
        fan = fan_in if fan_in is not None else (shape[-1] if shape else 1)
        data = self.np.uniform(-1, 1, size=shape).astype(np.float32) / math.sqrt(max(fan, 1))
        return self.g.add_constant(name, data)

    def linear(self, x: Value, n_out: int, bias: bool | None = None) -> Value:
        k = x.shape[-1]
        args = [x, self.weight(n_out, k)]
        if bias if bias is not None else self.chance(0.5):
            args.append(self.weight(n_out, fan_in=1, name="b"))
        return O.linear(*args)

    def tie_free(self, x: Value, n_out: int) -> Value:
        """A linear map with a random bias: values without ties along the last axis."""
        return self.linear(x, n_out, bias=True)


# -- masks and tables shared by every layer (built once, as transformers builds them) ----------------


@dataclass
class Shared:
    """What every attention layer of one graph reads."""

    bool_mask: Value | None = None  # True: attend; [L, L] or [B, 1, L, L]
    blocked: Value | None = None  # True: masked out (the complement spelling)
    additive: Value | None = None  # a float mask added to the scores: [L, L], [H, L, L] or [B, 1, L, L]
    rotary: tuple[Value, Value] | None = None  # cos, sin [L, head_dim]
    causal_sdpa: bool = False  # SDPA layers use is_causal=True


def _positions(b: _Builder) -> tuple[Value, Value]:
    i = O.arange(end="L", graph=b.g)
    return O.unsqueeze(i, axis=1), O.unsqueeze(i, axis=0)  # query rows [L, 1], key columns [1, L]


def _shared(b: _Builder, batch: tuple, heads: int, head_dim: int, ids: Value | None) -> Shared:
    s = Shared()
    kind = b.pick(["none", "causal_bool", "causal_float", "tril", "triu", "padding", "relative_bias", "alibi",
                   "is_causal"])
    b.note(f"mask:{kind}")
    L = sym("L")
    if kind == "causal_bool":
        q, k = _positions(b)
        s.bool_mask = O.le(k, q)
    elif kind == "causal_float":
        q, k = _positions(b)
        keep = O.le(k, q)
        if b.chance(0.5):
            s.additive = O.where(keep, 0.0, float(np.finfo(np.float32).min))
        else:
            s.additive = O.masked_fill(O.full(shape=(L, L), value=0.0, graph=b.g), O.logical_not(keep), value=-1e9)
    elif kind == "tril":
        ones = O.full(shape=(L, L), value=1.0, graph=b.g)
        s.blocked = O.eq(O.tril(ones), 0.0)
    elif kind == "triu":
        ones = O.full(shape=(L, L), value=True, graph=b.g)
        s.blocked = O.triu(ones, diagonal=1)
    elif kind == "padding":
        if ids is not None:
            keep = O.ne(ids, 0)  # token 0 is padding
        else:
            keep = b.g.add_input("keep", "bool", batch + (L,))
        keep = O.unsqueeze(O.unsqueeze(keep, axis=-2), axis=-3) if batch else O.unsqueeze(keep, axis=0)
        if b.chance(0.5):
            q, k = _positions(b)
            causal = O.le(k, q)
            keep = O.logical_and(keep, causal)
        if b.chance(0.5):
            s.bool_mask = keep
        else:
            s.additive = O.where(keep, 0.0, -1e9)
    elif kind == "relative_bias":
        q, k = _positions(b)
        buckets = 9
        rel = O.clamp(O.sub(k, q), min=-(buckets // 2), max=buckets // 2) + buckets // 2
        table = b.weight(buckets, heads, fan_in=1, name="rel_bias")
        s.additive = O.permute(O.embedding(table, rel), dims=(2, 0, 1))  # [H, L, L]
    elif kind == "alibi":
        q, k = _positions(b)
        dist = O.cast(O.abs(O.sub(k, q)), dtype="f32")
        slopes = b.g.add_constant("slopes", (2.0 ** -np.arange(1, heads + 1, dtype=np.float32)).reshape(heads, 1, 1))
        s.additive = O.neg(O.mul(slopes, dist))  # [H, L, L]
    elif kind == "is_causal":
        s.causal_sdpa = True
    if head_dim % 2 == 0 and b.chance(0.3):
        b.note("rotary")
        pos = O.cast(O.arange(end="L", graph=b.g), dtype="f32")
        freqs = b.g.add_constant("inv_freq", (1.0 / 100.0 ** (np.arange(0, head_dim, 2) / head_dim)).astype(np.float32))
        ang = O.mul(O.unsqueeze(pos, axis=1), freqs)
        ang = O.concat(ang, ang, axis=-1)
        s.rotary = (O.cos(ang), O.sin(ang))
    return s


def _rotate(x: Value, rotary: tuple[Value, Value]) -> Value:
    cos, sin = rotary
    half = x.shape[-1] // 2
    x1, x2 = O.split(x, sizes=(half, half), axis=-1)
    return O.add(O.mul(x, cos), O.mul(O.concat(O.neg(x2), x1, axis=-1), sin))


# -- attention ------------------------------------------------------------------------------------------


def _heads(x: Value, batch: tuple, heads: int, head_dim: int) -> Value:
    """[*batch, L, D] -> [*batch, H, L, hd]."""
    n = len(batch)
    y = O.reshape(x, shape=batch + (x.shape[n], heads, head_dim))
    return O.permute(y, dims=tuple(range(n)) + (n + 1, n, n + 2))


def _merge(o: Value, batch: tuple, dim: int) -> Value:
    """[*batch, H, L, hd] -> [*batch, L, D]."""
    n = len(batch)
    y = O.permute(o, dims=tuple(range(n)) + (n + 1, n, n + 2))
    return O.reshape(y, shape=batch + (o.shape[n + 1], dim))


def _mask_scores(b: _Builder, s: Value, shared: Shared) -> Value:
    if shared.bool_mask is not None:
        if b.chance(0.5):
            return O.masked_fill(s, O.logical_not(shared.bool_mask), value=-1e9)
        return O.where(shared.bool_mask, s, -1e9)
    if shared.blocked is not None:
        return O.masked_fill(s, shared.blocked, value=float("-inf"))
    if shared.additive is not None:
        return O.add(s, shared.additive)
    if shared.causal_sdpa:  # an explicit spelling of the same mask, built per layer
        q, k = _positions(b)
        return O.masked_fill(s, O.gt(k, q), value=-1e9)
    return s


def _softmax(b: _Builder, s: Value) -> Value:
    if b.chance(0.75):
        return O.softmax(s, axis=-1)
    e = O.exp(O.sub(s, O.amax(s, axes=-1, keepdim=True)))  # by hand
    return O.div(e, O.sum(e, axes=-1, keepdim=True))


def attention(b: _Builder, x: Value, batch: tuple, heads: int, shared: Shared) -> Value:
    """Self-attention on x [*batch, L, D] in one of several spellings; returns [*batch, L, D]."""
    D = x.shape[-1]
    hd = D // heads
    proj = b.pick(["separate", "fused_split", "fused_slice", "v_is_q"])
    if proj == "separate":
        q, k, v = b.linear(x, D), b.linear(x, D), b.linear(x, D)
    elif proj == "v_is_q":
        q, k = b.linear(x, D), b.linear(x, D)
        v = q
    else:
        qkv = b.linear(x, 3 * D)
        if proj == "fused_split":
            q, k, v = O.split(qkv, sizes=(D, D, D), axis=-1)
        else:
            q, k, v = (O.slice(qkv, axis=-1, start=j * D, end=(j + 1) * D) for j in range(3))
    spelling = b.pick(["matmul", "einsum", "einsum_heads_last", "bmm", "sdpa"] if batch or heads else
                      ["matmul", "einsum", "sdpa"])
    if spelling == "bmm" and not batch:
        spelling = "matmul"
    b.note(f"attention:{proj}+{spelling}")
    scale = 1.0 / math.sqrt(hd)
    if spelling == "einsum_heads_last":
        n = len(batch)
        L = x.shape[n]
        qh, kh, vh = (O.reshape(t, shape=batch + (L, heads, hd)) for t in (q, k, v))
        bl = "b" if batch else ""
        s = O.mul(O.einsum(qh, kh, equation=f"{bl}qhd,{bl}khd->{bl}hqk"), scale)
        p = _softmax(b, _mask_scores(b, s, shared))
        o = O.einsum(p, vh, equation=f"{bl}hqk,{bl}khd->{bl}qhd")
        return b.linear(O.reshape(o, shape=batch + (L, D)), D)
    qh, kh, vh = (_heads(t, batch, heads, hd) for t in (q, k, v))
    if shared.rotary is not None:
        qh, kh = _rotate(qh, shared.rotary), _rotate(kh, shared.rotary)
        if proj == "v_is_q":
            vh = qh
    if spelling == "sdpa":
        mask = shared.bool_mask if shared.bool_mask is not None else shared.additive
        if shared.blocked is not None:
            mask = O.logical_not(shared.blocked)
        args = [qh, kh, vh] + ([mask] if mask is not None else [])
        attrs = {"is_causal": True} if shared.causal_sdpa and mask is None else {}
        if b.chance(0.3):
            attrs["scale"] = scale
        o = O.scaled_dot_product_attention(*args, **attrs)
    elif spelling == "einsum":
        bl = "b" if batch else ""
        s = O.mul(O.einsum(qh, kh, equation=f"{bl}hqd,{bl}hkd->{bl}hqk"), scale)
        p = _softmax(b, _mask_scores(b, s, shared))
        o = O.einsum(p, vh, equation=f"{bl}hqk,{bl}hkd->{bl}hqd")
    elif spelling == "bmm":
        L = x.shape[len(batch)]
        B = batch[0]
        flat = [O.reshape(t, shape=(B * heads, L, hd)) for t in (qh, kh, vh)]
        s = O.bmm(flat[0], O.transpose(flat[1], -1, -2))
        s = O.reshape(O.div(s, math.sqrt(hd)), shape=(B, heads, L, L))
        p = O.reshape(_softmax(b, _mask_scores(b, s, shared)), shape=(B * heads, L, L))
        o = O.reshape(O.bmm(p, flat[2]), shape=(B, heads, L, hd))
    else:
        s = O.mul(O.matmul(qh, O.transpose(kh, -1, -2)), scale)
        p = _softmax(b, _mask_scores(b, s, shared))
        o = O.matmul(p, vh)
    return b.linear(_merge(o, batch, D), D)


# -- other sequence layers --------------------------------------------------------------------------------


ACTIVATIONS = ("gelu", "relu", "silu", "tanh", "sigmoid", "mish", "hardswish", "elu", "leaky_relu", "softplus")
GENTLE_UNARY = ("tanh", "sigmoid", "sin", "cos", "neg", "abs", "atan", "erf", "hardsigmoid", "asinh", "sinh")


def mlp(b: _Builder, x: Value) -> Value:
    D = x.shape[-1]
    F = D * b.pick([2, 4])
    act = b.pick(ACTIVATIONS)
    if b.chance(0.35):
        b.note(f"mlp:gated+{act}")
        h = O.mul(getattr(O, act)(b.linear(x, F)), b.linear(x, F))
    else:
        b.note(f"mlp:{act}")
        h = getattr(O, act)(b.linear(x, F))
    if b.chance(0.2):  # GPT-2's Conv1D: addmm on the flattened rows
        lead = 1
        for s in h.shape[:-1]:
            lead = lead * s
        rows = O.reshape(h, shape=(lead, F))
        out = O.addmm(b.weight(D, fan_in=1, name="b"), rows, b.weight(F, D, fan_in=F))
        return O.reshape(out, shape=x.shape)
    return b.linear(h, D)


def norm(b: _Builder, x: Value) -> Value:
    D = x.shape[-1]
    kind = b.pick(["layer_norm", "rms_norm", "by_hand", "by_hand_var", "none"])
    b.note(f"norm:{kind}")
    if kind == "layer_norm":
        return O.layer_norm(x, b.weight(D, fan_in=1), b.weight(D, fan_in=1)) if b.chance(0.7) else O.layer_norm(x)
    if kind == "rms_norm":
        return O.rms_norm(x, b.weight(D, fan_in=1), eps=1e-6)
    if kind == "by_hand":
        mu = O.mean(x, axes=-1, keepdim=True)
        c = O.sub(x, mu)
        return O.mul(c, O.rsqrt(O.add(O.mean(O.mul(c, c), axes=-1, keepdim=True), 1e-5)))
    if kind == "by_hand_var":
        return O.div(O.sub(x, O.mean(x, axes=-1, keepdim=True)),
                     O.sqrt(O.add(O.var(x, axes=-1, keepdim=True, correction=0), 1e-5)))
    return x


def conv_over_sequence(b: _Builder, x: Value, batch: tuple) -> Value:
    """A convolution or pool along L (the sequence as the spatial axis)."""
    D = x.shape[-1]
    h = x if batch else O.unsqueeze(x, axis=0)
    h = O.permute(h, dims=(0, 2, 1))  # [B, D, L]
    kind = b.pick(["conv", "depthwise", "causal_conv", "max_pool", "avg_pool"])
    b.note(f"seqconv:{kind}")
    if kind == "conv":
        h = O.conv(h, b.weight(D, D, 3, fan_in=3 * D), b.weight(D, fan_in=1), padding=((1, 1),))
    elif kind == "depthwise":
        h = O.conv(h, b.weight(D, 1, 3, fan_in=3), padding=((1, 1),), groups=D)
    elif kind == "causal_conv":  # Mamba-style: pad on the left, no padding in the conv
        h = O.conv(O.pad(h, pads=((0, 0), (0, 0), (3, 0))), b.weight(D, 1, 4, fan_in=4), groups=D)
    elif kind == "max_pool":
        h = O.max_pool(h, kernel=(3,), stride=(1,), padding=((1, 1),))
    else:
        h = O.avg_pool(h, kernel=(3,), stride=(1,), padding=((1, 1),), count_include_pad=b.chance(0.5))
    h = O.permute(h, dims=(0, 2, 1))
    return h if batch else O.squeeze(h, axes=0)


def mixer(b: _Builder, x: Value, batch: tuple) -> Value:
    """Shape and index ops that return to x's shape."""
    D = x.shape[-1]
    n = len(batch)
    kind = b.pick(["split_heads", "concat_halves", "pad_features", "token_shift", "roll", "flip", "cumsum",
                   "topk", "sort_gather", "take", "gather", "tile", "stack", "cast", "clamp", "unary_chain",
                   "branch", "argmax_embed", "where_cmp", "any_all", "cumprod", "prod", "integer_bits",
                   "scatter", "expand_sum", "full_like_mask", "argmin_onehot"])
    b.note(f"mixer:{kind}")
    L = x.shape[n]
    if kind == "split_heads":
        g = b.pick([d for d in (2, 4, 8) if D % d == 0])
        y = O.reshape(x, shape=batch + (L, g, D // g))
        y = O.permute(y, dims=tuple(range(n)) + (n + 1, n, n + 2))
        y = O.contiguous(getattr(O, b.pick(GENTLE_UNARY))(y)) if b.chance(0.5) else O.tanh(y)
        y = O.permute(y, dims=tuple(range(n)) + (n + 1, n, n + 2))
        return O.reshape(y, shape=x.shape)
    if kind == "concat_halves":
        a, c = O.split(x, sizes=(D // 2, D - D // 2), axis=-1)
        return O.concat(O.tanh(c), a, axis=-1) if D % 2 == 0 else O.concat(a, O.tanh(c), axis=-1)
    if kind == "pad_features":
        y = O.pad(x, pads=((0, 0),) * (x.rank - 1) + ((2, 1),), value=0.5)
        return O.slice(O.sigmoid(y), axis=-1, start=1, end=D + 1)
    if kind == "token_shift":  # RWKV: the previous token, zeros at the start
        pads = [(0, 0)] * x.rank
        pads[n] = (1, 0)
        shifted = O.slice(O.pad(x, pads=tuple(pads)), axis=n, start=0, end=-1)
        return O.add(O.mul(x, 0.5), O.mul(shifted, 0.5))
    if kind == "roll":
        return O.roll(x, shifts=b.pick([1, -2]), axes=b.pick([n, -1]))
    if kind == "flip":
        return O.flip(x, axes=b.pick([n, x.rank - 1]))
    if kind == "cumsum":
        axis = b.pick([n, -1])
        y = O.cumsum(x, axis=axis)
        return O.div(y, float(D if axis == -1 else 64))
    if kind == "topk":
        k = b.pick([2, 4, 8])
        values, indices = O.topk(b.tie_free(x, D), k=k, axis=-1, largest=b.chance(0.7))
        y = b.linear(values, D)
        if b.chance(0.5):  # the indices are used too
            y = O.add(y, O.mul(O.cast(O.sum(indices, axes=-1, keepdim=True), dtype="f32"), 0.01))
        elif b.chance(0.5):  # or returned
            b.extra_outputs.append(indices)
        return y
    if kind == "sort_gather":
        keys = b.tie_free(x, D)
        values, indices = O.sort(keys, axis=-1, descending=b.chance(0.5))
        return O.add(O.mul(values, 0.5), O.gather(x, indices, axis=-1))
    if kind == "take":
        idx = b.g.add_constant("idx", b.np.integers(0, D, size=(D,)).astype(np.int64))
        return O.take(x, idx, axis=-1)
    if kind == "gather":
        idx = b.g.add_constant("idx", b.np.integers(0, D, size=(1,) * (x.rank - 1) + (D,)).astype(np.int64))
        return O.gather(x, O.expand(idx, shape=x.shape), axis=-1)
    if kind == "tile":
        y = O.tile(O.unsqueeze(x, axis=0), repeats=(2,) + (1,) * x.rank)
        return O.mean(y, axes=0)
    if kind == "stack":
        axis = b.pick([0, -1])
        return O.mean(O.stack(O.tanh(x), O.sigmoid(x), axis=axis), axes=axis)
    if kind == "cast":
        return O.cast(O.cast(x, dtype="f16"), dtype="f32")
    if kind == "clamp":
        return O.clamp(x, min=-0.5, max=0.75)
    if kind == "unary_chain":
        y = x
        for _ in range(b.rng.randint(2, 4)):
            y = getattr(O, b.pick(GENTLE_UNARY))(y)
        return y
    if kind == "branch":  # two paths from one value, joined
        left = getattr(O, b.pick(ACTIVATIONS))(b.linear(x, D))
        right = O.mul(O.sigmoid(x), b.weight(D, fan_in=1))
        return O.add(left, right) if b.chance(0.5) else O.maximum(left, right)
    if kind == "argmax_embed":
        table = b.weight(8, D, fan_in=1, name="table")
        return O.add(x, O.embedding(table, O.argmax(b.tie_free(x, 8), axis=-1)))
    if kind == "where_cmp":
        return O.where(O.gt(x, b.weight(D, fan_in=1)), x, O.mul(x, 0.1))
    if kind == "any_all":
        pos = O.gt(x, 0.0)
        flag = O.logical_or(O.any(pos, axes=-1, keepdim=True), O.all(pos, axes=-1, keepdim=True))
        return O.where(flag, x, O.neg(x))
    if kind == "cumprod":
        return O.cumprod(O.add(O.mul(O.tanh(x), 0.1), 1.0), axis=-1)
    if kind == "integer_bits":  # quantize, mix the bits, back to floats
        q = O.cast(O.floor(O.mul(O.add(O.tanh(x), 1.0), 7.5)), dtype="i32")
        bits = O.bitwise_xor(O.shift_left(O.bitwise_and(q, b.g.scalar(7, "i32")), b.g.scalar(1, "i32")), q)
        return O.add(x, O.mul(O.cast(bits, dtype="f32"), 0.01))
    if kind == "scatter":  # write a gathered, scaled copy back along the features
        idx = b.g.add_constant("idx", np.broadcast_to(b.np.permutation(D)[: D // 2], (1,) * (x.rank - 1) + (D // 2,))
                               .astype(np.int64).copy())
        index = O.expand(idx, shape=x.shape[:-1] + (D // 2,))
        return O.scatter_elements(x, index, O.mul(O.gather(x, index, axis=-1), 0.5), axis=-1)
    if kind == "expand_sum":
        return O.mean(O.expand(O.unsqueeze(O.tanh(x), axis=-2), shape=x.shape[:-1] + (3, D)), axes=-2)
    if kind == "full_like_mask":
        return O.where(O.gt(x, O.full_like(x, value=0.25)), x, O.full_like(x, value=-0.5))
    if kind == "argmin_onehot":
        picked = O.argmin(b.tie_free(x, D), axis=-1, keepdim=True)
        onehot = O.eq(O.arange(end=D, graph=b.g), picked)
        return O.masked_fill(x, onehot, value=0.0)
    # prod
    return O.mul(x, O.prod(O.add(O.mul(O.tanh(x), 0.05), 1.0), axes=-1, keepdim=True))


def sequence_model(b: _Builder) -> dict[str, int]:
    batch_kind = b.pick(["none", "static", "static", "symbolic"])
    batch = () if batch_kind == "none" else ((b.pick([1, 2]),) if batch_kind == "static" else (sym("B"),))
    L = sym("L")
    D = b.pick([16, 24, 32, 48, 64])
    heads = b.pick([h for h in (1, 2, 4) if D % h == 0 and (D // h) % 2 == 0] or [1])
    b.note(f"seq:D{D}H{heads}{'B' if batch_kind == 'symbolic' else ''}")
    ids = None
    if b.chance(0.4):
        vocab = b.pick([32, 100])
        ids = b.g.add_input("ids", "i64", batch + (L,))
        b.int_high["ids"] = vocab
        x = O.embedding(b.weight(vocab, D, fan_in=1, name="wte"), ids)
        if b.chance(0.5):  # learned positions, looked up by arange
            x = O.add(x, O.embedding(b.weight(MAX_LENGTH * 2, D, fan_in=4, name="wpe"), O.arange(end="L", graph=b.g)))
        b.note("embedding")
    else:
        x = b.g.add_input("x", "f32", batch + (L, D))
    shared = _shared(b, batch, heads, D // heads, ids) if b.chance(0.8) else Shared()
    if shared.additive is not None and shared.additive.rank == 2 and b.chance(0.5) and batch:
        shared.additive = O.expand(O.unsqueeze(O.unsqueeze(shared.additive, axis=0), axis=0),
                                   shape=batch + (1, L, L))  # [B, 1, L, L], as transformers expands it
    outputs = []
    for _ in range(b.rng.randint(1, 4)):
        layer = b.pick(["attention", "attention", "attention", "mlp", "conv", "mixer", "mixer"])
        if layer == "attention":
            x = O.add(x, attention(b, norm(b, x), batch, heads, shared))
        elif layer == "mlp":
            x = O.add(x, mlp(b, norm(b, x)))
        elif layer == "conv":
            x = O.add(x, conv_over_sequence(b, x, batch))
        else:
            x = mixer(b, x, batch)
        if b.chance(0.1):
            outputs.append(x)  # an intermediate output (a hidden state returned as well)
    head = b.pick(["none", "norm", "logits", "log_softmax", "mean_pool"])
    b.note(f"head:{head}")
    if head == "norm":
        x = norm(b, x)
    elif head == "logits":
        x = b.linear(norm(b, x), b.pick([32, 100]), bias=False)
    elif head == "log_softmax":
        x = O.log_softmax(b.linear(x, 32), axis=-1)
    elif head == "mean_pool":
        x = O.mean(x, axes=len(batch))
    b.g.set_outputs(*outputs, *b.extra_outputs, x)
    sizes = {"L": b.pick([64, 96, 128, 160, 192, 256])}
    if batch_kind == "symbolic":
        sizes["B"] = 2
    return sizes


# -- image models -----------------------------------------------------------------------------------------


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


def res_block(b: _Builder, x: Value) -> Value:
    C = x.shape[1]
    kind = b.pick(["group_norm", "batch_norm"])
    b.note(f"resblock:{kind}")

    def normed(t):
        if kind == "group_norm":
            return O.group_norm(t, b.weight(C, fan_in=1), b.weight(C, fan_in=1), num_groups=_groups(C))
        mean = b.g.add_constant("mean", (b.np.uniform(-0.1, 0.1, C)).astype(np.float32))
        var = b.g.add_constant("var", (b.np.uniform(0.5, 2.0, C)).astype(np.float32))
        return O.batch_norm(t, mean, var, b.weight(C, fan_in=1), b.weight(C, fan_in=1))

    def conv3(t):
        if b.chance(0.3):  # explicit padding, then a conv without
            mode = b.pick(["constant", "reflect", "replicate"])
            return O.conv(O.pad(t, pads=((0, 0), (0, 0), (1, 1), (1, 1)), mode=mode), b.weight(C, C, 3, 3, fan_in=9 * C))
        return O.conv(t, b.weight(C, C, 3, 3, fan_in=9 * C), b.weight(C, fan_in=1), padding=((1, 1), (1, 1)))

    h = conv3(O.silu(normed(x)))
    h = conv3(O.silu(normed(h)))
    return O.add(x, h)


def image_attention(b: _Builder, x: Value, shared: Shared) -> Value:
    B, C, H, W = x.shape
    b.note("image_attention")
    tokens = O.permute(O.reshape(x, shape=(B, C, H * W)), dims=(0, 2, 1))  # [B, HW, C]
    y = _attention_on_tokens(b, tokens, shared)
    return O.add(x, O.reshape(O.permute(y, dims=(0, 2, 1)), shape=(B, C, H, W)))


def _attention_on_tokens(b: _Builder, t: Value, shared: Shared) -> Value:
    """Attention over tokens whose length is not the symbol L (no shared masks)."""
    B, N, C = t.shape
    heads = b.pick([h for h in (1, 2) if C % h == 0])
    hd = C // heads
    q, k, v = b.linear(t, C), b.linear(t, C), b.linear(t, C)
    qh, kh, vh = (O.permute(O.reshape(u, shape=(B, N, heads, hd)), dims=(0, 2, 1, 3)) for u in (q, k, v))
    if b.chance(0.5):
        o = O.scaled_dot_product_attention(qh, kh, vh)
    else:
        s = O.mul(O.matmul(qh, O.transpose(kh, -1, -2)), 1.0 / math.sqrt(hd))
        o = O.matmul(O.softmax(s, axis=-1), vh)
    return b.linear(O.reshape(O.permute(o, dims=(0, 2, 1, 3)), shape=(B, N, C)), C)


def down_up(b: _Builder, x: Value) -> Value:
    B, C, H, W = x.shape
    down = b.pick(["avg_pool", "max_pool", "conv_stride"])
    up = b.pick(["nearest", "linear", "conv_transpose"])
    b.note(f"downup:{down}+{up}")
    if down == "avg_pool":
        h = O.avg_pool(x, kernel=(2, 2))
    elif down == "max_pool":
        h = O.max_pool(x, kernel=(2, 2))
    else:
        h = O.conv(x, b.weight(C, C, 2, 2, fan_in=4 * C), stride=(2, 2))
    h = O.silu(h)
    if up == "conv_transpose":
        h = O.conv_transpose(h, b.weight(C, C, 2, 2, fan_in=4 * C), stride=(2, 2))
    else:
        h = O.interpolate(h, size=(H, W), mode=up)
    return O.add(x, h)


def image_model(b: _Builder) -> dict[str, int]:
    B = b.pick([1, 2])
    C = b.pick([8, 16])
    side = 2 * sym("H")  # even, so that a 2x pool and a 2x upsample give the side back
    Hs, Ws = side, (side if b.chance(0.6) else 8)
    b.note(f"image:C{C}")
    x = b.g.add_input("x", "f32", (B, 3, Hs, Ws))
    x = O.conv(x, b.weight(C, 3, 3, 3, fan_in=27), b.weight(C, fan_in=1), padding=((1, 1), (1, 1)))
    for _ in range(b.rng.randint(1, 3)):
        kind = b.pick(["res", "res", "attention", "down_up", "pool"])
        if kind == "res":
            x = res_block(b, x)
        elif kind == "attention":
            x = image_attention(b, x, Shared())
        elif kind == "down_up":
            x = down_up(b, x)
        else:
            b.note("pool")
            x = O.max_pool(x, kernel=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))
    head = b.pick(["conv_out", "adaptive_pool"])
    b.note(f"head:{head}")
    if head == "conv_out":
        x = O.conv(O.silu(x), b.weight(3, C, 3, 3, fan_in=9 * C), padding=((1, 1), (1, 1)))
    else:
        x = b.linear(O.reshape(O.adaptive_avg_pool(x, output_size=(2, 2)), shape=(B, C * 4)), 10)
    b.g.set_outputs(x)
    return {"H": b.pick([4, 6, 8, 10, 12])}


MODELS: dict[str, Callable[[_Builder], dict[str, int]]] = {"sequence": sequence_model, "image": image_model}


def _rerun(sizes: dict[str, int], rng: random.Random) -> tuple[dict[str, int], ...]:
    """Other sizes to run a plan at: smaller and larger, odd lengths for ragged last chunks."""
    smaller, larger = dict(sizes), dict(sizes)
    for name, n in sizes.items():
        if name == "H":
            smaller[name], larger[name] = max(2, n - 2), n + 3
        elif name == "B":
            smaller[name], larger[name] = 1, 3
        else:
            smaller[name], larger[name] = n // 2 + 1, n + n // 2 + rng.choice([1, 3])
    return smaller, larger


MIN_PEAK = 1 << 20  # bytes: far above the few KiB of Python objects a NumPy call makes
MAX_GROWTH = 16  # the drawn sizes grow by at most this factor to reach MIN_PEAK
MAX_LENGTH = 2048  # nor beyond this (learned position tables have twice as many rows)


def _grown(graph: Graph, sizes: dict[str, int]) -> dict[str, int]:
    """``sizes`` with the sequence length (or image side) doubled until the unchunked estimated
    peak reaches :data:`MIN_PEAK` (graphs of a few KiB measure mostly noise)."""
    from ..passes.memory import estimate_memory
    name = "L" if "L" in sizes else "H"
    out = dict(sizes)
    while out[name] < MAX_GROWTH * sizes[name] and 2 * out[name] <= MAX_LENGTH \
            and estimate_memory(graph, sizes=out).peak_bytes < MIN_PEAK:
        out[name] *= 2
    return out


def random_case(seed: int, budgets: int = 4, reruns: int = 2) -> FuzzCase:
    """The case of ``seed``: a model-like graph, its sizes, ``budgets`` budgets (fractions
    from 5% to 90% of the unchunked peak, some given in bytes) and ``reruns`` other sizes
    (smaller, then larger) to run each plan at."""
    b = _Builder(seed)
    model = b.pick(["sequence"] * 3 + ["image"])
    sizes = MODELS[model](b)
    b.g.dce()
    sizes = _grown(b.g, sizes)
    fractions = sorted({round(b.rng.uniform(0.05, 0.9), 3) for _ in range(budgets)})
    chosen = tuple(Budget(f, in_bytes=b.chance(0.4)) for f in fractions)
    return FuzzCase(seed, b.g, sizes, _rerun(sizes, b.rng)[:reruns], chosen, tuple(b.families), dict(b.int_high))


__all__ = ["Budget", "FuzzCase", "random_case", "make_inputs"]
