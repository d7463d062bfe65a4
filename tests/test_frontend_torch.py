"""The PyTorch frontend (frontends/pytorch): torch.export -> chunkc IR.

Every import is checked by running the graph with chunkc's reference
interpreter at two sizes of each dynamic dimension and comparing with eager
PyTorch (max abs error <= 1e-4 in float32).  Small modules exercise many
converters quickly; the zoo models (GPT-2 eager and SDPA, ViT, UNet, the
Evoformer) are marked slow.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.export import Dim  # noqa: E402

import chunkc  # noqa: E402
from chunkc.errors import ChunkcError, UnsupportedOpError  # noqa: E402
from chunkc.ir.sizes import sym  # noqa: E402
from frontends.pytorch import ExportError, from_torch, preserved_ops, supported_ops  # noqa: E402

TOL = 1e-4


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    flat = []
    for o in out:
        flat.extend(_flat(o) if o is not None else [])
    return flat


def check_matches_eager(module, make_inputs, sizes, dynamic_shapes, **import_kw):
    """Import at sizes[0]; interpret at every size; compare with eager."""
    module = module.eval()
    graph = from_torch(module, make_inputs(sizes[0]), dynamic_shapes=dynamic_shapes, **import_kw)
    chunkc.verify(graph)
    for size in sizes:
        inputs = make_inputs(size)
        with torch.no_grad():
            ref = _flat(module(*inputs))
        got = chunkc.interpret(graph, *[x.numpy() for x in inputs if isinstance(x, torch.Tensor)])
        assert len(got) == len(ref), f"{len(got)} outputs, eager has {len(ref)}"
        for k, (r, g) in enumerate(zip(ref, got)):
            r = r.detach().numpy()
            assert g.shape == r.shape, f"size {size} output {k}: shape {g.shape} != {r.shape}"
            if r.dtype == np.bool_ or np.issubdtype(r.dtype, np.integer):
                np.testing.assert_array_equal(g, r, err_msg=f"size {size} output {k}")
            else:
                assert g.dtype == r.dtype, f"size {size} output {k}: dtype {g.dtype} != {r.dtype}"
                err = float(np.max(np.abs(g - r))) if r.size else 0.0
                assert err <= TOL, f"size {size} output {k}: max abs error {err}"
    return graph


def seq_inputs(d=8, batch=2, seed=0):
    def make(n):
        g = torch.Generator().manual_seed(seed + n)
        return (torch.randn(batch, n, d, generator=g),)
    return make


# -- small modules: many converters, fast -----------------------------------------------


class Activations(torch.nn.Module):
    def forward(self, x):
        y = [
            F.gelu(x), F.gelu(x, approximate="tanh"), F.silu(x), F.hardswish(x), F.hardsigmoid(x), F.mish(x),
            F.softplus(x, beta=2.0), F.leaky_relu(x, 0.2), F.elu(x, 0.5), F.selu(x), F.relu6(3 * x),
            torch.sigmoid(x), torch.tanh(x), torch.erf(x), torch.clamp(x, -0.5, 0.7), x.clamp(min=0.1),
            torch.rsqrt(x.abs() + 1), torch.reciprocal(x.abs() + 1), torch.log1p(x.abs()), torch.expm1(x),
            -x, torch.sign(x), torch.floor(x), torch.ceil(x), torch.round(x * 3), torch.log2(x.abs() + 1),
            torch.exp2(x), torch.square(x), x ** 3, 2.0 ** x, torch.sqrt(x.abs()), F.hardtanh(x, -0.3, 0.3),
            torch.trunc(x * 3), torch.atan(x), torch.sin(x), torch.cos(x), torch.tan(x * 0.3),
            F.logsigmoid(x), torch.lerp(x, x * 2, 0.3), torch.cosh(x),
        ]
        return torch.stack(y, 0)


class Arithmetic(torch.nn.Module):
    def forward(self, x, ids):
        a = torch.where(x > 0, x, x * 0.1)
        b = x.masked_fill(x < -0.5, -1.0)
        c = torch.div(ids, 3, rounding_mode="floor") + torch.div(ids - 7, 2, rounding_mode="trunc")
        d = (ids % 5) + torch.remainder(ids - 9, 4) + torch.fmod(ids - 9, 4)
        e = ids / 4  # int true division: float
        f = ((x > 0) & (x < 0.5)) | ~(x > -0.2) ^ (ids.unsqueeze(-1) > 3)
        g = torch.maximum(x, x.flip(-1)) - torch.minimum(x, 0.3 * x) + torch.addcmul(x, x, x, value=0.5)
        g = g + torch.atan2(x, x.flip(-1))
        h = x.to(torch.float64).sum(-1).to(torch.float32) + ids.to(torch.float32)
        return a, b, c, d, e, f, g, h, (x > 0).sum(-1), x.isnan().any(-1), x.isinf().all(-1)


def test_elementwise_activations_match_eager():
    check_matches_eager(Activations(), seq_inputs(), (5, 9), ({1: Dim("L", min=2, max=64)},))


def test_arithmetic_dtypes_and_rounding_match_eager():
    def make(n):
        g = torch.Generator().manual_seed(n)
        return torch.randn(2, n, 4, generator=g), torch.randint(0, 20, (2, n), generator=g)
    L = Dim("L", min=2, max=64)
    graph = check_matches_eager(Arithmetic(), make, (6, 11), ({1: L}, {1: L}))
    assert [str(v.type) for v in graph.inputs] == ["f32[2, L, 4]", "i64[2, L]"]


class Reductions(torch.nn.Module):
    def forward(self, x):
        m = x.max(-1)
        return (
            x.sum(), x.sum((0, 2)), x.mean(-1, keepdim=True), x.amax(1), x.amin((1, 2), keepdim=True),
            m.values, m.indices, x.min(1)[0], x.argmax(-1), x.argmin(), x.var(-1), x.std(1, correction=0),
            torch.var_mean(x, -1)[1], x.prod(-1), x.norm(dim=-1), torch.linalg.vector_norm(x, 1, -1),
            torch.logsumexp(x, -1), x.cumsum(1), F.softmax(x, 1), F.log_softmax(x, -1),
            torch.topk(x, 2, dim=-1).values, torch.topk(x, 2, dim=-1).indices, torch.sort(x, -1, True).values,
            torch.argsort(x, 1), (x > 0).any(1), (x > -3).all(), x.max(),
        )


def test_reductions_scans_sorting_match_eager():
    check_matches_eager(Reductions(), seq_inputs(d=6), (4, 13), ({1: Dim("L", min=2, max=64)},))


class Attention(torch.nn.Module):
    """Several ways to write attention, with symbolic-size reshapes and masks."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d, bias=False)
        self.ln = torch.nn.LayerNorm(d)
        self.rms = torch.nn.RMSNorm(d)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln(x)).split(D, dim=-1)
        q, k, v = (t.view(B, L, self.heads, self.hd).transpose(1, 2) for t in (q, k, v))
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
        s = (q @ k.transpose(-1, -2)) / self.hd ** 0.5
        a1 = torch.softmax(s.masked_fill(causal, float("-inf")), -1) @ v
        a2 = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        bias = torch.tril(torch.ones(L, L)) * 0.5
        a3 = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        a4 = F.scaled_dot_product_attention(q, k, v, attn_mask=~causal)
        e = torch.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)
        a5 = torch.einsum("bhqk,bhkd->bhqd", e, v)
        qf, kf = q.reshape(B * self.heads, L, self.hd), k.reshape(B * self.heads, L, self.hd)
        a6 = torch.baddbmm(torch.zeros(B * self.heads, L, L), qf, kf.transpose(1, 2), alpha=0.5).softmax(-1)
        o = (a1 + a2 + a3 + a4 + a5).transpose(1, 2).reshape(B, L, D)
        return self.out(self.rms(o)), a6


def test_attention_block_matches_eager_and_keeps_symbols():
    graph = check_matches_eager(Attention(), seq_inputs(d=16), (7, 12), ({1: Dim("L", min=2, max=128)},))
    L = sym("L")
    ops = {n.op.name for n in graph.nodes}
    assert {"layer_norm", "rms_norm", "scaled_dot_product_attention", "einsum", "linear", "split"} <= ops
    scores = [n for n in graph.nodes if n.op.name == "softmax"]
    assert any(n.output.shape[-2:] == (L, L) for n in scores)


class ConvBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding="same", groups=8, dilation=2)
        self.bn = torch.nn.BatchNorm2d(8)
        self.gn = torch.nn.GroupNorm(2, 8)
        self.up = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.c1 = torch.nn.Conv1d(4, 4, 3, stride=2, padding=1)
        self.inorm = torch.nn.InstanceNorm2d(8, affine=True)
        with torch.no_grad():  # non-trivial running statistics
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = self.gn(self.dw(h).contiguous(memory_format=torch.channels_last))
        h = self.inorm(h)
        p = F.max_pool2d(h, 2) + F.avg_pool2d(h, 2)
        q = F.max_pool2d(h, 3, stride=2, padding=1, ceil_mode=True)
        up = F.interpolate(p, scale_factor=2.0, mode="nearest") + F.interpolate(p, scale_factor=2.0, mode="bilinear")
        r = F.pad(up, (1, 1, 2, 0), mode="reflect") + F.pad(up, (1, 1, 2, 0)) + F.pad(up, (1, 1, 2, 0), mode="replicate")
        t = self.up(up)
        s = self.c1(t.flatten(2)[:, :, :64])
        g = F.adaptive_avg_pool2d(h, 1).flatten(1) + h.mean((2, 3))
        return r, q, t, s, g, F.pixel_shuffle(h, 2)


def test_conv_pool_norm_resize_block_matches_eager():
    H = Dim("H", min=2, max=32)

    def make(n):
        return (torch.randn(1, 4, n, n, generator=torch.Generator().manual_seed(n)),)
    graph = check_matches_eager(ConvBlock(), make, (8, 12), ({2: 2 * H, 3: 2 * H},))
    assert str(graph.inputs[0].type) == "f32[1, 4, 2*H, 2*H]"
    ops = {n.op.name for n in graph.nodes}
    assert {"conv", "conv_transpose", "batch_norm", "group_norm", "max_pool", "avg_pool", "interpolate", "pad",
            "adaptive_avg_pool"} <= ops


class ShapesAndIndexing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 6)
        self.register_buffer("table", torch.arange(40.0).reshape(10, 4))

    def forward(self, x, ids):
        B, L, D = x.shape
        a, b = x.chunk(2, dim=-1)
        parts = x.unbind(0)
        y = torch.cat([b, a, parts[0].unsqueeze(0).expand(B, L, D)[..., :2]], -1)
        pos = torch.arange(L).unsqueeze(0).expand(B, L)
        z = self.emb(ids) + self.emb(pos) + self.table[ids % 10].sum(-1, keepdim=True)
        g = torch.gather(x, 2, (ids % D).unsqueeze(-1))
        sel = x.index_select(1, torch.arange(0, L, 2)) if False else x[:, 1:-1:2]
        w = x.narrow(1, 1, L - 2).permute(2, 0, 1).flip(0).roll(1, 2)
        t = x.repeat(1, 2, 1)[:, ::3] + x.tile((1, 1, 2))[..., :D][:, :1]
        rows = x[torch.arange(B).unsqueeze(1), pos]  # two index tensors
        m = x[:, -1] + x.select(1, 0) + x[:, 2]
        q = x.clone()
        q[:, 0] = 0.0  # select_scatter
        q[:, 2:4] = q[:, 2:4] * 2  # slice_scatter
        full = torch.full((B, L), 3.0) + torch.zeros_like(ids) + x.new_ones(B, L) + torch.ones(L)
        idx = x.argmax(-1, keepdim=True)
        return y, z, g, sel, w, t, rows, m, q, full, x.transpose(0, 1).contiguous().view(L, -1), idx, \
            x.squeeze(0) if B == 1 else x.unsqueeze(1).squeeze(1), torch.stack([a, b], 1), \
            x.index_select(2, torch.tensor([0, 2]))


def test_shape_and_indexing_ops_match_eager():
    L = Dim("L", min=5, max=64)

    def make(n):
        g = torch.Generator().manual_seed(n)
        return torch.randn(2, n, 6, generator=g), torch.randint(0, 50, (2, n), generator=g)
    check_matches_eager(ShapesAndIndexing(), make, (7, 10), ({1: L}, {1: L}))


class Misc(torch.nn.Module):
    """Less common converters: 1-D/3-D conv and pooling, circular pad, GQA attention, prelu..."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 4, 3, padding=1)
        self.c3 = torch.nn.Conv3d(4, 2, (1, 3, 3), padding=(0, 1, 1))
        self.prelu = torch.nn.PReLU(4, init=0.1)
        self.emb = torch.nn.Embedding(10, 4, padding_idx=0)

    def forward(self, x, ids):  # x [1, 4, L], ids [1, L]
        L = x.shape[-1]
        a = F.avg_pool1d(self.c1(x), 2, ceil_mode=False) + F.avg_pool1d(x, 2, count_include_pad=False)
        b = F.adaptive_avg_pool1d(x, 3) + F.interpolate(x, size=3, mode="linear", align_corners=True)
        c = F.pad(x, (2, 1), mode="circular")[..., 1:-2] + F.pad(x, (-1, 1))
        d = self.prelu(x) + F.threshold(x, 0.2, -1.0) + torch.erfc(x) + torch.frac(3 * x) + (1 - x)
        v = self.c3(x.unsqueeze(2).expand(1, 4, 2, L).unsqueeze(-1).expand(1, 4, 2, L, 3))
        q = x.view(1, 4, L, 1).expand(1, 4, L, 2)
        kv = x[:, :2].view(1, 2, L, 1).expand(1, 2, L, 2)
        g = F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        e = self.emb(ids % 10).transpose(1, 2).movedim(1, 2)
        f = torch.full_like(x, 2.0).fill_(3.0) + x.new_full((1, 4, L), 0.5) + torch.isfinite(x)
        h = torch.tensor_split(x, 3, dim=1)[1].sum() + torch.std_mean(x, -1)[0].sum()
        i = torch.logical_xor(x > 0, ids.unsqueeze(1) > 3) | ((ids & 6) > 0).unsqueeze(1)
        j = x.cumsum(-1, dtype=torch.float64).to(torch.float32) + torch.where(x > 0, 1.0, x)
        return a, b, c, d, v, g, e, f, h, i, j


def test_less_common_converters_match_eager():
    L = Dim("L", min=3, max=64)

    def make(n):
        g = torch.Generator().manual_seed(n)
        return torch.randn(1, 4, n, generator=g), torch.randint(0, 20, (1, n), generator=g)
    check_matches_eager(Misc(), make, (6, 10), ({2: 2 * L}, {1: 2 * L}))


def test_advanced_indexing_adjacent_and_not_with_negative_indices():
    class M(torch.nn.Module):
        def forward(self, x, i):
            return x[i, :, i % 3], x[:, i, i % 3], x[..., -1][i]

    idx = torch.tensor([[0, -1], [2, 4]])

    def make(n):
        return torch.randn(5, n, 3, generator=torch.Generator().manual_seed(n)), idx
    check_matches_eager(M(), make, (6, 9), ({1: Dim("L", min=5, max=64)}, None))


def test_symbolic_scalars_as_tensor_operands():
    class M(torch.nn.Module):
        def forward(self, x):
            L = x.shape[1]
            pos = torch.arange(L, dtype=torch.float32) / L  # tensor / SymInt
            return x * ((L - 1) / 2) + pos.unsqueeze(-1) + x.shape[1] // 3  # SymFloat, SymInt operands

    g = check_matches_eager(M(), seq_inputs(d=3, batch=1), (5, 11), ({1: Dim("L", min=2, max=99)},))
    assert "size_tensor" in {n.op.name for n in g.nodes}


def test_symbolic_sizes_survive_reshapes():
    class M(torch.nn.Module):
        def forward(self, x):
            B, L, D = x.shape
            y = x.reshape(B, L * 4, D // 4)  # 4*L
            z = x.reshape(B, L // 2, 2, D).sum(2)  # L//2 (L is even here)
            return y, z

    L2 = Dim("L2", min=2, max=512)
    g = check_matches_eager(M(), seq_inputs(d=8, batch=1), (8, 20), ({1: 2 * L2},))
    shapes = {str(v.type) for v in g.outputs}
    assert shapes == {"f32[1, 8*L2, 2]", "f32[1, L2, 8]"}, shapes
    assert str(g.inputs[0].type) == "f32[1, 2*L2, 8]"


def test_weights_become_sanitized_constants():
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)).eval()
    g = from_torch(m, (torch.randn(5, 4),))
    names = {c.name: c for c in g.constants}
    assert {"v0_weight", "v0_bias", "v2_weight", "v2_bias"} <= set(names)
    np.testing.assert_array_equal(names["v0_weight"].data, m[0].weight.detach().numpy())
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v.name) for v in g.values())


def test_kwargs_none_and_dict_outputs():
    class M(torch.nn.Module):
        def forward(self, x, *, scale=None, mask=None):
            out = x * 2 if scale is None else x * scale
            return {"y": out, "nothing": None, "z": (out.sum(-1), None)}

    x = torch.randn(3, 5)
    g = from_torch(M().eval(), (x,), kwargs={"mask": torch.ones(3, 5)},
                   dynamic_shapes={"x": {0: Dim("B")}, "mask": {0: Dim("B")}})
    assert [v.name for v in g.inputs] == ["x", "mask"]
    got = chunkc.interpret(g, x.numpy(), np.ones((3, 5), np.float32))
    assert len(got) == 2
    np.testing.assert_allclose(got[0], 2 * x.numpy(), atol=TOL)
    np.testing.assert_allclose(got[1], (2 * x).sum(-1).numpy(), atol=TOL)


def test_dim_auto_gets_a_readable_name():
    class M(torch.nn.Module):
        def forward(self, x):
            return x.softmax(-1)
    g = from_torch(M(), (torch.randn(3, 7),), dynamic_shapes=({1: Dim.AUTO},))
    assert str(g.inputs[0].type) == "f32[3, x_dim1]"


def test_preserved_ops_are_kept_whole():
    kept = {str(p.op) for p in preserved_ops()}
    assert {"aten.layer_norm.default", "aten.group_norm.default", "aten.scaled_dot_product_attention.default",
            "aten.linear.default"} <= kept
    assert all(p.reason for p in preserved_ops())
    ops = supported_ops()
    assert ops == sorted(ops) and {"aten.linear", "aten.convolution", "aten.index", "aten.add"} <= set(ops)


# -- unmapped ops, opaque barriers, export failures --------------------------------------


class UsesBessel(torch.nn.Module):
    def forward(self, x):
        y = torch.special.bessel_j0(x) + 1  # BESSEL_LINE
        return torch.special.bessel_j0(y) * torch.tanh(x)


def _line_of(marker: str) -> int:
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise AssertionError(marker)


def test_unmapped_op_error_lists_op_count_and_source_line():
    with pytest.raises(UnsupportedOpError) as info:
        from_torch(UsesBessel(), (torch.randn(2, 6),), dynamic_shapes=({1: Dim("L")},))
    msg = str(info.value)
    assert "UsesBessel" in msg
    assert "aten.special_bessel_j0.default x2" in msg
    assert f"test_frontend_torch.py:{_line_of('BESSEL_LINE')}" in msg
    assert "torch.special.bessel_j0(x) + 1" in msg
    assert "opaque_unknown=True" in msg
    assert "tanh" not in msg.split("\n")[1]  # only unmapped ops are listed


def test_every_unmapped_op_is_listed_at_once():
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x) + torch.special.bessel_j1(x) + torch.special.bessel_j0(2 * x)
    with pytest.raises(UnsupportedOpError) as info:
        from_torch(M(), (torch.randn(4),))
    msg = str(info.value)
    assert "2 ATen op(s)" in msg and "bessel_j0.default x2" in msg and "bessel_j1.default x1" in msg


def test_opaque_unknown_builds_barrier_nodes_the_torch_backend_runs():
    g = from_torch(UsesBessel(), (torch.randn(2, 6),), dynamic_shapes=({1: Dim("L")},), opaque_unknown=True)
    opaque = [n for n in g.nodes if n.op.name == "opaque"]
    assert len(opaque) == 2
    assert opaque[0].attrs["target"] == "aten::special_bessel_j0.default"
    assert opaque[0].attrs["result_types"] == ("f32[2, L]",)
    with pytest.raises(ChunkcError, match="no NumPy implementation"):
        chunkc.interpret(g, np.zeros((2, 6), np.float32))
    fn = chunkc.compile(g, backend="torch")
    x = torch.randn(2, 9)
    out = fn(x)
    out = out[0] if isinstance(out, (list, tuple)) else out
    torch.testing.assert_close(out, UsesBessel()(x), atol=TOL, rtol=0)


def test_data_dependent_shapes_cannot_become_opaque():
    class M(torch.nn.Module):
        def forward(self, x):
            return x[x > 0].sum() + x.sum()
    with pytest.raises(UnsupportedOpError, match="data-dependent"):
        from_torch(M(), (torch.randn(4, 5),), opaque_unknown=True)


def test_export_failure_names_model_and_what_to_change():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum().item() > 0:
                return x * 2
            return x

    with pytest.raises(ExportError) as info:
        from_torch(Branchy(), (torch.randn(3, 4),))
    msg = str(info.value)
    assert "Branchy" in msg and "data-dependent" in msg and "torch said:" in msg


def test_export_failure_for_specialized_dim_suggests_dim_bounds():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x.view(2, 8, -1)  # ties L to 8

    with pytest.raises(ExportError) as info:
        from_torch(Fixed(), (torch.randn(2, 8, 4),), dynamic_shapes=({1: Dim("L")},))
    msg = str(info.value)
    assert "Fixed" in msg and "Dim" in msg and "make that dimension static" in msg


def _short_failure(exc: ExportError) -> str:
    """The message, after checking that torch's traceback is not chained to it."""
    import traceback

    assert exc.__cause__ is None and exc.__suppress_context__
    printed = "".join(traceback.format_exception(exc))
    assert printed.count("\n") < 20, printed  # our few frames and the message, not torch's pages
    assert exc.torch_message  # torch's own text is kept for whoever needs it
    return str(exc)


def test_dims_the_model_ties_are_named_with_the_fix():
    class Pair(torch.nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(ExportError) as info:
        from_torch(Pair(), (torch.randn(3, 8), torch.randn(3, 8)), dynamic_shapes=({1: Dim("L")}, {1: Dim("M")}))
    msg = _short_failure(info.value)
    assert "M must always equal L" in msg and "use one Dim for both" in msg


def _tiny_bert():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    return transformers.BertModel(config, add_pooling_layer=False).eval()


@pytest.mark.slow
def test_position_limit_is_reported_once_with_the_fix():
    """BERT slices its position table: torch.export needs L <= max_position_embeddings."""
    model, ids = _tiny_bert(), torch.randint(0, 100, (1, 16))
    with pytest.raises(ExportError) as info:
        from_torch(model, (ids,), dynamic_shapes=({1: Dim("L")},))
    msg = _short_failure(info.value)
    assert "BertModel" in msg and "L <= 64" in msg
    assert "BertModel.config.max_position_embeddings = 64" in msg
    assert msg.count("Dim('L', max=64)") == 1 and "torch said" not in msg
    # the fix, as written, works
    g = from_torch(model, (ids,), dynamic_shapes=({1: Dim("L", max=64)},))
    assert g.symbols() == {"L"}


@pytest.mark.slow
def test_kv_cache_output_is_reported_once_with_the_fix():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    model, ids = transformers.GPT2Model(config).eval(), torch.randint(0, 100, (1, 16))
    dims = {"input_ids": {1: Dim("L", max=64)}}
    with pytest.raises(ExportError) as info:
        from_torch(model, (ids,), dynamic_shapes=dims)
    msg = _short_failure(info.value)
    assert "GPT2Model" in msg and "KV cache (DynamicCache)" in msg
    assert msg.count("use_cache=False") == 1 and "torch said" not in msg
    g = from_torch(model, (ids,), kwargs={"use_cache": False}, dynamic_shapes={**dims, "use_cache": None})
    assert g.symbols() == {"L"}


def test_dim_pinned_by_a_guard_is_reported():
    class FixedTable(torch.nn.Module):
        """Patches + a position table for 4x4 patches: only one image size works."""

        def __init__(self):
            super().__init__()
            self.patch = torch.nn.Conv2d(3, 8, 4, stride=4)
            self.pos = torch.nn.Parameter(torch.randn(1, 17, 8))

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([torch.zeros(1, 1, 8), t], 1)
            return t + self.pos

    h = Dim("h", min=2, max=16)
    with pytest.raises(ExportError) as info:
        from_torch(FixedTable(), (torch.randn(1, 3, 16, 16),), dynamic_shapes=({2: 4 * h, 3: 4 * h},))
    msg = str(info.value)
    assert "FixedTable" in msg and "h must equal 4" in msg


# -- the zoo: real models, dynamic sizes ----------------------------------------------------


def _zoo(name, **kw):
    models = pytest.importorskip("chunkc.zoo")
    return getattr(models, name)(**kw)


def check_case(case):
    sizes = case.test_sizes
    assert sizes[0] != sizes[1]
    return check_matches_eager(case.module, case.make_inputs, sizes, case.dynamic_shapes())


def _baked_sizes(graph, sizes):
    """Values whose shape holds one of the test sizes as a plain number."""
    return [str(v) for v in graph.values() if any(isinstance(s, int) and s in sizes for s in v.shape)]


@pytest.mark.slow
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_gpt2_matches_eager_at_two_lengths_and_keeps_L(attn):
    case = _zoo("gpt2", attn=attn)
    g = check_case(case)
    L = sym(case.dynamic_name)
    assert g.symbols() == {case.dynamic_name}
    assert str(g.outputs[0].type).startswith(f"f32[1, {case.dynamic_name}, ")
    assert _baked_sizes(g, case.test_sizes) == []
    ops = {n.op.name for n in g.nodes}
    if attn == "eager":
        scores = [n.output for n in g.nodes if n.op.name == "softmax"]
        assert scores and all(v.shape[-2:] == (L, L) for v in scores)
    else:
        assert "scaled_dot_product_attention" in ops
        sdpa = [n for n in g.nodes if n.op.name == "scaled_dot_product_attention"]
        assert all(n.inputs[0].shape[-2] == L for n in sdpa)
    assert "opaque" not in ops


@pytest.mark.slow
def test_vit_matches_eager_at_two_image_sizes():
    case = _zoo("vit")
    g = check_case(case)
    h = sym(case.dynamic_name)
    tokens = g.outputs[0].shape[1]
    assert sympy.simplify(tokens - (h * h + 1)) == 0, tokens
    assert "opaque" not in {n.op.name for n in g.nodes}


@pytest.mark.slow
def test_unet_with_attention_matches_eager_at_two_image_sizes():
    case = _zoo("unet")
    g = check_case(case)
    ops = {n.op.name for n in g.nodes}
    assert {"group_norm", "conv", "scaled_dot_product_attention", "interpolate"} <= ops
    assert g.symbols() == {case.dynamic_name}
    assert "opaque" not in ops


@pytest.mark.slow
def test_evoformer_matches_eager_at_two_residue_counts():
    case = _zoo("evoformer")
    g = check_case(case)
    N = sym(case.dynamic_name)
    pair = [v for v in g.outputs if v.rank == 4 and v.shape[1] == N and v.shape[2] == N]
    assert pair, [str(v.type) for v in g.outputs]
    assert "opaque" not in {n.op.name for n in g.nodes}


def test_docs_list_the_current_converter_table():
    from frontends.pytorch import docs

    text = docs.DOC.read_text()
    assert docs.render(text) == text, "docs/frontend_torch.md is stale: run python -m frontends.pytorch.docs"
    assert "`aten.scaled_dot_product_attention`" in docs.supported_ops_markdown()


def test_sizes_are_simplified_over_the_dim_range():
    from frontends.pytorch.symbols import SymbolMap

    m = SymbolMap()
    h = sym("h")
    m.ranges["h"] = (2, 16)
    assert m.simplify(4 * sympy.floor((8 * h + 1) / (2 * h))) == 16  # Swin's window count
    assert m.simplify(sympy.floor(8 * h ** 2 / h) + sympy.Mod(4 * h, 2)) == 8 * h
    floor_half = sympy.floor(h / 2)
    assert m.simplify(floor_half) == floor_half  # not linear: kept


def test_a_converter_that_gives_up_leaves_the_graph_as_it_was(monkeypatch):
    """Its nodes, constants, names and use lists are undone; a weight it made a constant is made
    again, under the same name, by the next op that reads it."""
    from frontends.pytorch.context import NotConvertible
    from frontends.pytorch.converters.registry import CONVERTERS

    aten = torch.ops.aten
    seen = {}

    def gives_up(cx, args):
        seen["input"] = args.self if isinstance(args.self, chunkc.Value) else args.other
        seen["partial"] = cx.graph.add_node("neg", [args.other], name="partial")  # built, then abandoned
        raise NotConvertible("this test's converter gives up after building a node")

    monkeypatch.setitem(CONVERTERS, aten.mul, gives_up)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4))

        def forward(self, x):
            return x * self.w + self.w  # mul fails (kept as an opaque node), add reads w again

    m = M()
    g = from_torch(m, (torch.randn(3, 4),), opaque_unknown=True)
    chunkc.verify(g)  # the use lists and the name table are consistent
    assert [n.op.name for n in g.nodes] == ["opaque", "add"]
    assert [c.name for c in g.constants] == ["w"] and not g.has_name("partial")
    assert seen["partial"] not in g.nodes and seen["input"].users == (g.nodes[0],)
    x = torch.randn(3, 4)
    out = chunkc.compile(g, backend="torch")(x)
    torch.testing.assert_close(out, m(x).detach())


def test_weights_are_read_only_views_of_the_modules_storage():
    """The import does not copy the weights (a copy of every weight cost more than the rest of
    the import): each constant is a read-only view of the module's tensor; the compiled PyTorch
    module makes its own copies and computes what the module computes."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    g = from_torch(module, (x,))
    weight = module[0].weight.detach().numpy()
    views = [c.data for c in g.constants if np.shares_memory(c.data, weight)]
    assert len(views) == 1 and not views[0].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        views[0][0, 0] = 1.0
    compiled = chunkc.compile(g)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), module(x).numpy(), rtol=1e-5, atol=1e-6)
        for p in compiled.parameters():
            assert not np.shares_memory(p.detach().numpy(), weight)
        for b in compiled.buffers():
            assert not np.shares_memory(b.detach().numpy(), weight)
