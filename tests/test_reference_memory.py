"""The NumPy references allocate their outputs and declared workspace, and nothing else.

The memory estimator counts, for a node run by the NumPy backend, its fresh outputs
plus its record's ``workspace``; ``chunkc.measure_peak`` counts every block tracemalloc
sees.  The differential fuzzer (chunkc/fuzz) found where the two parted, beyond the
sizes tests/test_ops.py checks with contiguous inputs:

* NumPy's ufunc iterator buffers (up to 8192 elements per broadcast, strided or cast
  operand, per call): the references now run under ``small_ufunc_buffers``;
* ``einsum`` of permuted operands made its output in their layout, then copied it to C
  order (a second output);
* ``tril``/``triu`` built a rows x columns boolean mask;
* ``where``/``masked_fill`` buffered (``xp.where`` keeps 8192-element buffers whatever
  the ufunc buffer size) and cast whole operands with ``astype``;
* ``roll`` built index arrays; ``gather``, ``sort`` and ``topk`` gathered through
  fancy indexing, whose index buffers (8192 entries each) no setting shrinks;
* Python objects: ``tuple(<generator>)`` builds a tuple too long and shrinks it, and
  the shrunk tuple, once freed, lands in CPython's free list for its new size, which
  tracemalloc still counts: a few dozen bytes per call that pile up over the
  iterations of a chunk loop (hundreds of KiB at most, until a full collection).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import chunkc
from chunkc.measure.common import quiet_gc
from chunkc import ops as O
from chunkc.ir.reference import UFUNC_BUFFER, small_ufunc_buffers
from chunkc.ir.registry import all_ops

from opdb import all_infos, build, rng_for

SLACK = 8192  # bytes: Python objects made during one call (frames, shape tuples, index objects); the
# outputs here are 12 KiB and more, so an output-sized temporary still shows


def peak_above_outputs(fn) -> int:
    """Traced peak of ``fn()`` minus the bytes of the arrays it returns; the least of three
    calls (tracemalloc also counts what another thread of the test process allocates then)."""
    fn()  # warm caches
    best = None
    for _ in range(3):
        tracemalloc.start()
        try:
            with quiet_gc():  # a collection mid-call would free (and allocate) objects of before it
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                out = fn()
                peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        outs = out if isinstance(out, (tuple, list)) else (out,)
        above = peak - sum(o.nbytes for o in outs)
        best = above if best is None else min(best, above)
    return best


def run(graph: chunkc.Graph, *arrays):
    return lambda: tuple(chunkc.interpret(graph, *arrays))


def one_node(op: str, inputs, **attrs) -> chunkc.Graph:
    g = chunkc.Graph(op)
    values = [g.add_input(f"x{i}", a.dtype, a.shape) for i, a in enumerate(inputs)]
    g.set_outputs(*g.add_node(op, values, attrs).outputs)
    return g


RNG = np.random.default_rng(0)


def rand(*shape, dtype="float32"):
    return RNG.uniform(-1, 1, size=shape).astype(dtype)


# -- ufunc buffers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["transposed", "broadcast", "sliced", "cast"])
def test_elementwise_on_strided_operands_allocates_only_its_output(layout):
    a = rand(2, 192, 64)
    b = {"transposed": rand(64, 192, 2).T, "broadcast": rand(192, 1), "sliced": rand(2, 192, 128)[..., ::2],
         "cast": rand(2, 192, 64, dtype="float16")}[layout]
    g = chunkc.Graph("add")
    x, y = g.add_input("x", a.dtype, a.shape), g.add_input("y", b.dtype, b.shape)
    g.set_outputs(O.add(x, y))
    assert peak_above_outputs(run(g, a, b)) <= SLACK


def test_buffers_are_small_only_inside_the_context():
    before = np.getbufsize()
    with small_ufunc_buffers(np):
        assert np.getbufsize() == UFUNC_BUFFER
    assert np.getbufsize() == before


def test_numpy_program_runs_with_small_buffers():
    g = chunkc.Graph("bcast")
    x, y = g.add_input("x", "f32", (2, "L", 64)), g.add_input("y", "f32", ("L", 1))
    g.set_outputs(O.add(x, y))
    fn = chunkc.compile(g, backend="numpy")
    a, b = rand(2, 192, 64), rand(192, 1)
    assert "small_ufunc_buffers" in fn.chunkc_source
    assert peak_above_outputs(lambda: fn(a, b)) <= SLACK


# -- ops that allocated more than they declare ---------------------------------------------------------


def test_einsum_of_permuted_operands_makes_one_output():
    q = rand(1, 256, 4, 8).transpose(0, 2, 1, 3)  # [1, 4, 256, 8], not C-ordered
    g = one_node("einsum", [q, q], equation="bhqd,bhkd->bhqk")
    assert peak_above_outputs(run(g, q, q)) <= SLACK


@pytest.mark.parametrize("op", ["tril", "triu"])
@pytest.mark.parametrize("diagonal", [-3, 0, 1, 300])
def test_triangles_build_no_mask(op, diagonal):
    x = rand(2, 192, 256)
    g = one_node(op, [x], diagonal=diagonal)
    assert peak_above_outputs(run(g, x)) <= SLACK
    np.testing.assert_array_equal(run(g, x)()[0], getattr(np, op)(x, k=diagonal))


@pytest.mark.parametrize("op", ["where", "masked_fill"])
def test_selection_with_broadcast_and_cast_operands_makes_one_output(op):
    x, mask = rand(2, 16, 96), RNG.random((16, 96)) < 0.5
    if op == "where":
        other = rand(96, dtype="float16")  # broadcast and promoted
        g = one_node("where", [mask, x, other])
        arrays = (mask, x, other)
        want = np.where(mask, x, other.astype(np.float32))
    else:
        g = one_node("masked_fill", [x, mask], value=float("-inf"))
        arrays = (x, mask)
        want = np.where(mask, np.float32(-np.inf), x)
    assert peak_above_outputs(run(g, *arrays)) <= SLACK
    np.testing.assert_array_equal(run(g, *arrays)()[0], want)


@pytest.mark.parametrize("shifts,axes", [(1, 1), (-2, -1), ((3, 1), (1, 2)), ((5, 5), (1, 1))])
def test_roll_copies_slices(shifts, axes):
    x = rand(2, 64, 48)
    g = one_node("roll", [x], shifts=shifts, axes=axes)
    assert peak_above_outputs(run(g, x)) <= SLACK
    np.testing.assert_array_equal(run(g, x)()[0], np.roll(x, shifts, axis=axes))


@pytest.mark.parametrize("op,attrs", [("gather", {"axis": -1}), ("sort", {"axis": 1, "descending": True}),
                                      ("topk", {"k": 4, "axis": -1})])
def test_gathers_keep_index_buffers_small(op, attrs):
    x = rand(2, 128, 48)
    arrays = (x, RNG.integers(0, 48, size=x.shape)) if op == "gather" else (x,)
    g = one_node(op, arrays, **attrs)
    node = g.nodes[0]
    ws = node.op.workspace
    declared = 0 if ws is None else int(ws([v.type for v in node.inputs], node.attrs, [o.type for o in node.outputs]))
    reference = lambda: node.op.reference(np, *arrays, **node.attrs)  # noqa: E731
    with small_ufunc_buffers(np):
        assert peak_above_outputs(reference) <= declared * node.outputs[0].dtype.itemsize + 3 * SLACK
    got = run(g, *arrays)()
    if op == "gather":
        np.testing.assert_array_equal(got[0], np.take_along_axis(x, arrays[1], axis=-1))
    elif op == "sort":
        np.testing.assert_array_equal(got[0], np.take_along_axis(x, got[1], axis=1))
        np.testing.assert_array_equal(got[0], np.flip(np.sort(x, axis=1), axis=1))
    else:
        np.testing.assert_array_equal(got[0], np.flip(np.sort(x, axis=-1), axis=-1)[..., :4])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("sliced", [False, True])
def test_group_norm_moments_makes_what_it_declares_at_any_layout(dtype, sliced):
    """Campaign seed 13, case 13000021 (NumPy 14% under its estimate): the moments of a
    convolution's chunk of rows, which is contiguous, were declared with a reshaped copy of
    the chunk that only a slice needs.  The reference now splits the channel axis (a view at
    any strides) and makes one temporary, the centered values in the accumulation dtype."""
    x = rand(1, 16, 64, 64, dtype=dtype)
    chunk = x[:, :, 16:48] if sliced else np.ascontiguousarray(x[:, :, 16:48])
    op = chunkc.ir.registry.lookup("group_norm_moments")
    g, node = build("group_norm_moments", (chunk,), {"num_groups": 8})
    declared = op.workspace([v.type for v in node.inputs], node.attrs, [v.type for v in node.outputs])
    expected = int(declared) * node.outputs[0].dtype.itemsize
    with small_ufunc_buffers(np):
        above = peak_above_outputs(lambda: op.reference(np, chunk, num_groups=8))
    assert abs(above - expected) <= SLACK, (above, expected)

@pytest.mark.parametrize("repeats", [(3, 2, 2), (2, 1), (1, 1, 1)])
def test_tile_of_a_strided_input_makes_only_its_output(repeats):
    """``xp.tile`` repeated one axis at a time through intermediates (72 KiB here, no workspace
    declared); the reference writes the input broadcast into its output's blocks."""
    x = rand(96, 64)[:, ::2]  # [96, 32], strided
    g = one_node("tile", [x], repeats=repeats)
    assert peak_above_outputs(run(g, x)) <= SLACK
    np.testing.assert_array_equal(run(g, x)()[0], np.tile(x, repeats))



def test_embedding_of_a_slice_of_the_table_columns_makes_only_its_output():
    """Campaign seed 15, case 15000033 (NumPy 1.66x its budget): a loop over the features
    looked token and position ids up in slices of the tables' columns; ``np.take`` made each
    slice contiguous first, every row of a 4096-row table per iteration."""
    table = rand(4096, 64)
    ids = RNG.integers(0, 4096, size=(1, 512))
    g = one_node("embedding", (table[:, 11:22], ids))
    above = peak_above_outputs(run(g, table[:, 11:22], ids))
    assert above <= SLACK, above


@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_elements_by_an_index_expanded_over_the_batch_makes_what_it_declares(reduction):
    """Campaign seed 15, case 15000016 (NumPy 1.07x its budget): scatter_elements into
    [B, L, 48] by an index expanded over batch and rows.  Indexing with one array per axis
    made two more index-sized buffers than declared; the reference now scatters by each
    update's flat position, built in place in one copy of the index."""
    data = rand(2, 128, 48)
    index = np.broadcast_to(RNG.integers(-48, 48, size=(1, 1, 24)), (2, 128, 24))
    updates = rand(2, 128, 24)
    op = chunkc.ir.registry.lookup("scatter_elements")
    g, node = build("scatter_elements", (data, index, updates), {"axis": -1, "reduction": reduction})
    declared = int(op.workspace([v.type for v in node.inputs], node.attrs, [v.type for v in node.outputs]))
    with small_ufunc_buffers(np):
        above = peak_above_outputs(lambda: op.reference(np, data, index, updates, axis=-1, reduction=reduction))
    assert abs(above - declared * 4) <= SLACK, (above, declared * 4)
