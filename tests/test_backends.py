"""The shared code generator, on the NumPy and PyTorch backends.

Chunked programs (hand-built plans, see backend_cases.py) must equal the
unchunked program and the reference interpreter at sizes the chunk size does not
divide; generated source must be readable and hold no text from the model; the
measured peak must match the estimator; bad plans must be refused by name.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import chunkc
from chunkc import ops as O
from chunkc.backends import compile as compile_graph, emit_source
from chunkc.errors import ChunkcError, UnsupportedOpError
from chunkc.passes.plan import ChunkedValue as CV, ChunkRegion, Plan

from backend_cases import CASES

BACKENDS = ("numpy", "torch")
TOL = dict(rtol=1e-4, atol=1e-4)


def run(fn, backend: str, arrays):
    args = arrays if backend == "numpy" else [torch.from_numpy(a) for a in arrays]
    out = fn(*args)
    out = out if isinstance(out, tuple) else (out,)
    return [np.asarray(o) if backend == "numpy" else o.numpy() for o in out]


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    return CASES[request.param]()


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunked_equals_unchunked_and_interpreter(case, backend):
    plain = compile_graph(case.graph, None, backend)
    chunked = compile_graph(case.graph, case.plan, backend)
    for sizes in case.sizes:
        arrays = case.inputs(sizes)
        ref = chunkc.interpret(case.graph, *arrays)
        got_plain = run(plain, backend, arrays)
        got_chunked = run(chunked, backend, arrays)
        for r, a, b in zip(ref, got_plain, got_chunked):
            assert a.shape == r.shape and b.shape == r.shape
            np.testing.assert_allclose(a, r, **TOL)
            np.testing.assert_allclose(b, r, **TOL)


def test_chunk_loop_shape(case):
    """One loop per region; slices are views (basic indexing); each output written once per chunk."""
    src = emit_source(case.graph, case.plan, "torch")
    n = len(case.plan.regions)  # each region's chunk a nested function, run by rt.run_chunks (a loop)
    assert len(re.findall(r"^\s+def chunk_region_\d+\(start, stop\):", src, re.M)) == n
    assert len(re.findall(r"^\s+rt\.run_chunks\(chunk_region_\d+, extent, chunk\)$", src, re.M)) == n
    for region in case.plan.regions:
        for out in region.outputs:
            assert re.search(rf"^\s+{out} = torch\.empty\(", src, re.M), f"no preallocated buffer for {out}"
            assert re.search(rf"^\s+{out}\[[:, ]*(\d+ \* )?start:(\d+ \* )?stop\] = {out}_chunk$", src, re.M)
    assert ".clone()" not in src and ".copy()" not in src  # region inputs are sliced, not copied


def test_last_chunk_shorter_and_symbolic_chunk():
    case = CASES["symbolic_chunk"]()
    src = emit_source(case.graph, case.plan, "numpy")
    assert "chunk = max(1, min(-(-L // 3), extent))" in src  # ceildiv(L, 3), from the expression's structure
    fn = compile_graph(case.graph, case.plan, "numpy")
    for L in (1, 2, 5, 10, 31):
        arrays = case.inputs({"B": 1, "L": L})
        np.testing.assert_allclose(run(fn, "numpy", arrays)[0], chunkc.interpret(case.graph, *arrays)[0], **TOL)


def test_readable_source():
    case = CASES["attention"]()
    src = emit_source(case.graph, case.plan, "torch")
    compile(src, "<generated>", "exec")  # valid Python
    assert "B = x.shape[0]" in src and "L = x.shape[1]" in src  # sizes bound at entry from input shapes
    assert "q_r = q.reshape((B, stop - start, 4, 8))  # reshape -> f32[B, chunk, 4, 8]" in src
    assert "probs = F.softmax(scaled, dim=-1)  # softmax -> f32[B, 4, chunk, L]" in src
    assert "out = torch.empty((B, L, 32), dtype=torch.float32, device=device)" in src
    assert "del k, v" in src  # K and V live through the loop, then are freed
    body = src.split("def chunk_region_0")[1].split("rt.run_chunks(chunk_region_0")[0]
    assert "kT = k_r.permute((0, 2, 3, 1))  # permute -> f32[B, 4, 8, L]" in body  # views only the loop reads: in it
    for line in src.splitlines():  # one statement per line: no ';'
        assert ";" not in line.split("#")[0]


def test_frees_after_last_use():
    """Every intermediate is deleted right after its last reader (the estimator's liveness)."""
    case = CASES["mlp"]()
    src = emit_source(case.graph, None, "numpy")
    body = [line.strip() for line in src.split("def __call__")[1].split("\ndef load")[0].strip().splitlines()[1:]]
    assert body.index("del h") == body.index("a = ref.gelu(xp, h, approximate='none')  # gelu -> f32[B, L, 64]") + 1
    assert body.index("del a") > body.index("del h")
    assert body[-1] == "return z"


def test_numpy_source_is_array_module_generic():
    case = CASES["attention"]()
    src = emit_source(case.graph, case.plan, "numpy")
    assert "import numpy" not in src and "np." not in src
    assert "xp = self.xp" in src and "xp.empty((B, L, 32), dtype=xp.float32)" in src


def test_symbol_solved_from_compound_input_size():
    g = chunkc.Graph("pairs")
    x = g.add_input("x", "f32", (chunkc.sym("L") * 2, 3))
    y = g.add_input("y", "f32", ("L", 3))
    g.set_outputs(O.reshape(x, shape=(chunkc.sym("L"), 6), name="r"), O.exp(y, name="e"))
    src = emit_source(g, None, "torch")
    assert "L = y.shape[0]" in src  # a direct binding is preferred to a solved one
    g2 = chunkc.Graph("pairs2")
    x2 = g2.add_input("x", "f32", (chunkc.sym("L") * 2 + 1, 3))
    g2.set_outputs(O.slice(x2, axis=0, start=1, name="s"))
    src2 = emit_source(g2, None, "numpy")
    assert "L = (x.shape[0] - 1) // 2" in src2
    out = compile_graph(g2, None, "numpy")(np.ones((9, 3), np.float32))
    assert out.shape == (8, 3)


HOSTILE = "\"; import os #"


def hostile_graph():
    g = chunkc.Graph(HOSTILE)
    x = g.add_input(HOSTILE, "f32", ("L", 4))
    w = g.add_constant(HOSTILE, np.eye(4, dtype=np.float32))
    h = O.linear(x, w, name=HOSTILE)
    e = O.exp(h, name="__import__('os').system('x')")
    g.set_outputs(O.mul(e, 2.0, name="forward"))
    region = ChunkRegion((h.name, e.name), (CV(x.name, 0), CV(h.name, 0), CV(e.name, 0)), (e.name,),
                         chunkc.sym("L"), 2)
    return g, Plan(g, (region,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_names_are_sanitized(backend):
    g, plan = hostile_graph()
    src = emit_source(g, plan, backend)
    assert "import os" not in src and "__import__(" not in src and "system(" not in src
    assert HOSTILE not in src and "; import" not in src
    import ast
    tree = ast.parse(src)
    docstring = tree.body[0].value  # the module docstring: sanitized names and types around fixed text
    for node in ast.walk(tree):  # every other string in the code is a plain name or the signature
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node is not docstring:
            assert re.fullmatch(r"[\w\s\[\],:>().\-]*", node.value), node.value
    for name in re.findall(r"^\s+(\w+) = ", src, re.M):
        assert name.isidentifier() and not name.startswith("_")
    x = np.arange(20, dtype=np.float32).reshape(5, 4) / 20
    ref = chunkc.interpret(g, x)[0]
    np.testing.assert_allclose(run(compile_graph(g, plan, backend), backend, [x])[0], ref, **TOL)


def test_reserved_and_builtin_names_are_prefixed():
    g = chunkc.Graph("kw")
    x = g.add_input("F", "f32", (3,))
    y = O.exp(x, name="torch")
    z = O.neg(y, name="range")
    w = O.add(z, x, name="self")
    g.set_outputs(O.mul(w, 1.0, name="start"))
    src = emit_source(g, None, "torch")
    assert "def forward(self, *inputs):" in src and "v_F, = check_inputs(inputs, None)" in src
    assert "v_torch = torch.exp(v_F)" in src and "v_range = torch.neg(v_torch)" in src
    assert "v_self = v_range + v_F" in src and "v_start = v_self * 1.0" in src
    out = compile_graph(g, None, "torch")(torch.ones(3))
    np.testing.assert_allclose(out.numpy(), 1 - np.e, rtol=1e-6)
    from chunkc.backends.names import Namer
    namer = Namer()
    kw = namer.claim("lambda")
    assert kw != "lambda" and kw.isidentifier() and namer.claim("_x") == "v__x" and namer.claim("x") == "x"
    assert namer.claim("x") == "v_x" and namer.claim("x") == "v_x_1"


# -- plans the generator refuses ----------------------------------------------------------


def _mlp_region(**changes):
    case = CASES["mlp"]()
    r = case.plan.regions[0]
    fields = dict(nodes=r.nodes, chunked=r.chunked, outputs=r.outputs, extent=r.extent, chunk_size=r.chunk_size)
    fields.update(changes)
    return case.graph, Plan(case.graph, (ChunkRegion(**fields),))


@pytest.mark.parametrize("changes, message", [
    (dict(nodes=("h", "y")), "not contiguous"),
    (dict(chunked=(CV("x", 1), CV("h", 1), CV("y", 1))), "output %a is not chunked"),
    (dict(outputs=()), "%y is read after the loop but is not a region output"),
    (dict(chunked=(CV("x", 2), CV("h", 1), CV("a", 1), CV("y", 1))), "axis 2 has size 16"),
    (dict(outputs=("y", "x")), "output %x is not produced inside the region"),
])
def test_bad_plans_are_refused(changes, message):
    g, plan = _mlp_region(**changes)
    with pytest.raises(ChunkcError, match=re.escape(message)):
        emit_source(g, plan, "numpy")


def test_overlapping_regions_are_refused():
    case = CASES["mlp"]()
    r = case.plan.regions[0]
    with pytest.raises(ChunkcError, match="regions must not overlap"):
        emit_source(case.graph, Plan(case.graph, (r, r)), "torch")


def test_unknown_backend_and_missing_lowering():
    case = CASES["mlp"]()
    with pytest.raises(ChunkcError, match="unknown backend 'jax'"):
        compile_graph(case.graph, None, "jax")
    from chunkc.backends.codegen import generate
    from chunkc.backends.array_backend import ArrayDialect

    class NoGelu(ArrayDialect):
        def lowering(self, op):
            return None if op.name == "gelu" else super().lowering(op)
    with pytest.raises(UnsupportedOpError, match="no lowering for op gelu \\(node a\\); its record has no NumPy"):
        generate(case.graph, None, NoGelu())


# -- memory: measured peak against the estimator --------------------------------------------


def _memory_cases():
    from backend_cases import attention, mlp
    return [
        ("attention", attention(d=64, heads=4, chunk=128), {"B": 1, "L": 512}),
        ("mlp", mlp(d=64, hidden=512, chunk=64), {"B": 2, "L": 500}),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", [0, 1], ids=["attention", "mlp"])
def test_measured_peak_matches_estimate(backend, index):
    name, case, sizes = _memory_cases()[index]
    arrays = case.inputs(sizes)
    args = arrays if backend == "numpy" else [torch.from_numpy(a) for a in arrays]
    for plan in (None, case.plan):
        fn = compile_graph(case.graph, plan, backend)
        fn(*args)  # warm up: first calls import modules and fill caches
        estimate = chunkc.estimate_memory(case.graph, plan, sizes=sizes).peak_bytes
        measured = chunkc.measure_peak(fn, *args)
        assert abs(measured - estimate) <= 0.05 * estimate, (name, plan is not None, measured, estimate)


# -- many random graphs, unchunked --------------------------------------------------------------


def test_random_graphs_match_interpreter():
    from hypothesis import given, settings
    from strategies import random_graphs

    @settings(max_examples=15, deadline=None)
    @given(random_graphs(max_nodes=10))
    def check(case):
        arrays = case.inputs()
        ref = chunkc.interpret(case.graph, *arrays)
        for backend in BACKENDS:
            got = run(compile_graph(case.graph, None, backend), backend, arrays)
            for r, a in zip(ref, got):
                np.testing.assert_allclose(a, r, **TOL)

    check()


# -- plans from chunkc.autochunk --------------------------------------------------------------------


def _autochunk_ready() -> bool:
    try:
        from chunkc.passes import autochunk  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _autochunk_ready(), reason="chunkc.passes.autochunk is not available")
@pytest.mark.parametrize("budget", [0.5, 0.3, 0.2, 0.1])
def test_autochunk_plans_run_correctly_within_their_estimate(budget):
    """Plans the search chooses (symbolic chunk sizes) on both backends, at a size the plan was made
    for and at another one; the measured peak is within 5% of the plan's estimate."""
    from backend_cases import attention
    case = attention(d=64, heads=4)
    sizes = {"B": 1, "L": 384}
    plan = chunkc.autochunk(case.graph, budget, sizes=sizes, progress=False)
    assert plan.regions and plan.estimated_peak_bytes <= plan.budget_bytes
    for backend in BACKENDS:
        fn = compile_graph(case.graph, plan, backend)
        for at in (sizes, {"B": 2, "L": 97}):
            arrays = case.inputs(at)
            ref = chunkc.interpret(case.graph, *arrays)
            np.testing.assert_allclose(run(fn, backend, arrays)[0], ref[0], **TOL)
    arrays = [torch.from_numpy(a) for a in case.inputs(sizes)]
    fn = compile_graph(case.graph, plan, "torch")
    fn(*arrays)
    measured = chunkc.measure_peak(fn, *arrays)
    assert abs(measured - plan.estimated_peak_bytes) <= 0.05 * plan.estimated_peak_bytes


@pytest.mark.parametrize("backend", BACKENDS)
def test_write_program_gives_a_runnable_file(tmp_path, backend):
    import importlib.util
    from chunkc.backends import write_program
    case = CASES["mlp"]()
    files = write_program(case.graph, case.plan, backend, tmp_path / "mlp_chunked.py")
    assert files[0].endswith("mlp_chunked.py") and files[1].endswith(".pt" if backend == "torch" else ".npz")
    spec = importlib.util.spec_from_file_location(f"written_{backend}", files[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    arrays = case.inputs({"B": 1, "L": 6})
    if backend == "torch":
        out = mod.load()(torch.from_numpy(arrays[0])).numpy()
    else:
        out = mod.Program_mlp(np, np.load(files[1]))(arrays[0])
    np.testing.assert_allclose(out, chunkc.interpret(case.graph, *arrays)[0], **TOL)


def _unused_output_graph(kind: str) -> chunkc.Graph:
    """A multi-output op whose other output nothing reads, in the middle of a chunkable span."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph(f"unused_{kind}")
    x = g.add_input("x", "f32", ("L", 16))
    h = O.linear(x, g.add_constant("w1", rng.standard_normal((64, 16)).astype(np.float32)))
    if kind == "split":
        _, kept = O.split(h, sizes=(16, 48), axis=1)
    elif kind == "split-first":
        kept, _ = O.split(h, sizes=(48, 16), axis=1)
    else:
        kept, _ = O.topk(h, k=48, axis=1)  # the indices are never read
    w2 = g.add_constant("w2", rng.standard_normal((128, 48)).astype(np.float32))
    g.set_outputs(O.sum(O.relu(O.linear(O.gelu(kept), w2)), axes=-1))
    return g


@pytest.mark.parametrize("kind", ["split", "split-first", "topk"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_output_op_with_an_unused_output_compiles(kind, backend):
    g = _unused_output_graph(kind)
    multi = next(n for n in g.nodes if len(n.outputs) == 2)
    plan = chunkc.autochunk(g, 0.3, sizes={"L": 256}, backend=backend)
    if kind.startswith("split") and not any(n.op.name == "split" for n in plan.graph.nodes):
        # the split of the projection was folded into it (chunkc.passes.fold_split): the unused
        # part is not computed at all; the unfolded graph must still compile with a plan
        plan = chunkc.autochunk(g, 0.3, sizes={"L": 256}, backend=backend, remat=False, rewrite=False)
    assert any(multi.name in r.nodes for r in plan.regions)  # the op runs chunk by chunk
    x = np.random.default_rng(1).standard_normal((300, 16)).astype(np.float32)
    (want,) = chunkc.interpret(g, x)
    for p in (None, plan):
        (got,) = run(compile_graph(g, p, backend=backend), backend, [x])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    source = emit_source(g, plan, backend)
    # the unused output is computed a chunk at a time too (the search gives it the chunk axis)
    assert re.search(rf"= .*# {multi.op.name} -> .*f32\[chunk, 48\]", source), source
    assert re.search(rf"= .*# {multi.op.name} -> .*(i64|f32)\[chunk, 16\]", source) or kind == "topk", source


def test_lowerings_see_the_chunk_range():
    """Inside a chunk loop a lowering gets each chunked value's axis and bounds (in elements of the
    axis: a chunk unit of 4 rows reads 4 * start); outside, or for a value used whole, None."""
    from chunkc.backends.array_backend import ArrayDialect
    from chunkc.backends.codegen import generate

    seen = {}

    class Recording(ArrayDialect):
        def lowering(self, op):
            rule = super().lowering(op)

            def record(ctx):
                seen[ctx.node.name] = [ctx.chunk_range(v) for v in (*ctx.node.inputs, *ctx.node.outputs)]
                return rule(ctx)
            return record

    case = CASES["reshape_unit"]()
    generate(case.graph, case.plan, Recording())
    assert seen["r"] == [(0, "start", "stop"), (0, "4 * start", "4 * stop")]
    assert seen["back"] == [(0, "4 * start", "4 * stop"), (0, "start", "stop")]
    assert seen["y"][0] is None and seen["y"][2] is None  # after the loop; input 1 is a weight
    case = CASES["mlp"]()
    generate(case.graph, case.plan, Recording())
    assert seen["h"] == [(1, "start", "stop"), None, None, (1, "start", "stop")]  # x chunked, w1 and b1 whole
