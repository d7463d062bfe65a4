"""Every registered op against the op database (tests/opdb.py).

Per sample of every op:

(a) the inferred output types equal the independent reference's shapes and dtypes;
(b) chunkc's NumPy reference, run through a one-node graph by ``chunkc.interpret``,
    matches the independent reference (PyTorch or NumPy);
(c) the dimension record holds by execution: for every output axis that carries,
    a slice of the output equals the op run on the matching slices of the listed
    inputs (the other inputs whole);
(c') an op's ``accumulates`` holds by execution: the op run on two slices of an axis it
    accumulates over (its partners sliced alike), merged, equals the op on the whole;
(d) every registered op has samples, sample graphs and a PyTorch lowering (the failure
    names the ones that lack them);
(e) views alias: when ``view_strides`` gives strides, the NumPy output shares input 0's
    memory with those strides; otherwise it is a fresh C-contiguous array;
(f) memory: the NumPy reference's traced peak is its fresh outputs plus its declared
    workspace, within 5% (the memory estimator counts exactly these).
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

import chunkc
from chunkc.ir import Graph, TensorType
from chunkc.ir.dtypes import dtype as to_dtype
from chunkc.ir.ops.shape import contiguous_strides
from chunkc.ir.registry import all_ops
from chunkc.ir.sizes import evaluate
from opdb import all_infos, as_tuple, assert_close, build, graph_samples, rng_for, samples_of

OPS = all_ops()
INFOS = all_infos()
COVERED = sorted(name for name in INFOS if name in OPS)


def run(name: str, inputs, attrs) -> list[np.ndarray]:
    g, _ = build(name, inputs, attrs)
    return chunkc.interpret(g, *inputs)


# -- (a) types and (b) values ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", COVERED)
def test_matches_reference(name):
    info = INFOS[name]
    for sample in samples_of(name):
        g, node = build(name, sample.inputs, sample.attrs)
        if info.raises is not None:
            with pytest.raises(info.raises, match=name):
                chunkc.interpret(g, *sample.inputs)
            continue
        got = chunkc.interpret(g, *sample.inputs)
        want = as_tuple(info.ref(*sample.inputs, **sample.attrs))
        assert len(want) == len(node.outputs) == len(got), f"{sample}: number of outputs"
        # sizes known only once the node has run (an image's height) take the values it produced
        produced = {s: got[v.index].shape[axis] for s, (v, axis) in g.data_dependent_sizes().items()}
        for k, (out, a, w) in enumerate(zip(node.outputs, got, want)):
            w = np.asarray(w)
            expected = TensorType(to_dtype(w.dtype), w.shape)
            inferred = out.type.with_shape(out.type.concrete_shape(produced)) if produced else out.type
            assert inferred == expected, f"{sample}: output {k} inferred {out.type}, reference gives {expected}"
            assert (a.dtype, a.shape) == (out.type.dtype.numpy, tuple(inferred.shape)), \
                f"{sample}: output {k} of the NumPy reference is {a.dtype}{list(a.shape)}, inferred {out.type}"
        if info.compare is not None:
            info.compare(got, [np.asarray(w) for w in want], sample)
        else:
            for k, (a, w) in enumerate(zip(got, want)):
                assert_close(a, w, info, f"{name} {sample} output {k}: ")


# -- (c) the dimension record, by execution ------------------------------------------------------------------


def pick_slice(n: int, ratios) -> tuple[int, int] | None:
    """A proper sub-range [a, b) of an output axis of size n whose input ranges [a*r, b*r) are whole
    elements for every ratio r; None when only the whole axis qualifies (the axis is then skipped)."""
    q = 1
    for r in ratios:
        q = q * Fraction(r).denominator // math.gcd(q, Fraction(r).denominator)
    if n % q:
        return None
    units = n // q
    if units >= 3:
        return q, n - q
    if units == 2:
        return q, n
    return None


def test_pick_slice_respects_ratios():
    assert pick_slice(8, [Fraction(1)]) == (1, 7)
    assert pick_slice(8, [Fraction(1, 2), Fraction(3)]) == (2, 6)  # 2*1/2 and 6*1/2 are whole
    assert pick_slice(4, [Fraction(1, 2)]) == (2, 4)
    assert pick_slice(2, [Fraction(1, 2)]) is None  # only the whole axis: skipped
    assert pick_slice(6, [Fraction(1, 4)]) is None  # 6/4 elements: not a valid carry extent


def chunk_attrs(op, attrs: dict, output: int, axis: int, length: int, rank: int) -> dict:
    """The attributes for a slice, as code generators rewrite them: the op's ``shape_attr`` (one entry
    per trailing axis of output 0 of rank ``rank``, e.g. reshape's target, interpolate's size) names
    the slice's length on the sliced axis."""
    key = op.shape_attr
    if key is None or output != 0 or key not in attrs:
        return attrs
    shape = list(attrs[key])
    k = axis - (rank - len(shape))
    if k >= 0 and not (isinstance(shape[k], int) and shape[k] == -1):
        shape[k] = length
    return {**attrs, key: tuple(shape)}


def _slice_axis(a: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(lo, hi)
    return np.ascontiguousarray(a[tuple(index)])


@pytest.mark.parametrize("name", COVERED)
def test_dims_by_execution(name):
    info = INFOS[name]
    if info.raises is not None:
        return
    checked = 0
    for sample in samples_of(name):
        g, node = build(name, sample.inputs, sample.attrs)
        full = chunkc.interpret(g, *sample.inputs)
        for j, flows in enumerate(node.dims()):
            for axis, flow in enumerate(flows):
                n = full[j].shape[axis]
                if flow.kind != "carry" or n <= 1:
                    continue
                for src in flow.sources:
                    extent = sample.inputs[src.input].shape[src.axis]
                    assert extent == n * src.ratio, (
                        f"{sample}: output {j} axis {axis} (size {n}) carries {src}, whose input axis has "
                        f"{extent} elements, not {n} * {src.ratio}")
                span = pick_slice(n, [s.ratio for s in flow.sources])
                if span is None:
                    continue
                a, b = span
                sliced = list(sample.inputs)
                for src in flow.sources:
                    lo, hi = a * src.ratio, b * src.ratio
                    assert lo.denominator == hi.denominator == 1
                    sliced[src.input] = _slice_axis(sliced[src.input], src.axis, int(lo), int(hi))
                attrs = chunk_attrs(OPS[name], sample.attrs, j, axis, b - a, full[j].ndim)
                if flow.positional:  # the slice's start moves the op's attributes
                    attrs = OPS[name].slice_attrs({**node.attrs, **attrs}, [i.type for i in node.inputs], axis, a, b - a)
                if info.sliced_attrs is not None:
                    attrs = info.sliced_attrs(attrs, j, axis, b - a)
                got = run(name, sliced, attrs)[j]
                want = _slice_axis(full[j], axis, a, b)
                assert_close(got, want, info, f"{name} {sample}: output {j} axis {axis} claims {flow}; "
                                              f"rows [{a}, {b}) differ: ")
                checked += 1
    # ops whose every axis mixes or is new check nothing here; the others must check something
    carries = any(f.kind == "carry" for s in samples_of(name) for flows in build(name, s.inputs, s.attrs)[1].dims()
                  for f in flows)
    assert checked or not carries, f"{name}: no carried axis was long enough to slice; add a larger sample"


ACCUMULATING = sorted(name for name in COVERED if OPS[name].accumulates is not None)


@pytest.mark.parametrize("name", ACCUMULATING)
def test_accumulates_by_execution(name):
    from chunkc.passes.accumulate import accumulating_end, merge_partial, sliced_axes
    checked = 0
    for sample in samples_of(name):
        g, node = build(name, sample.inputs, sample.attrs)
        if len(node.outputs) != 1:
            continue
        full = chunkc.interpret(g, *sample.inputs)[0]
        for axis in range(node.inputs[0].rank):
            how = accumulating_end(node, axis)
            n = sample.inputs[0].shape[axis]
            if how is None or n < 2:
                continue
            merged = None
            for a, b in ((0, n // 2), (n // 2, n)):
                sliced = list(sample.inputs)
                for pos, ax in sliced_axes(axis, how).items():
                    sliced[pos] = _slice_axis(sliced[pos], ax, a, b)
                attrs = dict(sample.attrs)
                if how.offset_attr is not None:  # the slice is placed at element a of the axis
                    attrs[how.offset_attr] = attrs.get(how.offset_attr, 0) + a
                part = np.asarray(run(name, sliced, attrs)[0])
                merged = merge_partial(np, merged, part, how, (b - a) / n)
            assert_close(merged, full, INFOS[name], f"{name} {sample}: accumulates over axis {axis} of input 0 "
                                                    f"({how}); the merged halves differ: ")
            checked += 1
    assert checked, f"{name}: its record accumulates, but no sample has an axis to check it on; add one"


# -- (d) completeness ----------------------------------------------------------------------------------------------


def test_every_op_has_samples():
    missing = sorted(set(OPS) - set(INFOS))
    assert not missing, (f"{len(missing)} registered op(s) have no samples in the op database: {', '.join(missing)}; "
                         "add an OpInfo to tests/opdb.py (or to a tests/opdb_<name>.py module's OPINFOS)")
    empty = sorted(name for name in COVERED if not samples_of(name))
    assert not empty, f"op infos without samples: {empty}"
    no_graphs = sorted(name for name in COVERED if INFOS[name].raises is None and not graph_samples(name))
    assert not no_graphs, (f"op(s) without sample graphs: {', '.join(no_graphs)}; attach a builder with "
                           "@graph_sample in tests/opdb.py (attribute-free ops get automatic ones)")


def test_every_op_has_a_torch_lowering():
    missing = sorted(name for name, op in OPS.items() if op.torch is None)
    assert not missing, (f"op(s) without a PyTorch lowering: {', '.join(missing)}; give the record a `torch` "
                         "call template or function (docs/ops.md)")


def test_no_stale_op_infos():
    stale = sorted(set(INFOS) - set(OPS))
    assert not stale, f"op infos for ops that are not registered: {stale}"


# -- (e) views -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COVERED)
def test_views_alias_and_copies_are_fresh(name):
    info, op = INFOS[name], OPS[name]
    if info.raises is not None:
        return
    for sample in samples_of(name):
        inputs = [np.ascontiguousarray(a) for a in sample.inputs]
        _, node = build(name, inputs, sample.attrs)
        outs = as_tuple(op.reference(np, *inputs, **node.attrs))
        strides = None
        if op.view_strides is not None:
            strides = op.view_strides([v.type for v in node.inputs], node.attrs, contiguous_strides(inputs[0].shape))
        for k, o in enumerate(outs):
            if o.size == 0:
                continue
            if strides is not None:
                assert np.shares_memory(o, inputs[0]), f"{sample}: output {k} is declared a view but is a copy"
                if k == 0:
                    got = tuple(s // o.itemsize for s in o.strides)
                    for axis, (size, want, have) in enumerate(zip(o.shape, strides, got)):
                        assert size == 1 or int(evaluate(want)) == have, \
                            f"{sample}: view strides {strides} declared, NumPy has {got} (axis {axis})"
            else:
                for i, a in enumerate(inputs):
                    assert not np.shares_memory(o, a), f"{sample}: output {k} aliases input {i} without view_strides"
                assert o.flags.c_contiguous or o.ndim == 0, f"{sample}: output {k} is not C-contiguous"


# -- (f) memory --------------------------------------------------------------------------------------------------------

MEMORY_OPS = sorted(name for name in COVERED if INFOS[name].big is not None)


def traced_peak(fn) -> tuple[int, object]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", MEMORY_OPS)
def test_reference_memory_matches_declaration(name):
    op = OPS[name]
    for sample in INFOS[name].big(rng_for(name)):
        g, node = build(name, sample.inputs, sample.attrs)
        call = lambda: op.reference(np, *sample.inputs, **node.attrs)  # noqa: E731
        call()  # warm caches (imports, BLAS buffers) outside the measurement
        peak, outs = traced_peak(call)
        outs = as_tuple(outs)
        fresh = sum(o.nbytes for o in outs if not any(np.shares_memory(o, a) for a in sample.inputs))
        ws = op.workspace([v.type for v in node.inputs], node.attrs, [v.type for v in node.outputs]) \
            if op.workspace is not None else 0
        expected = fresh + int(evaluate(ws)) * node.outputs[0].dtype.itemsize
        # NumPy's ufunc iterator buffers up to three operands of getbufsize() elements on strided views
        slack = 3 * np.getbufsize() * max(a.itemsize for a in outs + tuple(sample.inputs)) + 8 * 1024
        assert abs(peak - expected) <= 0.05 * expected + slack, (
            f"{name} {sample}: traced peak {peak} bytes, declared {expected} "
            f"(outputs {fresh} + workspace {expected - fresh})")


# -- docs ---------------------------------------------------------------------------------------------------------------


def test_ops_doc_is_current():
    import pathlib

    from chunkc.ir.ops.doc import ops_markdown
    path = pathlib.Path(__file__).parent.parent / "docs" / "ops.md"
    assert path.read_text() == ops_markdown(), "docs/ops.md is stale: run `python -m chunkc.ir.ops.doc > docs/ops.md`"


def test_ops_doc_shows_real_code():
    """The guide's excerpts (``<!-- from PATH -->`` before a code block) are verbatim in PATH."""
    import pathlib
    import re

    root = pathlib.Path(__file__).parent.parent
    excerpts = re.findall(r"<!-- from (\S+) -->\n```python\n(.*?)```", (root / "docs" / "ops.md").read_text(), re.S)
    assert len(excerpts) >= 4
    for path, block in excerpts:
        assert block in (root / path).read_text(), f"docs/ops.md shows code that {path} does not hold:\n{block}"


def test_core_ops_document_their_dims():
    undocumented = sorted(name for name, op in OPS.items()
                          if not op.infer.__module__.split(".")[-1].startswith("extra_") and "Carries:" not in op.doc)
    assert not undocumented, f"ops whose doc does not say which axes carry ('Carries: ...'): {undocumented}"


# -- symbolic sizes ---------------------------------------------------------------------------------------------------

from chunkc.ir.ops.opaque import parse_type  # noqa: E402
from chunkc.ir.sizes import sym  # noqa: E402

SYMBOLIC = [
    # (op, input types, attrs, bindings to run at)
    ("conv", ["f32[B, 3, H, W]", "f32[8, 3, 3, 3]"], {"stride": (2, 2), "padding": ((1, 1), (1, 0))}, {"B": 2, "H": 9, "W": 8}),
    ("conv", ["f32[1, 4, L]", "f32[4, 1, 4]"], {"stride": (4,), "groups": 4}, {"L": 12}),
    ("conv_transpose", ["f32[1, 4, H, W]", "f32[4, 2, 3, 3]"], {"stride": (2, 2), "padding": ((1, 1), (1, 1)),
                                                                "output_padding": (1, 1)}, {"H": 5, "W": 3}),
    ("max_pool", ["f32[B, 3, H, W]"], {"kernel": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1))}, {"B": 1, "H": 9, "W": 6}),
    ("avg_pool", ["f32[2, H]"], {"kernel": (2,), "ceil_mode": True, "stride": (1,)}, {"H": 5}),
    ("adaptive_avg_pool", ["f32[B, 3, H, W]"], {"output_size": (2, 3)}, {"B": 2, "H": 7, "W": 9}),
    ("interpolate", ["f32[1, 2, H, W]"], {"size": ("2*H", "W + 1"), "mode": "linear"}, {"H": 3, "W": 4}),
    ("concat", ["f32[B, L, 4]", "f32[B, S, 4]"], {"axis": 1}, {"B": 2, "L": 3, "S": 5}),
    ("split", ["f32[B, L + S]"], {"sizes": ("L", "S"), "axis": 1}, {"B": 2, "L": 3, "S": 4}),
    ("stack", ["f32[L, 4]", "f32[L, 4]"], {"axis": 1}, {"L": 3}),
    ("pad", ["f32[B, L]"], {"pads": ((0, 0), (1, "P"))}, {"B": 2, "L": 3, "P": 2}),
    ("arange", [], {"end": sym("L"), "start": 1}, {"L": 6}),
    ("arange", [], {"end": sym("L"), "step": 2}, {"L": 7}),
    ("full", [], {"shape": ("B", "L"), "value": 0.5}, {"B": 2, "L": 3}),
    ("scaled_dot_product_attention", ["f32[B, 2, L, 8]", "f32[B, 2, S, 8]", "f32[B, 2, S, 4]", "bool[L, S]"], {},
     {"B": 1, "L": 3, "S": 5}),
    ("layer_norm", ["f32[B, L, 8]", "f32[8]"], {}, {"B": 2, "L": 3}),
    ("take", ["f32[V, D]", "i64[B, L]"], {"axis": 0}, {"V": 4, "D": 3, "B": 2, "L": 5}),
    ("tile", ["f32[B, L]"], {"repeats": (1, 2)}, {"B": 2, "L": 3}),
    ("topk", ["f32[B, L]"], {"k": 2}, {"B": 2, "L": 5}),
    ("triu", ["f32[L, L]"], {}, {"L": 4}),
    ("group_norm", ["f32[B, 4, L]"], {"num_groups": 2}, {"B": 2, "L": 3}),
]


@pytest.mark.parametrize("op,types,attrs,bindings", SYMBOLIC, ids=[f"{c[0]}-{i}" for i, c in enumerate(SYMBOLIC)])
def test_symbolic_shapes_infer_and_run(op, types, attrs, bindings):
    g = Graph("sym")
    values = []
    for i, text in enumerate(types):
        t = parse_type(text)
        values.append(g.add_input(f"x{i}", t.dtype, t.shape))
    node = g.add_node(op, values, attrs)
    g.set_outputs(*node.outputs)
    assert any(not isinstance(s, int) for o in node.outputs for s in o.shape), "the sample should stay symbolic"
    for name in bindings:  # symbols that only attributes hold are bound through an unused input each
        g.add_input(f"size_{name}", "f32", (name,))
    rng = np.random.default_rng(0)
    arrays = []
    for v in g.inputs:
        shape = tuple(evaluate(s, bindings) for s in v.shape)
        if v.dtype.name == "bool":
            arrays.append(rng.random(shape) < 0.7)
        elif v.dtype.is_floating:
            arrays.append(rng.standard_normal(shape).astype(v.dtype.numpy))
        else:
            arrays.append(rng.integers(0, 3, shape).astype(v.dtype.numpy))
    outs = chunkc.interpret(g, *arrays)
    for o, a in zip(node.outputs, outs):
        assert tuple(a.shape) == tuple(evaluate(s, bindings) for s in o.shape), f"{o.type} at {bindings}: {a.shape}"


def test_interpolate_source_positions_match_pytorch_exactly():
    """Index rules at every size pair up to 30 -> 70, against F.interpolate on an arange (ties included)."""
    import torch
    import torch.nn.functional as F

    from chunkc.ir.ops.resize import linear_weights, nearest_index
    for n_in in range(1, 31):
        x = torch.arange(n_in, dtype=torch.float32).reshape(1, 1, n_in)
        for n_out in range(1, 71):
            for exact, mode in ((False, "nearest"), (True, "nearest-exact")):
                want = F.interpolate(x, size=n_out, mode=mode)[0, 0].numpy().astype(np.int64)
                np.testing.assert_array_equal(nearest_index(n_in, n_out, exact), want, err_msg=f"{mode} {n_in}->{n_out}")
            for ac in (False, True):
                want = F.interpolate(x, size=n_out, mode="linear", align_corners=ac)[0, 0].numpy()
                i0, i1, lam = linear_weights(n_in, n_out, ac)
                np.testing.assert_allclose((1 - lam) * i0 + lam * i1, want, atol=1e-5, err_msg=f"linear {n_in}->{n_out}")


def test_op_records_import_neither_torch_nor_the_backends():
    """Lowerings write text: loading every record (templates, lowering functions) imports no torch and
    no chunkc.backends module (a lowering that needs one imports it when it runs)."""
    import subprocess
    import sys
    code = ("import sys, chunkc\n"
            "from chunkc.ir.registry import all_ops\n"
            "assert all(op.torch is not None for op in all_ops().values())\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('chunkc.backends')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
