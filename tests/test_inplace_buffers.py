"""A region's output written over a region input it no longer needs (ChunkRegion.reuse; the
rule is chunkc.passes.loop_buffers.host_problem): values equal the unchunked program's, the
estimate counts no buffer for the output and the measured peak falls by the input's bytes;
and the cases where an input must not host the output are refused, by the plan checker and
by the planner alike."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.errors import ChunkcError
from chunkc.passes.nest import choose_hosts
from chunkc.passes.plan import ChunkedValue as CV, ChunkRegion, Plan
from chunkc.passes.search import GraphIndex, consistent_extent, walk_regions
from backend_cases import estimate_and_measure, run_on_all_backends

D, HIDDEN = 64, 128


def _w(g: chunkc.Graph, rng: np.random.Generator, name: str, *shape: int):
    return g.add_constant(name, (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32))


def _mlp(g: chunkc.Graph, h, rng: np.random.Generator):
    """layer_norm -> linear -> gelu -> linear, named n, a, b, c."""
    n = O.layer_norm(h, num_axes=1, name="n")
    a = O.linear(n, _w(g, rng, "w1", HIDDEN, D), name="a")
    b = O.gelu(a, name="b")
    return O.linear(b, _w(g, rng, "w2", D, HIDDEN), name="c")


def _residual_block(h_from_input: bool = True, read_after: bool = False, out_width: int = D,
                    seed: int = 0) -> chunkc.Graph:
    """x -> h (a projection, or x itself) -> y = h + mlp(h) (made at width ``out_width``),
    optionally read with h after the block."""
    rng = np.random.default_rng(seed)
    g = chunkc.Graph("residual")
    x = g.add_input("x", "f32", ("L", D))
    h = O.linear(x, _w(g, rng, "w0", D, D), name="h") if h_from_input else x
    c = _mlp(g, h, rng)
    if out_width != D:  # a wider output: y has another shape than h
        y = O.linear(O.add(h, c, name="r"), _w(g, rng, "w3", out_width, D), name="y")
    else:
        y = O.add(h, c, name="y")
    g.set_outputs(O.mul(y, h, name="after") if read_after else y)
    return g


def _block_region(g: chunkc.Graph, chunk: int = 16, reuse=()) -> ChunkRegion:
    names = [n.name for n in g.nodes if n.name not in ("h", "after")]
    h = g.node("n").inputs[0].name
    return ChunkRegion(nodes=tuple(names), chunked=tuple(CV(v, 0) for v in [h, *names]),
                       outputs=(names[-1],), extent=chunkc.sym("L"), chunk_size=chunk, reuse=reuse)


def _inputs(L: int, seed: int = 1) -> list[np.ndarray]:
    return [np.random.default_rng(seed).standard_normal((L, D)).astype(np.float32)]


def test_residual_block_written_over_its_input():
    g = _residual_block()
    L = 512
    sizes = {"L": L}
    chosen = choose_hosts(g, _block_region(g), sizes)
    assert chosen.reuse == (("y", "h"),)  # the planner's pick, by the rule
    in_place = Plan(g, (chosen,), sizes=sizes)
    fresh = Plan(g, (_block_region(g),), sizes=sizes)
    inputs = _inputs(L)
    expected = chunkc.interpret(g, *inputs)
    run_on_all_backends(g, in_place, inputs, expected, atol=1e-5, rtol=1e-4)
    assert "in place of %h" in chunkc.backends.emit_source(g, in_place, backend="torch")
    h_bytes = L * D * 4
    for backend in ("torch", "numpy"):
        m_in, e_in = estimate_and_measure(in_place, inputs, backend)
        m_fresh, e_fresh = estimate_and_measure(fresh, inputs, backend)
        assert e_in == pytest.approx(m_in, rel=0.02), backend
        assert e_fresh == pytest.approx(m_fresh, rel=0.02), backend
        # the output takes the input's storage: one L x D buffer less, measured and estimated
        assert m_fresh - m_in == pytest.approx(h_bytes, rel=0.1), (backend, m_fresh, m_in)
        assert e_fresh - e_in == pytest.approx(h_bytes, rel=0.1), (backend, e_fresh, e_in)


def test_autochunk_writes_the_residual_stream_over_its_input():
    g = _residual_block()
    sizes = {"L": 512}
    plan = chunkc.autochunk(g, 0.3, sizes=sizes, progress=False)
    assert ("y", "h") in [p for r in plan.regions for p in r.reuse], plan.regions
    inputs = _inputs(512)
    run_on_all_backends(plan.graph, plan, inputs, chunkc.interpret(g, *inputs), atol=1e-5, rtol=1e-4)


def _refused(g: chunkc.Graph, region: ChunkRegion, host: str, message: str, sizes=None, picks_none=True) -> None:
    """No host is picked for the region's output (when ``picks_none``), and a plan that names
    ``host`` is refused with ``message`` by the estimator and the code generators."""
    sizes = sizes or {"L": 40}
    if picks_none:
        assert choose_hosts(g, region, sizes).reuse == ()
    bad = Plan(g, (replace(region, reuse=((region.outputs[0], host),)),), sizes=sizes)
    pattern = rf"output %{region.outputs[0]} cannot take the storage of %{host}: .*{re.escape(message)}"
    for run in (lambda: chunkc.estimate_memory(bad.graph, plan=bad), lambda: chunkc.compile(bad.graph, bad),
                lambda: chunkc.compile(bad.graph, bad, backend="numpy")):
        with pytest.raises(ChunkcError, match=pattern):
            run()


def test_a_graph_input_never_hosts_the_output():
    g = _residual_block(h_from_input=False)
    _refused(g, _block_region(g), "x", "graph inputs and weights are never overwritten")


def test_an_input_read_after_the_region_never_hosts_the_output():
    g = _residual_block(read_after=True)
    _refused(g, _block_region(g), "h", "%h, which shares its storage, is read after the loop (by node after)")


def test_an_output_of_another_shape_is_not_written_over_the_input():
    g = _residual_block(out_width=2 * D)
    _refused(g, _block_region(g), "h", "their types differ")


def test_an_output_of_another_dtype_is_not_written_over_the_input():
    g = _residual_block()
    y = g.node("y").outputs[0]
    half = O.cast(y, dtype="f16", name="half")
    g.set_outputs(half)
    region = _block_region(g)
    assert region.outputs == ("half",)
    _refused(g, region, "h", "their types differ")


def test_an_input_read_whole_in_the_region_never_hosts_the_output():
    """Attention over the block input inside the loop: each chunk of queries reads every row
    of h (keys and values), so writing rows of the output over h would change later chunks."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("attend")
    x = g.add_input("x", "f32", ("L", D))
    h = O.linear(x, _w(g, rng, "w0", D, D), name="h")
    kt = O.permute(O.linear(h, _w(g, rng, "wk", D, D), name="k"), dims=(1, 0), name="kt")
    p = O.softmax(O.matmul(h, kt, name="s"), axis=-1, name="p")
    g.set_outputs(O.add(h, O.matmul(p, h, name="c"), name="y"))
    region = ChunkRegion(nodes=("s", "p", "c", "y"), chunked=tuple(CV(v, 0) for v in ("h", "s", "p", "c", "y")),
                         outputs=("y",), extent=chunkc.sym("L"), chunk_size=8, whole_reads=(("c", 1),))
    _refused(g, region, "h", "a node of the loop reads it whole")
    inputs = _inputs(40)
    run_on_all_backends(g, Plan(g, (region,), sizes={"L": 40}), inputs, chunkc.interpret(g, *inputs),
                        atol=1e-5, rtol=1e-4)


def test_an_input_read_at_other_rows_never_hosts_the_output():
    """A halo region (3 x 3 convolutions over image rows): each chunk reads rows of h that the
    previous and next chunks own."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("halo")
    x = g.add_input("x", "f32", (1, 4, 13, 13))
    h = O.tanh(x, name="h")
    w1 = g.add_constant("w1", (rng.standard_normal((6, 4, 3, 3)) / 6).astype(np.float32))
    w2 = g.add_constant("w2", (rng.standard_normal((4, 6, 3, 3)) / 6).astype(np.float32))
    c = O.conv(O.relu(O.conv(h, w1, padding=((1, 1), (1, 1)))), w2, padding=((1, 1), (1, 1)))
    g.set_outputs(O.add(c, h, name="y"))
    index = GraphIndex(g)
    cand = [c for c in walk_regions(index, len(g.nodes) - 1, 2) if consistent_extent(c) and 0 not in c.loop][-1]
    region = cand.to_region(g, 4)
    assert region.axis_of("h").halo != (0, 0) and "h" not in region.nodes
    _refused(g, region, "h", "the loop reads it at rows beyond the chunk (halo", sizes={})


def _nested_layer(causal: bool, L: int = 40):
    """x -> h (tanh) -> y = h + attention(h) (pre-LN, SDPA), nested over query rows with inner
    loops over key rows that recompute keys and values from h."""
    from chunkc.passes.nest import nest_loops
    from chunkc.passes.split_statistics import split_statistics

    rng = np.random.default_rng(0)
    g = chunkc.Graph("layer")
    x = g.add_input("x", "f32", (1, "L", D))
    h = O.tanh(x, name="h")
    heads = lambda t: O.permute(O.reshape(t, shape=(1, chunkc.sym("L"), 4, D // 4)), dims=(0, 2, 1, 3))
    n = O.layer_norm(h, num_axes=1)
    q, k, v = (heads(O.linear(n, _w(g, rng, f"w{c}", D, D))) for c in "qkv")
    o = O.scaled_dot_product_attention(q, k, v, is_causal=causal)
    att = O.reshape(O.permute(o, dims=(0, 2, 1, 3)), shape=(1, chunkc.sym("L"), D))
    g.set_outputs(O.add(h, O.linear(att, _w(g, rng, "wo", D, D)), name="y"))
    split, _ = split_statistics(g, "split_accumulating")
    plan = nest_loops(split, split.nodes[-1].name, 1, 8, 8)
    (region,) = plan.regions
    assert region.inner and region.axis_of("h") is not None and not region.reuse
    return g, plan, region


def test_inner_loops_over_all_key_rows_keep_the_layer_input():
    """Without a causal rule every outer chunk's inner loops read every row of h: h never hosts
    the output, in either order."""
    _, plan, region = _nested_layer(causal=False)
    _refused(plan.graph, region, "h", "a node of the loop reads it whole")
    _refused(plan.graph, replace(region, last_first=True), "h", "a node of the loop reads it whole")


def test_causal_nested_loop_writes_over_the_layer_input_last_chunk_first():
    """Causal inner loops read h only up to the outer chunk's stop: run last chunk first, no
    chunk reads rows an earlier-run chunk wrote, so h hosts y (one L x D buffer less)."""
    g, plan, region = _nested_layer(causal=True)
    _refused(plan.graph, region, "h", "only its rows up to the chunk's stop: running the chunks last first",
             picks_none=False)  # in the forward order
    sizes = {"L": 40}
    chosen = choose_hosts(plan.graph, region, sizes)
    assert chosen.reuse == (("y", "h"),) and chosen.last_first
    in_place = Plan(plan.graph, (chosen,), sizes=sizes)
    fresh = Plan(plan.graph, (region,), sizes=sizes)
    source = chunkc.backends.emit_source(plan.graph, in_place, backend="torch")
    assert "in place of %h" in source and "True)" in source
    assert "reversed(range(" in chunkc.backends.emit_source(plan.graph, in_place, backend="numpy")
    L = 256
    inputs = [np.random.default_rng(1).standard_normal((1, L, D)).astype(np.float32)]
    expected = chunkc.interpret(g, *inputs)
    run_on_all_backends(plan.graph, in_place, inputs, expected, atol=1e-5, rtol=1e-4)
    # measured at 1024 rows: at 256 the few KiB that NumPy's Python-level reductions leave in
    # CPython's free lists (how many depends on what ran before in the process) are 5% of the peak
    L = 1024
    inputs = [np.random.default_rng(1).standard_normal((1, L, D)).astype(np.float32)]
    for backend in ("torch", "numpy"):
        in_place.sizes, fresh.sizes = {"L": L}, {"L": L}
        m_in, e_in = estimate_and_measure(in_place, inputs, backend)
        m_fresh, e_fresh = estimate_and_measure(fresh, inputs, backend)
        tolerance = 0.001 if backend == "torch" else 0.05
        assert abs(e_in - m_in) <= tolerance * m_in and abs(e_fresh - m_fresh) <= tolerance * m_fresh, \
            (backend, m_in, e_in, m_fresh, e_fresh)
        assert m_fresh - m_in == pytest.approx(L * D * 4, rel=0.1), (backend, m_fresh, m_in)


def test_last_first_is_refused_where_chunks_merge_or_read_halos():
    g = chunkc.Graph("sum")
    x = g.add_input("x", "f32", ("L", D))
    g.set_outputs(O.sum(O.tanh(x, name="t"), axes=(0,), name="s"))
    from backend_cases import longest_accumulating_plan
    graph, plan = longest_accumulating_plan(g, 0, 4)
    bad = Plan(graph, (replace(plan.regions[0], last_first=True),), sizes={"L": 12})
    with pytest.raises(ChunkcError, match="only a region of the plan that merges nothing across its chunks"):
        chunkc.compile(graph, bad)


def test_a_last_first_plan_survives_its_file(tmp_path):
    from chunkc.passes.plan_file import load_plan, save_plan

    _, plan, region = _nested_layer(causal=True)
    chosen = Plan(plan.graph, (choose_hosts(plan.graph, region, {"L": 40}),), sizes={"L": 40})
    save_plan(chosen, tmp_path / "p.json")
    loaded = load_plan(tmp_path / "p.json")
    assert loaded.regions[0].last_first and loaded.regions[0].reuse == (("y", "h"),)


def test_a_region_that_lists_a_node_twice_is_refused():
    g = _residual_block()
    region = _block_region(g)
    bad = Plan(g, (replace(region, nodes=(*region.nodes, "y")),), sizes={"L": 40})
    with pytest.raises(ChunkcError, match=r"plan region 0 .*: node y is listed twice"):
        chunkc.estimate_memory(g, plan=bad)
