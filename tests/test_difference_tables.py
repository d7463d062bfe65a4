"""Difference tables (chunkc.passes.difference_tables): a value computed elementwise from a
position difference j - i, and a lookup by it, computed once per difference and gathered.
Values equal the unrewritten graph's on NumPy and PyTorch; chains that read another
varying input, or a float difference, stay as they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chunkc
from chunkc.ir import Graph
from chunkc.ir.elements import ElementAnalysis, prove_equal
from chunkc.passes.canonicalize import canonicalize
from chunkc.passes.difference_tables import find_regions, tabulate_differences

BUCKETS, HEADS, MAX_DISTANCE = 32, 4, 128
RNG = np.random.default_rng(0)
TABLE = RNG.standard_normal((BUCKETS, HEADS)).astype(np.float32)


def difference(g: Graph, rows: str = "L", cols: str = "L", start: int = 0):
    """``D[i, j] = (j + start) - i`` of shape [rows, cols], as transformers builds it."""
    i = g.op("unsqueeze", g.op("arange", end=rows), axis=1)
    j = g.op("unsqueeze", g.op("arange", start=start, end=normalize_end(cols, start)), axis=0)
    return g.op("sub", j, i)


def normalize_end(cols, start):
    return cols if start == 0 else f"{cols} + {start}"


def t5_bias_graph(row_sums: bool = False) -> Graph:
    """T5's bidirectional relative position bias [1, H, L, L] added to scores [1, H, L, L]
    (``row_sums``: and summed over the keys, so the output is small beside the bias)."""
    g = Graph("t5_bias")
    scores = g.add_input("scores", "f32", (1, HEADS, "L", "L"))
    d = difference(g)
    half = BUCKETS // 2
    buckets = g.op("mul", g.op("cast", g.op("gt", d, 0), dtype="i64"), half)
    n = g.op("abs", d)
    exact = half // 2
    small = g.op("lt", n, exact)
    large = g.op("div", g.op("div", g.op("cast", n, dtype="f32"), float(exact)), 1.0)
    large = g.op("mul", g.op("div", g.op("log", large), float(np.log(MAX_DISTANCE / exact))), float(half - exact))
    large = g.op("add", g.op("cast", large, dtype="i64"), exact)
    large = g.op("minimum", large, g.op("full_like", large, value=half - 1))
    buckets = g.op("add", buckets, g.op("where", small, n, large))
    table = g.add_constant("relative_attention_bias", TABLE)
    bias = g.op("unsqueeze", g.op("permute", g.op("embedding", table, buckets), dims=(2, 0, 1)), axis=0)
    out = g.op("add", scores, g.op("contiguous", bias))
    g.set_outputs(g.op("sum", out, axes=(3,), keepdim=True) if row_sums else out)
    chunkc.verify(g)
    return g


def t5_bias_numpy(scores: np.ndarray) -> np.ndarray:
    """The same bias written out in NumPy (transformers' _relative_position_bucket)."""
    length = scores.shape[-1]
    d = np.arange(length)[None, :] - np.arange(length)[:, None]
    half, exact = BUCKETS // 2, BUCKETS // 4
    n = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) where n < exact: not selected
        large = np.log(n.astype(np.float32) / np.float32(exact)) / np.float32(np.log(MAX_DISTANCE / exact))
        large = (large * np.float32(half - exact)).astype(np.int64) + exact
    buckets = (d > 0) * half + np.where(n < exact, n, np.minimum(large, half - 1))
    return scores + TABLE[buckets].transpose(2, 0, 1)[None]


def alibi_graph() -> Graph:
    """ALiBi: x - |j - i| * slope, with the slope a [1, 1] constant."""
    g = Graph("alibi")
    x = g.add_input("x", "f32", ("L", "L"))
    d = difference(g)
    slope = g.add_constant("slope", np.full((1, 1), 0.25, np.float32))
    g.set_outputs(g.op("add", x, g.op("neg", g.op("mul", g.op("cast", g.op("abs", d), dtype="f32"), slope))))
    chunkc.verify(g)
    return g


def run_both(g: Graph, inputs: tuple, sizes: dict) -> list[np.ndarray]:
    outs = []
    for backend in ("numpy", "torch"):
        fn = chunkc.compile(g, backend=backend)
        got = fn(*inputs) if backend == "numpy" else fn(*[torch.from_numpy(a) for a in inputs])
        got = got[0] if isinstance(got, (tuple, list)) else got
        outs.append(got.numpy() if isinstance(got, torch.Tensor) else np.asarray(got))
    return outs


def big_values(g: Graph, size: int) -> int:
    """Nodes whose output has at least L x L elements at L = size."""
    from chunkc.ir.sizes import evaluate
    return sum(evaluate(n.outputs[0].type.numel(), {"L": size}) >= size * size for n in g.nodes)


@pytest.mark.parametrize("length", [1, 7, 300])
def test_t5_bias_is_tabulated_and_equal(length: int) -> None:
    g = t5_bias_graph()
    regions = find_regions(g)
    assert len(regions) == 1 and len(regions[0].nodes) == 17 and len(regions[0].gathers) == 1
    new, roots = tabulate_differences(g)
    assert roots == [regions[0].root.name]
    assert "log" not in {n.op.name for n in new.nodes if n.outputs[0].rank > 1}  # the log runs on the 1-D table
    assert big_values(new, 300) < big_values(g, 300) - 10
    scores = RNG.standard_normal((1, HEADS, length, length)).astype(np.float32)
    want = t5_bias_numpy(scores)
    before = run_both(g, (scores,), {"L": length})
    after = run_both(new, (scores,), {"L": length})
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)  # the same float ops on the same inputs: bit for bit
        np.testing.assert_allclose(a, want, rtol=0, atol=1e-6)


def test_alibi_bias_is_gathered_from_its_table() -> None:
    g = alibi_graph()
    new = canonicalize(g)
    assert new is not g
    assert {"abs", "mul", "neg"} & {n.op.name for n in new.nodes if n.outputs[0].rank > 1} == set()
    length = 9
    d = np.arange(length)[None, :] - np.arange(length)[:, None]
    want = -(np.abs(d).astype(np.float32) * np.float32(0.25))
    zeros = np.zeros((length, length), np.float32)
    for before, after in zip(run_both(g, (zeros,), {}), run_both(new, (zeros,), {})):
        np.testing.assert_array_equal(after, before)
        np.testing.assert_array_equal(after, want)


def test_offset_rectangular_difference_with_size_one_axis() -> None:
    """D = (j + 3) - i of shape [1, M, N] (two sizes): the table spans M + N - 1 values."""
    g = Graph("rect")
    x = g.add_input("x", "f32", (1, "M", "N"))
    d = g.op("reshape", difference(g, "M", "N", start=3), shape=(1, "M", "N"))
    clipped = g.op("maximum", g.op("minimum", d, 4), -2)  # clamp(j - i + 3, -2, 4)
    g.set_outputs(g.op("mul", x, g.op("cast", g.op("mul", clipped, clipped), dtype="f32")))
    new, roots = tabulate_differences(g)
    assert roots
    x_in = RNG.standard_normal((1, 5, 11)).astype(np.float32)
    d_np = np.arange(3, 14)[None, :] - np.arange(5)[:, None]
    want = x_in * (np.clip(d_np, -2, 4) ** 2).astype(np.float32)[None]
    for before, after in zip(run_both(g, (x_in,), {}), run_both(new, (x_in,), {})):
        np.testing.assert_array_equal(after, before)
        np.testing.assert_array_equal(after, want)


def test_bool_window_mask_is_tabulated_and_equal() -> None:
    """A sliding-window mask -4 < j - i <= 0: a bool chain, spread from a 1-D table; its
    element formula is still the mask's (later rewrites can still recognise it)."""
    g = Graph("mask")
    scores = g.add_input("s", "f32", ("L", "L"))
    d = difference(g)
    mask = g.op("logical_and", g.op("le", d, 0), g.op("gt", g.op("add", d, 4), 0))
    g.set_outputs(g.op("where", mask, scores, g.scalar(-1e9, "f32")))
    new, roots = tabulate_differences(g)
    assert roots and "toeplitz" in {n.op.name for n in new.nodes}
    old_mask = ElementAnalysis(g).of(g.outputs[0].producer.inputs[0])
    new_mask = ElementAnalysis(new).of(new.outputs[0].producer.inputs[0])
    assert prove_equal(new_mask, old_mask)
    s = RNG.standard_normal((6, 6)).astype(np.float32)
    d_np = np.arange(6)[None, :] - np.arange(6)[:, None]
    want = np.where((d_np <= 0) & (d_np > -4), s, np.float32(-1e9))
    for before, after in zip(run_both(g, (s,), {}), run_both(new, (s,), {})):
        np.testing.assert_array_equal(after, before)
        np.testing.assert_array_equal(after, want)


def test_chain_reading_a_varying_input_is_left_alone() -> None:
    """abs(D + x) with x [L, L] a graph input: not a function of j - i alone."""
    g = Graph("varying")
    x = g.add_input("x", "i64", ("L", "L"))
    d = difference(g)
    g.set_outputs(g.op("cast", g.op("mul", g.op("abs", g.op("add", d, x)), 3), dtype="f32"))
    assert find_regions(g) == []
    new, roots = tabulate_differences(g)
    assert new is g and roots == []


def test_chain_made_varying_midway_keeps_the_varying_part() -> None:
    """The part before the varying input is tabulated, the rest reads the gathered value."""
    g = Graph("midway")
    x = g.add_input("x", "f32", ("L", "L"))
    d = difference(g)
    near = g.op("cast", g.op("mul", g.op("abs", d), 2), dtype="f32")
    g.set_outputs(g.op("exp", g.op("mul", near, x)))
    (region,) = find_regions(g)
    assert [n.op.name for n in region.nodes] == ["abs", "mul", "cast"]
    new, _ = tabulate_differences(g)
    x_in = RNG.standard_normal((5, 5)).astype(np.float32)
    for before, after in zip(run_both(g, (x_in,), {}), run_both(new, (x_in,), {})):
        np.testing.assert_array_equal(after, before)


def test_float_difference_is_not_exact_and_stays() -> None:
    """A difference of float aranges rounds: no exact formula, no table."""
    g = Graph("float_diff")
    x = g.add_input("x", "f32", ("L", "L"))
    i = g.op("unsqueeze", g.op("arange", end="L", dtype="f32"), axis=1)
    j = g.op("unsqueeze", g.op("arange", end="L", dtype="f32"), axis=0)
    d = g.op("sub", j, i)
    g.set_outputs(g.op("add", x, g.op("mul", g.op("abs", d), 0.5)))
    new, roots = tabulate_differences(g)
    assert new is g and roots == []


def test_t5_zoo_model_plans_at_a_fifth_and_matches_eager() -> None:
    from chunkc import zoo

    torch.set_num_threads(1)
    case = zoo.t5_encoder()
    g = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    assert any(n.name.endswith("_values") and n.op.name == "arange" for n in g.nodes)  # the table was built
    assert all(n.outputs[0].rank == 1 for n in g.nodes if n.op.name == "log")
    args = case.make_inputs(1024)  # at 256 the floor (embedding, keys, norm rows held whole) is 23%
    sizes = g.bind_sizes(args)
    peak = chunkc.measure_peak(chunkc.compile(g, backend="torch"), *args)
    plan = chunkc.autochunk(g, int(0.2 * peak), sizes=sizes, backend="torch", progress=False)
    assert plan.regions and plan.estimated_peak_bytes <= 0.2 * peak
    with torch.inference_mode():
        want = case.module(*args)
    want = want[0] if isinstance(want, (tuple, list)) else want
    got = chunkc.compile(g, plan, backend="torch")(*args)
    got = got[0] if isinstance(got, (tuple, list)) else got
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_bias_rows_made_per_chunk_on_every_backend() -> None:
    """Chunked along the rows, each chunk's rows of the Toeplitz matrix come from the whole table
    (a positional slice): the reference interpreter of plans, NumPy and PyTorch agree with the
    unchunked values."""
    from backend_cases import run_on_all_backends

    g = canonicalize(t5_bias_graph(row_sums=True))
    length = 96
    scores = RNG.standard_normal((1, HEADS, length, length)).astype(np.float32)
    sizes = {"L": length}
    peak = chunkc.estimate_memory(g, sizes=sizes, backend="numpy").peak_bytes
    plan = chunkc.autochunk(g, budget=peak // 3, sizes=sizes, backend="numpy", progress=False)
    in_loops = {name for r in plan.regions for name in r.nodes}
    assert any(n.op.name == "toeplitz" and n.name in in_loops for n in plan.graph.nodes)
    want = t5_bias_numpy(scores).sum(axis=3, keepdims=True, dtype=np.float32)
    run_on_all_backends(plan.graph, plan, [scores], [want], atol=1e-4, rtol=1e-5)
