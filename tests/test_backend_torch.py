"""The PyTorch backend: a lowering for every registered op, checked against the
op's NumPy reference; the nn.Module (weights as buffers, save and load); the
torch.compile backend; the grad modes and the opaque-op lookup.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch

import chunkc
from chunkc.backends.host_call import TORCH_NATIVE
from chunkc import ops as O
from chunkc.backends import compile as compile_graph, emit_source, load_module, save_module
from chunkc.backends.array_lowering import array_rules
from chunkc.backends.torch_lowering import RULES
from chunkc.errors import ChunkcError
from chunkc.ir.registry import REQUIRED, all_ops

L = chunkc.sym("L")


def test_every_registered_op_has_a_lowering():
    ops = all_ops()
    missing_torch = sorted(set(ops) - set(RULES))
    missing_array = sorted(name for name, op in ops.items() if op.reference is not None and name not in array_rules())
    assert not missing_torch, f"torch backend has no lowering for: {', '.join(missing_torch)}"
    assert not missing_array, f"numpy backend has no lowering for: {', '.join(missing_array)}"


# -- per-op samples ----------------------------------------------------------------------------
#
# A sample builds a small graph around one op.  Inputs are declared with a value range, so
# that log, sqrt, acosh... get valid arguments and integer ops get small integers.


class Sample:
    def __init__(self, name: str):
        self.graph = chunkc.Graph(name)
        self.ranges: list[tuple] = []

    def inp(self, dtype: str, shape, low: float = -1.0, high: float = 1.0, name: str = "x"):
        self.ranges.append((low, high))
        return self.graph.add_input(name, dtype, shape)

    def const(self, data, name="c"):
        return self.graph.add_constant(name, np.asarray(data))

    def arrays(self, sizes: dict[str, int], seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        out = []
        for v, (low, high) in zip(self.graph.inputs, self.ranges):
            shape = v.type.concrete_shape(sizes)
            if v.dtype.name == "bool":
                out.append(rng.random(shape) < 0.5)
            elif v.dtype.is_floating:
                out.append(rng.uniform(low, high, size=shape).astype(v.dtype.numpy))
            else:
                out.append(rng.integers(int(low), int(high), size=shape).astype(v.dtype.numpy))
        return out


SAMPLES: dict[str, list[Callable[[Sample], tuple]]] = {}


def sample(*ops: str):
    def deco(fn):
        for op in ops:
            SAMPLES.setdefault(op, []).append(fn)
        return fn
    return deco


DOMAINS = {"acosh": (1.1, 3.0), "log": (0.1, 2.0), "sqrt": (0.1, 2.0), "rsqrt": (0.1, 2.0), "log1p": (0.1, 2.0),
           "reciprocal": (0.2, 2.0), "atanh": (-0.9, 0.9), "asin": (-0.9, 0.9), "acos": (-0.9, 0.9)}


def _automatic(name: str, op):
    """Samples for ops without required attributes: 1 or 2 inputs, float or integer, broadcasting."""
    if any(v is REQUIRED for v in op.attrs.values()):
        return []
    lo, hi = DOMAINS.get(name, (-1.0, 1.0))
    shapes = {(1, 1): [("f32", (2, L, 4))], (2, 2): [("f32", (2, L, 4)), ("f32", (L, 4))],
              (3, 3): [("bool", (L, 4)), ("f32", (2, L, 4)), ("f32", (L, 1))]}.get(tuple(op.num_inputs))
    if shapes is None:
        return []
    out = []
    for int_variant in (False, True):
        def build(s, int_variant=int_variant, shapes=shapes):
            xs = []
            for i, (dt, shape) in enumerate(shapes):
                if int_variant and dt == "f32":
                    xs.append(s.inp("i32", shape, 0, 8, name=f"x{i}"))
                else:
                    low = 0.5 if name in ("fmod", "remainder", "floor_divide", "div", "pow") and i == 1 else lo
                    xs.append(s.inp(dt, shape, low, hi, name=f"x{i}"))
            if int_variant and name in ("fmod", "remainder", "floor_divide", "div") and len(xs) == 2:
                s.ranges[1] = (1, 8)  # no integer division by zero
            return (s.graph.op(name, *xs),)
        build.automatic = True
        out.append(build)
    return out


@sample("cast")
def _(s):
    x = s.inp("f32", (L, 3), -4, 4)
    return O.cast(x, dtype="f16"), O.cast(x, dtype="i32"), O.cast(x, dtype="f32")


@sample("clamp")
def _(s):
    x = s.inp("f32", (L, 3))
    return O.clamp(x, min=-0.2, max=0.3), O.clamp(x, max=0.1)


@sample("masked_fill")
def _(s):
    x, m = s.inp("f32", (2, L, 3)), s.inp("bool", (L, 1), name="m")
    return (O.masked_fill(x, m, value=float("-inf")),)


@sample("where", "add", "mul", "sub", "div", "lt")
def _(s):
    c, a = s.inp("bool", (L, 3), name="c"), s.inp("f32", (2, L, 3), 0.5, 1.0)
    k = s.const(np.float32(0.25), "k")
    k64 = s.const(np.float64(0.5), "k64")
    return O.where(c, a, k), a * 0.5, 1.0 - a, O.div(2.0, a), O.add(a, k64), O.lt(a, 0.75)


@sample("matmul", "bmm", "linear", "addmm", "einsum")
def _(s):
    a = s.inp("f32", (2, L, 4), name="a")
    w = s.const(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), "w")
    b = s.const(np.arange(5, dtype=np.float32), "b")
    m = s.const(np.random.default_rng(1).standard_normal((3, 1, 4, 2)).astype(np.float32), "m")
    sq = s.const(np.random.default_rng(2).standard_normal((2, 4, 4)).astype(np.float32), "sq")
    a2 = O.reshape(a, shape=(2 * L, 4))
    return (O.matmul(a, O.permute(w, dims=(1, 0))), O.matmul(O.unsqueeze(a, axis=0), m), O.bmm(a, sq),
            O.linear(a, w, b), O.linear(a, w), O.addmm(b, a2, O.permute(w, dims=(1, 0)), beta=0.5, alpha=2.0),
            O.einsum(a, sq, equation="blj,bjk->bkl"))


@sample("sum", "mean", "amax", "amin", "prod", "any", "all", "var", "argmax", "argmin")
def _(s):
    x = s.inp("f32", (2, L, 4), 0.5, 1.5)
    i = s.inp("i32", (L, 3), 0, 5, name="i")
    b = O.gt(x, 1.0)
    return (O.sum(x, axes=(0, 2), keepdim=True), O.sum(i, axes=1), O.sum(x), O.mean(x, axes=-1),
            O.amax(x), O.amin(x, axes=(1,)), O.prod(x, axes=(0, 2)), O.prod(x, axes=1, keepdim=True),
            O.prod(i, axes=0), O.any(b, axes=2), O.all(b), O.var(x, axes=1, correction=0),
            O.var(x, axes=(0, 2), keepdim=True), O.argmax(x, axis=1, keepdim=True), O.argmin(x, axis=-1))


@sample("softmax", "log_softmax", "cumsum", "cumprod")
def _(s):
    x, i = s.inp("f32", (2, L, 4), 0.5, 1.5), s.inp("i32", (L, 4), 0, 5, name="i")
    out = [O.softmax(x, axis=1), O.log_softmax(x, axis=-1), O.cumsum(x, axis=1), O.cumsum(i, axis=0)]
    if "cumprod" in all_ops():
        out += [s.graph.op("cumprod", x, axis=1), s.graph.op("cumprod", i, axis=0)]
    return tuple(out)


@sample("reshape", "permute", "expand", "squeeze", "unsqueeze", "slice", "contiguous", "copy")
def _(s):
    x = s.inp("f32", (L, 1, 4))
    p = O.permute(x, dims=(2, 1, 0))
    return (O.reshape(x, shape=(2, L, 2)), O.reshape(p, shape=(-1,)), O.expand(x, shape=(3, L, 5, 4)),
            O.squeeze(x), O.squeeze(x, axes=(0,)), O.unsqueeze(x, axis=-1),
            O.slice(x, axis=2, start=1, end=None, step=2), O.slice(x, axis=0, start=1, end=L - 1),
            O.slice(x, axis=2, start=-3, end=-1), O.contiguous(p), O.copy(p))


@sample("layer_norm", "rms_norm", "group_norm", "batch_norm")
def _(s):
    x = s.inp("f32", (2, 6, L))
    rng = np.random.default_rng(3)
    w6, b6 = s.const(rng.uniform(0.5, 1.5, 6).astype(np.float32), "w6"), s.const(rng.standard_normal(6).astype(np.float32), "b6")
    mean, var = s.const(rng.standard_normal(6).astype(np.float32), "mean"), s.const(rng.uniform(0.5, 2, 6).astype(np.float32), "var")
    t = O.permute(x, dims=(0, 2, 1))
    return (O.layer_norm(t, w6, b6), O.layer_norm(x, num_axes=2, eps=1e-3), O.rms_norm(t, w6),
            O.rms_norm(t, eps=1e-6), O.group_norm(x, w6, b6, num_groups=3), O.group_norm(x, num_groups=2),
            O.batch_norm(x, mean, var, w6, b6), O.batch_norm(x, mean, var))


@sample("concat", "stack", "split")
def _(s):
    a, b = s.inp("f32", (2, L), name="a"), s.inp("f32", (3, L), name="b")
    p, q, r = O.split(b, sizes=(1, 1, 1), axis=0)
    only = O.split(a, sizes=(2,), axis=0)  # one output: the node's value itself
    head, tail = O.split(a, sizes=(1, L - 1), axis=1)
    return O.concat(a, b, axis=0), O.stack(p, q, r, axis=1), p, r, only, head, tail


@sample("take", "gather", "embedding")
def _(s):
    x = s.inp("f32", (3, L, 4))
    idx = s.const(np.array([[0, 3], [-1, 2]], np.int64), "idx")
    g_idx = s.inp("i64", (3, L, 2), 0, 4, name="gi")
    table = s.const(np.random.default_rng(4).standard_normal((10, 5)).astype(np.float32), "table")
    ids = s.inp("i64", (2, L), 0, 10, name="ids")
    return O.take(x, idx, axis=2), O.take(x, s.const(np.int64(1), "one"), axis=0), O.gather(x, g_idx, axis=2), \
        O.embedding(table, ids)


@sample("conv", "conv_transpose")
def _(s):
    x1, x2 = s.inp("f32", (2, 4, L), name="x1"), s.inp("f32", (1, 4, L, 6), name="x2")
    rng = np.random.default_rng(5)
    w1 = s.const(rng.standard_normal((6, 2, 3)).astype(np.float32), "w1")
    w2 = s.const(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    wt = s.const(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), "wt")
    b6 = s.const(rng.standard_normal(6).astype(np.float32), "b6")
    return (O.conv(x1, w1, b6, stride=(1,), padding=((1, 1),), dilation=(2,), groups=2),
            O.conv(x2, w2, padding=((0, 1), (1, 2)), stride=(1, 2)),
            O.conv_transpose(x2, wt, stride=(2, 2)),
            O.conv_transpose(x2, wt, stride=(2, 1), padding=((1, 0), (0, 1)), output_padding=(1, 0)))


@sample("max_pool", "avg_pool", "adaptive_avg_pool")
def _(s):
    x = s.inp("f32", (2, 3, 8, L))
    x5 = s.inp("f32", (2, 2, 2, 6, L), name="x5")
    return (O.max_pool(x, kernel=(2, 2)), O.max_pool(x, kernel=(3, 3), stride=(2, 1), padding=((1, 1), (1, 1)),
                                                      ceil_mode=True),
            O.max_pool(x5, kernel=(3,), padding=((1, 0),)), O.avg_pool(x, kernel=(2, 3), stride=(2, 1)),
            O.avg_pool(x, kernel=(3, 3), padding=((1, 1), (0, 1)), count_include_pad=False),
            O.avg_pool(x5, kernel=(2, 2), padding=((1, 0), (0, 0))),
            O.adaptive_avg_pool(x, output_size=(3, 2)), O.adaptive_avg_pool(x5, output_size=(2,)))


@sample("interpolate", "pad")
def _(s):
    x = s.inp("f32", (2, 3, 4, L))
    x3 = s.inp("f32", (3, L, 5), name="x3")
    return (O.interpolate(x, size=(8, 3), mode="nearest"), O.interpolate(x, size=(7, 2), mode="nearest_exact"),
            O.interpolate(x, size=(6, 9), mode="linear"), O.interpolate(x, size=(5, 4), mode="linear", align_corners=True),
            O.interpolate(x3, size=(9,), mode="linear"),
            O.pad(x3, pads=((0, 0), (1, 2), (-1, 1)), value=0.5), O.pad(x3, pads=((0, 0), (0, 0), (2, 1)), mode="reflect"),
            O.pad(x, pads=((0, 0), (1, 0), (0, 2), (1, 1)), mode="replicate"),
            O.pad(x3, pads=((0, 0), (1, 1), (2, 0)), mode="circular"))


@sample("arange", "full", "full_like", "triu", "tril")
def _(s):
    x = s.inp("f32", (2, L, L))
    g = s.graph
    return (g.op("arange", end=L), g.op("arange", start=1, end=2 * L, step=3), g.op("arange", end=2.5, step=0.5),
            g.op("full", shape=(2, L), value=1.5), g.op("full", shape=(L,), value=True), O.full_like(x, value=2),
            O.full_like(x, value=3, dtype="i64"), O.triu(x), O.tril(x, diagonal=-1))


@sample("flip", "roll", "tile", "topk", "sort")
def _(s):
    x = s.inp("f32", (3, L, 4))
    v, i = O.topk(x, k=2, axis=-1)
    v2, i2 = O.topk(x, k=3, axis=0, largest=False)
    sv, si = O.sort(x, axis=1, descending=True)
    return (O.flip(x, axes=(0, 2)), O.roll(x, shifts=(1, -2), axes=(0, 2)), O.roll(x, shifts=3),
            O.tile(x, repeats=(2, 1, 1)), O.tile(x, repeats=(2, 1, 1, 3)), v, i, v2, i2, sv, si)


@sample("scaled_dot_product_attention")
def _(s):
    q = s.inp("f32", (2, 3, L, 8), name="q")
    k = s.inp("f32", (2, 3, 7, 8), name="k")
    v = s.inp("f32", (2, 3, 7, 5), name="v")
    bm = s.inp("bool", (L, 7), name="bm")
    fm = s.inp("f32", (1, 1, L, 7), name="fm")
    kq = s.inp("f32", (2, 3, L, 8), name="kq")
    vq = s.inp("f32", (2, 3, L, 8), name="vq")
    sdpa = O.scaled_dot_product_attention
    return (sdpa(q, k, v), sdpa(q, k, v, bm), sdpa(q, k, v, fm, scale=0.3), sdpa(q, kq, vq, is_causal=True))


@sample("size_tensor", "gather_nd", "scatter_elements", "scatter_nd", "shift_left", "shift_right")
def _(s):
    x = s.inp("f32", (L, 4, 3))
    g = s.graph
    out = []
    if "size_tensor" in all_ops():
        out.append(g.op("size_tensor", values=(L, 12, 2 * L, 1), shape=(2, 2)))
        out.append(g.op("size_tensor", values=(L - 1,), shape=()))
    if "gather_nd" in all_ops():
        idx = s.const(np.array([[0, 1], [-1, 3], [1, 0]], np.int64), "idx")
        out.append(g.op("gather_nd", x, idx))
        bidx = s.const(np.array([[[1], [3]], [[0], [-1]]], np.int64), "bidx")
        x2 = s.inp("f32", (2, 4, 3), name="x2")
        out.append(g.op("gather_nd", x2, bidx, batch_dims=1))
        data = s.inp("f32", (3, 4), name="data")
        ind = s.const(np.array([[1, 0], [2, -1]], np.int64), "ind")
        upd = s.inp("f32", (2, 2), name="upd")
        for red in ("none", "add", "max"):
            out.append(g.op("scatter_elements", data, ind, upd, axis=1, reduction=red))
        nd_ind = s.const(np.array([[0], [2], [0]], np.int64), "nd_ind")
        nd_upd = s.inp("f32", (3, 4), name="nd_upd")
        for red in ("none", "add", "mul", "min"):
            out.append(g.op("scatter_nd", data, nd_ind, nd_upd, reduction=red))
        a = s.inp("i32", (L, 3), 0, 64, name="ia")
        b = s.inp("i32", (L, 3), 0, 4, name="ib")
        out += [g.op("shift_left", a, b), g.op("shift_right", a, b)]
    return tuple(out)


@sample("bitcast")
def _(s):
    x = s.inp("f32", (L, 3), -4, 4)
    i = s.inp("i16", (2, L), -300, 300, name="i")
    return O.bitcast(x, dtype="i32"), O.bitcast(i, dtype="f16"), O.bitcast(i, dtype="u16")


@sample("cast_e8m0")
def _(s):
    x = s.inp("f32", (L, 3), -100, 100)
    return O.cast_e8m0(x), O.cast_e8m0(x, round_mode="nearest", saturate=False)


@sample("dft")
def _(s):
    x = s.inp("f32", (2, L, 2), -1, 1)
    return O.dft(x, axis=1, length=L), O.dft(x, axis=1, length=8, onesided=True)


@sample("stft")
def _(s):
    x = s.inp("f32", (2, 4 * L, 1), -1, 1)
    return (O.stft(x, frame_step=2, frame_length=4),)


@sample("decode_image")
def _(s):
    from opdb_image import encoded
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    data = s.graph.add_constant("png", encoded(pixels, "PNG"))
    x = s.inp("f32", (L, 2), -1, 1)  # the sizes sample graphs run at
    return O.decode_image(data, height="h", width="w"), x


def _samples_for(name: str):
    return SAMPLES.get(name, []) or _automatic(name, all_ops()[name])


def _run_sample(name: str, build) -> int:
    s = Sample(name)
    outs = build(s)
    outs = [o for o in outs if o is not None]
    s.graph.set_outputs(*outs)
    fn = compile_graph(s.graph, None, "torch")
    checked = 0
    for sizes in ({"L": 5}, {"L": 7}):
        arrays = s.arrays(sizes)
        ref = chunkc.interpret(s.graph, *arrays)
        got = fn(*[torch.from_numpy(a) for a in arrays])
        got = got if isinstance(got, tuple) else (got,)
        for value, r, g_ in zip(s.graph.outputs, ref, got):
            assert str(g_.dtype).removeprefix("torch.") == value.dtype.name, (name, value, g_.dtype)
            if isinstance(g_, np.ndarray):  # a dtype PyTorch cannot compute in stays a NumPy array
                assert value.dtype not in TORCH_NATIVE, (name, value)
                g_, r = g_.astype(value.dtype.wide), np.asarray(r).astype(value.dtype.wide)
            else:
                g_ = g_.numpy()
            assert g_.shape == np.asarray(r).shape, (name, value, g_.shape, np.asarray(r).shape)
            tol = 2e-3 if value.dtype.name == "float16" else 1e-4
            np.testing.assert_allclose(g_, r, rtol=tol, atol=tol, equal_nan=True, err_msg=f"{name}: %{value.name}")
            checked += 1
    return checked


OPS_WITH_REFERENCE = sorted(n for n, op in all_ops().items() if n != "opaque")


@pytest.mark.parametrize("name", OPS_WITH_REFERENCE)
def test_torch_lowering_matches_reference(name):
    builds = _samples_for(name)
    assert builds, f"no sample for op {name}: add one to SAMPLES in tests/test_backend_torch.py"
    failures, checked = [], 0
    for build in builds:
        try:
            checked += _run_sample(name, build)
        except chunkc.IRError as exc:  # an automatic variant the op refuses (integer input to a float op)
            if not getattr(build, "automatic", False):
                raise
            failures.append(str(exc))
    assert checked, f"op {name}: no sample built: {failures}"


# -- opaque ops ------------------------------------------------------------------------------


def test_opaque_runs_a_validated_torch_op():
    g = chunkc.Graph("o")
    x = g.add_input("x", "f32", ("L", 4))
    y = g.op("opaque", x, target="aten::relu.default", result_types=("f32[L, 4]",), name="r")
    vals, idx = g.op("opaque", y, target="aten::sort.default", result_types=("f32[L, 4]", "i64[L, 4]"), name="s")
    g.set_outputs(O.exp(vals), idx)
    src = emit_source(g, None, "torch")
    assert "op_relu = rt.torch_op('aten::relu.default')" in src and "s_0, s_1 = op_sort(r)" in src
    t = torch.randn(3, 4)
    out, ind = compile_graph(g)(t)
    ref_v, ref_i = torch.sort(torch.relu(t))
    torch.testing.assert_close(out, ref_v.exp())
    torch.testing.assert_close(ind, ref_i)


@pytest.mark.parametrize("target", ["aten::relu.default; import os", "os.system", "aten::relu.default()", "__import__"])
def test_opaque_target_text_is_never_code(target):
    from chunkc.backends.torch_runtime import parse_target, torch_op
    with pytest.raises(ChunkcError, match="is not an operator name"):
        parse_target(target)
    with pytest.raises(ChunkcError):
        torch_op(target)


def test_opaque_result_count_must_match_schema():
    g = chunkc.Graph("o")
    x = g.add_input("x", "f32", (3,))
    g.set_outputs(*g.op("opaque", x, target="aten::relu.default", result_types=("f32[3]", "f32[3]")))
    with pytest.raises(ChunkcError, match="returns 1 value"):
        emit_source(g, None, "torch")


# -- the module: weights, save and load, grad modes ---------------------------------------------


def _mlp():
    from backend_cases import mlp
    return mlp()


def test_module_holds_weights_as_buffers_and_round_trips(tmp_path):
    case = _mlp()
    m = compile_graph(case.graph, case.plan, "torch")
    assert isinstance(m, torch.nn.Module)
    assert sorted(m.state_dict()) == ["b1", "w1", "w2"]  # the 0-d scalar is written as a literal
    x = torch.from_numpy(case.inputs({"B": 2, "L": 9})[0])
    expected = m(x)
    files = save_module(m, tmp_path / "mlp_chunked.py")
    assert [p.rsplit("/", 1)[1] for p in files] == ["mlp_chunked.py", "mlp_chunked.pt"]
    loaded = load_module(tmp_path / "mlp_chunked.py")
    torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    assert loaded.chunkc_source == m.chunkc_source
    # the file is a plain module: import it and call its load()
    import importlib.util
    spec = importlib.util.spec_from_file_location("mlp_chunked_plain", tmp_path / "mlp_chunked.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.testing.assert_close(mod.load()(x), expected, rtol=0, atol=0)


def test_save_module_refuses_other_modules(tmp_path):
    with pytest.raises(ChunkcError, match="made by chunkc.compile"):
        save_module(torch.nn.Linear(2, 2), tmp_path / "x.py")


def test_grad_modes():
    case = _mlp()
    x = torch.from_numpy(case.inputs({"B": 1, "L": 4})[0])
    inf = compile_graph(case.graph, None, "torch")
    assert inf(x).is_inference()
    ng = compile_graph(case.graph, None, "torch", grad_mode="no_grad")
    y = ng(x)
    assert not y.is_inference() and not y.requires_grad
    with pytest.raises(ChunkcError, match="grad_mode"):
        compile_graph(case.graph, None, "torch", grad_mode="train")


def test_mixed_dtype_promotion_follows_the_ir():
    g = chunkc.Graph("promo")
    x = g.add_input("x", "f32", (3,))
    h = g.add_input("h", "f16", (3,))
    k = g.add_constant("k", np.float64(0.5))
    y = O.add(x, k, name="y")  # IR: f32 + f64 -> f64 (torch alone would keep f32)
    z = O.matmul(h, x, name="z")  # torch.matmul needs one dtype: the IR's result
    g.set_outputs(y, z)
    yv, zv = compile_graph(g)(torch.ones(3), torch.ones(3, dtype=torch.float16))
    assert yv.dtype == torch.float64 and zv.dtype == torch.float32
    assert float(zv) == 3.0


# -- torch.compile backend ---------------------------------------------------------------------------


class TinyBlock(torch.nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d)
        self.fc1 = torch.nn.Linear(d, 4 * d)
        self.fc2 = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        h = self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))
        return x + torch.softmax(h, dim=-1)


def _frontend_ready() -> bool:
    try:
        import frontends.pytorch  # noqa: F401
    except ImportError:
        return False
    return hasattr(frontends.pytorch, "from_torch")


@pytest.mark.skipif(not _frontend_ready(), reason="frontends.pytorch.from_torch is not available yet")
def test_dynamo_backend_matches_eager():
    from chunkc.backends.dynamo import DynamoStats
    torch.manual_seed(0)
    model = TinyBlock().eval()
    stats = DynamoStats()
    compiled = torch.compile(model, backend=chunkc.dynamo_backend(budget=None, stats=stats), fullgraph=True)
    with torch.no_grad():
        for n in (8, 8, 13):
            x = torch.randn(2, n, 16)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    assert stats.graphs >= 1 and "F.linear" in stats.sources[0]
    torch._dynamo.reset()


class TinyAttention(torch.nn.Module):
    def __init__(self, d: int = 32, heads: int = 4):
        super().__init__()
        self.qkv, self.o, self.heads = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d), heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        s = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return self.o((s @ v).transpose(1, 2).reshape(b, n, d))


@pytest.mark.skipif(not _frontend_ready(), reason="frontends.pytorch.from_torch is not available yet")
def test_dynamo_backend_chunks_under_a_budget():
    """dynamic=True: one compiled graph with a symbolic length, chunked, serves several lengths."""
    from chunkc.backends.dynamo import DynamoStats
    torch.manual_seed(0)
    model = TinyAttention().eval()
    stats = DynamoStats()
    compiled = torch.compile(model, backend=chunkc.dynamo_backend(budget=0.3, stats=stats, progress=False),
                             dynamic=True)
    with torch.no_grad():
        for n in (128, 77):
            x = torch.randn(1, n, 32)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    assert stats.graphs == 1 and stats.plans[0].regions
    assert "for start in range(0, extent, chunk):" in stats.sources[0]
    assert "x_dim1 = x.shape[1]" in stats.sources[0]
    torch._dynamo.reset()
