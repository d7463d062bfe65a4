"""The benchmark model zoo: every case builds, runs at both test sizes with the expected
shapes, is deterministic, and exports with torch.export at a symbolic size; the Evoformer's
pieces match naive loop references and its hand-chunked variant matches the unchunked block."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from chunkc.zoo import (
    EvoformerConfig,
    ModelCase,
    chunk_apply,
    evoformer,
    evoformer_chunked,
    gpt2,
    make_dim,
    transformer,
    unet,
    vit,
)
from chunkc.zoo.evoformer import GatedAttention, OuterProductMean, TriangleAttention, TriangleMultiplication

slow = pytest.mark.slow


def _outputs(out: object) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)  # type: ignore[return-value]


# Expected output shapes per size, written independently of the factories.
FAST: dict[str, tuple[Callable[[], ModelCase], Callable[[int], list[tuple[int, ...]]]]] = {
    "transformer_eager": (lambda: transformer(n_layer=2), lambda L: [(1, L, 256)]),
    "transformer_sdpa": (lambda: transformer(n_layer=1, attn="sdpa"), lambda L: [(1, L, 256)]),
    "evoformer": (lambda: evoformer(), lambda N: [(1, 8, N, 32), (1, N, N, 16)]),
}
SLOW = {
    "gpt2_eager": (lambda: gpt2(), lambda L: [(1, L, 128)]),
    "gpt2_sdpa": (lambda: gpt2(attn="sdpa"), lambda L: [(1, L, 128)]),
    "vit_crop": (lambda: vit(), lambda H: [(1, (H // 16) ** 2 + 1, 128)]),
    "vit_interpolate": (lambda: vit(pos_embedding="interpolate"), lambda H: [(1, (H // 16) ** 2 + 1, 128)]),
    "unet": (lambda: unet(), lambda H: [(1, 3, H, H)]),
}
CASES = [pytest.param(k, *v, id=k) for k, v in FAST.items()] + [
    pytest.param(k, *v, id=k, marks=slow) for k, v in SLOW.items()
]


@pytest.mark.parametrize("key, factory, expected", CASES)
def test_case_runs_at_both_test_sizes(key: str, factory, expected) -> None:
    case = factory()
    assert not case.module.training
    assert all(p.dtype == torch.float32 for p in case.module.parameters())
    small, large = case.test_sizes
    assert small != large
    for size in case.test_sizes:
        case.check_size(size)
        with torch.no_grad():
            outs = _outputs(case.module(*case.make_inputs(size)))
        assert [tuple(o.shape) for o in outs] == expected(size)
        assert all(torch.isfinite(o).all() for o in outs)
    for size in case.bench_sizes:
        case.check_size(size)


@pytest.mark.parametrize("key, factory, expected", CASES)
def test_case_is_deterministic(key: str, factory, expected) -> None:
    a, b = factory(), factory()
    size = a.test_sizes[0]
    with torch.no_grad():
        for x, y in zip(_outputs(a.module(*a.make_inputs(size))), _outputs(b.module(*b.make_inputs(size)))):
            assert torch.equal(x, y)


@pytest.mark.parametrize("key, factory, expected", CASES)
def test_case_exports_with_a_symbolic_size(key: str, factory, expected) -> None:
    case = factory()
    ep = torch.export.export(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    # The dynamic axis of the first input is symbolic, not specialized to the example size.
    first_name = ep.graph_signature.user_inputs[0]
    first = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == first_name)
    dyn_axis = next(iter(case.dynamic_shapes()[0]))
    assert isinstance(first.meta["val"].shape[dyn_axis], torch.SymInt)
    # One exported program serves the other test size, with the eager values.
    size = case.test_sizes[1]
    inputs = case.make_inputs(size)
    with torch.no_grad():
        got = _outputs(ep.module()(*inputs))
        want = _outputs(case.module(*inputs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


@slow
def test_gpt2_returns_last_hidden_state_only() -> None:
    case = gpt2(n_layer=1)
    (ids,) = case.make_inputs(16)
    assert ids.dtype == torch.int64 and ids.shape == (1, 16)
    with torch.no_grad():
        full = case.module.model(ids, use_cache=False)
        assert torch.equal(case.module(ids), full.last_hidden_state)



@slow
def test_gpt2_eager_and_sdpa_attention_agree() -> None:
    eager, sdpa = gpt2(n_layer=1, attn="eager"), gpt2(n_layer=1, attn="sdpa")
    x = eager.make_inputs(20)
    with torch.no_grad():
        torch.testing.assert_close(eager.module(*x), sdpa.module(*x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_explicit_attention_matches_sdpa(causal: bool) -> None:
    eager = transformer(n_layer=2, attn="eager", causal=causal)
    sdpa = transformer(n_layer=2, attn="sdpa", causal=causal)
    x = eager.make_inputs(24)
    with torch.no_grad():
        torch.testing.assert_close(eager.module(*x), sdpa.module(*x), rtol=1e-5, atol=1e-5)


def test_transformer_causal_rows_ignore_the_future() -> None:
    case = transformer(n_layer=1, causal=True)
    (x,) = case.make_inputs(16)
    y = x.clone()
    y[:, 10:] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(case.module(x)[:, :10], case.module(y)[:, :10])
        assert not torch.allclose(case.module(x)[:, 10:], case.module(y)[:, 10:])


# --------------------------------------------------------------------------- Evoformer


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 64])
@pytest.mark.parametrize("n_blocks", [1, 2])
def test_evoformer_hand_chunked_matches_unchunked(chunk_size: int, n_blocks: int) -> None:
    whole = evoformer(n_blocks=n_blocks)
    chunked = evoformer_chunked(chunk_size, n_blocks=n_blocks)
    assert chunked.module.chunk_size == chunk_size and whole.module.chunk_size is None
    for size in whole.test_sizes:  # 12 and 20: chunk sizes that do and do not divide them
        inputs = whole.make_inputs(size)
        with torch.no_grad():
            for c, w in zip(chunked.module(*inputs), whole.module(*inputs)):
                torch.testing.assert_close(c, w, rtol=0, atol=1e-5)


def test_evoformer_chunking_really_slices() -> None:
    """With chunk_size=2 every chunked attention sees row batches of at most 2."""
    case = evoformer_chunked(2)
    seen: list[int] = []
    for mod in case.module.modules():
        if isinstance(mod, GatedAttention):
            mod.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    with torch.no_grad():
        case.module(*case.make_inputs(12))
    assert seen and max(seen) == 2


def test_evoformer_set_chunk_size_rejects_zero() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        evoformer().module.set_chunk_size(0)


def _naive_gated_attention(att: GatedAttention, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Per-row, per-head, per-query loops over x [R, Q, c]; bias [H, Q, K] shared by the rows."""
    R, Q, _ = x.shape
    H, c = att.heads, att.c_hidden
    q, k, v, g = att.linear_q(x), att.linear_k(x), att.linear_v(x), torch.sigmoid(att.linear_g(x))
    out = torch.zeros(R, Q, H * c)
    for r in range(R):
        for h in range(H):
            sl = slice(h * c, (h + 1) * c)
            for i in range(Q):
                logits = torch.stack([q[r, i, sl] @ k[r, j, sl] / math.sqrt(c) for j in range(Q)])
                if bias is not None:
                    logits = logits + bias[h, i]
                w = torch.softmax(logits, dim=0)
                out[r, i, sl] = sum(w[j] * v[r, j, sl] for j in range(Q))
    return att.linear_o(g * out)


def test_gated_attention_matches_loops() -> None:
    torch.manual_seed(1)
    att = GatedAttention(6, 4, 3)
    x, bias = torch.randn(2, 5, 6), torch.randn(3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(att(x.unsqueeze(0), bias), _naive_gated_attention(att, x, bias).unsqueeze(0))


@pytest.mark.parametrize("starting", [True, False])
def test_triangle_attention_matches_the_algorithm(starting: bool) -> None:
    """Algorithm 13/14: o_ij attends over k with q_ij.k_ik + b_jk (start) or q_ij.k_kj + b_ki (end)."""
    torch.manual_seed(2)
    cfg = EvoformerConfig(c_z=6, heads_pair=2, c_hidden_pair_att=3)
    tri = TriangleAttention(cfg, starting=starting).eval()
    N = 4
    z = torch.randn(1, N, N, 6)
    with torch.no_grad():
        got = tri(z)[0]
        zn = tri.norm(z)[0]
        b = tri.linear_b(zn)  # [N, N, H]
        a = tri.attention
        q, k, v = a.linear_q(zn), a.linear_k(zn), a.linear_v(zn)
        g = torch.sigmoid(a.linear_g(zn))
        o = torch.zeros(N, N, 6)
        for i in range(N):
            for j in range(N):
                for h in range(2):
                    s = slice(3 * h, 3 * h + 3)
                    if starting:
                        logits = torch.stack([q[i, j, s] @ k[i, kk, s] / math.sqrt(3) + b[j, kk, h] for kk in range(N)])
                        vals = torch.stack([v[i, kk, s] for kk in range(N)])
                    else:
                        logits = torch.stack([q[i, j, s] @ k[kk, j, s] / math.sqrt(3) + b[kk, i, h] for kk in range(N)])
                        vals = torch.stack([v[kk, j, s] for kk in range(N)])
                    o[i, j, s] = torch.softmax(logits, 0) @ vals
        want = a.linear_o(g * o)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("outgoing", [True, False])
def test_triangle_multiplication_matches_the_algorithm(outgoing: bool) -> None:
    torch.manual_seed(3)
    cfg = EvoformerConfig(c_z=5, c_hidden_mul=4)
    tri = TriangleMultiplication(cfg, outgoing=outgoing).eval()
    N = 4
    z = torch.randn(1, N, N, 5)
    with torch.no_grad():
        zn = tri.norm_in(z)[0]
        a = torch.sigmoid(tri.linear_a_g(zn)) * tri.linear_a_p(zn)
        b = torch.sigmoid(tri.linear_b_g(zn)) * tri.linear_b_p(zn)
        x = torch.zeros(N, N, 4)
        for i in range(N):
            for j in range(N):
                for k in range(N):
                    x[i, j] += a[i, k] * b[j, k] if outgoing else a[k, i] * b[k, j]
        want = torch.sigmoid(tri.linear_g(zn)) * tri.linear_z(tri.norm_out(x))
        torch.testing.assert_close(tri(z)[0], want)


def test_outer_product_mean_matches_the_algorithm() -> None:
    torch.manual_seed(4)
    cfg = EvoformerConfig(c_m=6, c_z=5, c_hidden_opm=3)
    opm = OuterProductMean(cfg).eval()
    S, N = 3, 4
    m = torch.randn(1, S, N, 6)
    with torch.no_grad():
        mn = opm.norm(m)[0]
        a, b = opm.linear_a(mn), opm.linear_b(mn)
        o = torch.stack([
            torch.stack([sum(torch.outer(a[s, i], b[s, j]) for s in range(S)).flatten() / S for j in range(N)])
            for i in range(N)
        ])
        torch.testing.assert_close(opm(m)[0], opm.linear_out(o))


# --------------------------------------------------------------------------- helpers


def test_chunk_apply_matches_the_whole_call() -> None:
    x, w = torch.randn(2, 7, 3), torch.randn(3, 5)
    fn = lambda t, m: torch.tanh(t @ m).transpose(0, 1)  # rows of axis 1 come out on axis 0
    want = fn(x, w)
    for c in (1, 2, 3, 7, 10):
        torch.testing.assert_close(chunk_apply(fn, (x,), (w,), axis=1, out_axis=0, chunk_size=c), want)
    assert chunk_apply(fn, (x,), (w,), axis=1, out_axis=0, chunk_size=None) is not None


def test_chunk_apply_errors_name_the_problem() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        chunk_apply(torch.relu, (x,), axis=0, chunk_size=0)
    with pytest.raises(ValueError, match="disagree on axis 0"):
        chunk_apply(torch.add, (x, torch.randn(5, 3)), axis=0, chunk_size=2)


@slow
def test_model_case_sizes() -> None:
    case = unet()
    assert case.size_multiple == 2 and case.symbol_value(24) == 12
    with pytest.raises(ValueError, match="not a multiple of 2"):
        case.check_size(25)
    with pytest.raises(ValueError, match="outside"):
        case.check_size(4096)
    with pytest.raises(ValueError, match="not multiples of 16"):
        make_dim("h", 20, 1024, multiple=16)

