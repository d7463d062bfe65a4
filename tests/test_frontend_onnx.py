"""The ONNX frontend: symbolic sizes, constants, opset variants, Resize, opaque and function ops,
and models exported by torch.onnx.export (both exporters) checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

import chunkc
from chunkc.errors import UnsupportedOpError
from chunkc.ir.sizes import free_symbols, sym
from frontends.onnx import DynamicValueError, from_onnx
from onnx_helpers import F32, I64, assert_matches_ort, export_torch, model, run_ort, vi

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def all_symbols(graph) -> set[str]:
    out: set[str] = set()
    for v in graph.values():
        for s in v.shape:
            out |= free_symbols(s)
    return out


# -- sizes ---------------------------------------------------------------------------------------


def _heads_model():
    """x[batch, seq, 64] -> reshape to [batch, seq, 4, 16] through Shape/Gather/Concat, softmax, back."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        helper.make_node("Gather", ["shape", "one"], ["l"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Unsqueeze", ["l", "axes0"], ["l1"]),
        helper.make_node("Concat", ["b1", "l1", "heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["h"]),
        helper.make_node("Softmax", ["h"], ["p"], axis=-1),
        helper.make_node("Mul", ["b", "l"], ["bl"]),
        helper.make_node("Unsqueeze", ["bl", "axes0"], ["bl1"]),
        helper.make_node("Concat", ["bl1", "width"], ["flat"], axis=0),
        helper.make_node("Reshape", ["p", "flat"], ["y"]),
    ]
    inits = [("zero", np.int64(0)), ("one", np.int64(1)), ("axes0", np.array([0], np.int64)),
             ("heads", np.array([4, 16], np.int64)), ("width", np.array([-1], np.int64))]
    return model(nodes, [vi("x", F32, ["batch", "seq", 64])], [vi("y", F32, ["batch*seq", 64])], inits)


def test_dim_params_become_symbols_that_survive_shape_arithmetic():
    m = _heads_model()
    g = from_onnx(m)
    assert g.inputs[0].shape == (sym("batch"), sym("seq"), 64)
    assert all_symbols(g) == {"batch", "seq"}
    assert g.outputs[0].shape == (sym("batch") * sym("seq"), 64)
    # the Shape/Gather/Concat arithmetic is folded: no node computes sizes at run time
    assert [n.op.name for n in g.nodes] == ["reshape", "softmax", "reshape"]
    assert g.nodes[0].attrs["shape"] == (sym("batch"), sym("seq"), 4, 16)
    for batch, seq in ((1, 5), (3, 11)):
        assert_matches_ort(m, g, randn(batch, seq, 64))


def test_dim_param_text_is_sanitized_or_parsed_and_unnamed_dims_get_fresh_names():
    m = model([helper.make_node("Relu", ["x"], ["y"])],
              [vi("x", F32, ["batch size", "2*h", None, 3])], [vi("y", F32, ["batch size", "2*h", None, 3])])
    g = from_onnx(m)
    b, h2, fresh, three = g.inputs[0].shape
    assert b == sym("batch_size") and h2 == 2 * sym("h") and three == 3
    assert free_symbols(fresh) == {"x_dim2"}
    out = chunkc.interpret(g, randn(2, 6, 5, 3))[0]
    assert out.shape == (2, 6, 5, 3)


def test_symbolic_range_expand_and_where_from_shapes():
    """A causal mask built from Shape -> Range -> comparisons keeps `seq` symbolic."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
        helper.make_node("Squeeze", ["s", "axes0"], ["n"]),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "axes0"], ["row"]),
        helper.make_node("Unsqueeze", ["r", "axes1"], ["col"]),
        helper.make_node("LessOrEqual", ["row", "col"], ["mask"]),
        helper.make_node("Where", ["mask", "x2", "neg"], ["y"]),
        helper.make_node("MatMul", ["x", "xt"], ["x2"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
    ]
    inits = [("zero", np.int64(0)), ("one", np.int64(1)), ("axes0", np.array([0], np.int64)),
             ("axes1", np.array([1], np.int64)), ("neg", np.float32(-1e4))]
    m = model(nodes, [vi("x", F32, [2, "seq", 8])], [vi("y", F32, [2, "seq", "seq"])], inits)
    g = from_onnx(m)  # nodes listed out of order: the importer schedules them
    assert g.outputs[0].shape == (2, sym("seq"), sym("seq"))
    assert all_symbols(g) == {"seq"}
    for seq in (3, 9):
        assert_matches_ort(m, g, randn(2, seq, 8))


# -- constants -------------------------------------------------------------------------------------


def test_initializers_become_constants_and_unused_ones_are_dropped():
    w = randn(16, 8)
    m = model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1),
               helper.make_node("Constant", [], ["c"], value_float=2.0),
               helper.make_node("Mul", ["y", "c"], ["z"])],
              [vi("x", F32, ["n", 8])], [vi("z", F32, ["n", 16])],
              [("w", w), ("b", randn(16)), ("unused", randn(1000))])
    g = from_onnx(m)
    names = {c.name for c in g.constants}
    assert "unused" not in names and {"w", "b"} <= names
    np.testing.assert_array_equal(g.value("w").data, w)
    assert [n.op.name for n in g.nodes] == ["linear", "mul"]  # Gemm(transB=1) is a linear layer
    assert_matches_ort(m, g, randn(5, 8))


@pytest.mark.parametrize("opset", [11, 13, 18, 21])
def test_axes_as_attributes_or_inputs_across_opsets(opset):
    """Squeeze/Unsqueeze/ReduceSum/Split take axes as attributes, later as inputs."""
    as_input = {"Squeeze": 13, "Unsqueeze": 13, "ReduceSum": 13, "Split": 13, "ReduceMax": 18}
    nodes, inits = [], []

    def axes_node(op, ins, outs, axes, **kw):
        if opset >= as_input[op]:
            inits.append((f"{outs[0]}_axes", np.array(axes, np.int64)))
            nodes.append(helper.make_node(op, ins + [f"{outs[0]}_axes"], outs, **kw))
        else:
            key = "split" if op == "Split" else "axes"
            nodes.append(helper.make_node(op, ins, outs, **{key: axes}, **kw))
    axes_node("Unsqueeze", ["x"], ["u"], [0, 3])
    axes_node("Squeeze", ["u"], ["s"], [0])
    axes_node("ReduceSum", ["s"], ["r"], [1], keepdims=1)
    axes_node("ReduceMax", ["s"], ["mx"], [0], keepdims=0)
    axes_node("Split", ["s"], ["p0", "p1"], [2, 3], axis=1)
    shapes = {"r": [4, 1, 1], "mx": [5, 1], "p0": [4, 2, 1], "p1": [4, 3, 1]}
    m = model(nodes, [vi("x", F32, [4, 5])], [vi(n, F32, s) for n, s in shapes.items()], inits, opset=opset)
    g = from_onnx(m)
    x = randn(4, 5)
    assert_matches_ort(m, g, x)


def test_onnx_shape_inference_supplies_targets_that_do_not_fold():
    """A shape computed through an op chunkc does not fold (Relu) but typed by the model."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Relu", ["s"], ["s2"]),
             helper.make_node("Slice", ["s2", "zero", "one"], ["n"]),
             helper.make_node("Concat", ["n", "tail"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="split_heads")]
    inits = [("zero", np.array([0], np.int64)), ("one", np.array([1], np.int64)),
             ("tail", np.array([2, 3], np.int64))]
    m = model(nodes, [vi("x", F32, ["n", 6])], [vi("y", F32, ["n", 2, 3])], inits)
    g = from_onnx(m)
    assert g.outputs[0].shape == (sym("n"), 2, 3)
    assert_matches_ort(m, g, randn(5, 6))
    untyped = model(nodes, [vi("x", F32, ["n", 6])], [vi("y", F32, None)], inits)
    untyped.graph.output[0].type.tensor_type.ClearField("shape")
    with pytest.raises(DynamicValueError, match=r"ONNX node 'split_heads' \(Reshape\): shape"):
        from_onnx(untyped, check=False)


def test_static_inputs_given_as_graph_inputs_must_be_bound():
    m = model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
              [vi("x", F32, [2, 6]), vi("shape", I64, [2])], [vi("y", F32, [3, 4])])
    with pytest.raises(DynamicValueError) as err:
        from_onnx(m)
    assert "ONNX node 'y' (Reshape)" in str(err.value) and "'shape'" in str(err.value)
    assert err.value.graph_inputs == ("shape",)
    g = from_onnx(m, constant_inputs={"shape": np.array([3, 4])})
    assert [v.name for v in g.inputs] == ["x"]
    x = randn(2, 6)
    np.testing.assert_array_equal(chunkc.interpret(g, x)[0], x.reshape(3, 4))


def test_accepts_a_model_its_bytes_or_a_path(tmp_path):
    m = _heads_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    x = randn(2, 3, 64)
    outs = [chunkc.interpret(from_onnx(src), x)[0] for src in (m, m.SerializeToString(), path, str(path))]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    assert chunkc.from_onnx(m).outputs[0].shape == (sym("batch") * sym("seq"), 64)


# -- Resize ----------------------------------------------------------------------------------------


def _resize(mode: str, sizes=None, scales=None, **attrs):
    ins = ["x", "", "scales" if scales is not None else "", "sizes" if sizes is not None else ""]
    while ins[-1] == "":
        ins.pop()
    inits = [("scales", np.array(scales, np.float32))] if scales is not None else []
    inits += [("sizes", np.array(sizes, np.int64))] if sizes is not None else []
    return model([helper.make_node("Resize", ins, ["y"], mode=mode, **attrs)],
                 [vi("x", F32, [1, 2, 6, 8])], [vi("y", F32, [None] * 4)], inits, opset=19)


@pytest.mark.parametrize("attrs, ir_mode", [
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), "nearest"),
    (dict(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil"),
     "nearest_exact"),
    (dict(mode="linear"), "linear"),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), "linear"),
])
def test_resize_that_pytorch_can_do_becomes_interpolate(attrs, ir_mode):
    m = _resize(sizes=[1, 2, 9, 20], **attrs)
    g = from_onnx(m)
    assert [n.op.name for n in g.nodes] == ["interpolate"]
    assert g.nodes[0].attrs["mode"] == ir_mode
    assert_matches_ort(m, g, randn(1, 2, 6, 8))


@pytest.mark.parametrize("attrs", [
    dict(mode="cubic"),
    dict(mode="nearest"),  # half_pixel + round_prefer_floor: no PyTorch equivalent
    dict(mode="linear", coordinate_transformation_mode="asymmetric"),
    dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1),
])
def test_other_resize_modes_resample_exactly(attrs):
    m = _resize(scales=[1, 1, 1.5, 0.75], **attrs)
    g = from_onnx(m)
    assert "interpolate" not in [n.op.name for n in g.nodes]
    assert_matches_ort(m, g, randn(1, 2, 6, 8))


def test_resize_refuses_an_unknown_mode_naming_the_node():
    m = _resize(scales=[1, 1, 2, 2], mode="lanczos")
    with pytest.raises(UnsupportedOpError, match=r"ONNX node 'y' \(Resize\): mode='lanczos'"):
        from_onnx(m)


# -- opaque and function-defined ops -------------------------------------------------------------------


def test_opaque_unknown_keeps_unknown_ops_as_typed_barriers():
    m = model([helper.make_node("Relu", ["x"], ["r"]),
               helper.make_node("FancyOp", ["r"], ["f"], domain="com.example"),
               helper.make_node("Neg", ["f"], ["y"])],
              [vi("x", F32, ["n", 4])], [vi("y", F32, ["n", 4])],
              value_info=[vi("f", F32, ["n", 4])], extra_opsets=[("com.example", 1)])
    with pytest.raises(UnsupportedOpError, match=r"'com.example::FancyOp' x1 \(first: node 'f'\)"):
        from_onnx(m, opaque_unknown=False)
    g = from_onnx(m)
    node = next(n for n in g.nodes if n.op.name == "opaque")
    assert node.attrs["target"] == "onnx_com_example::FancyOp"
    assert node.outputs[0].shape == (sym("n"), 4)
    assert all(f.kind == "new" for flows in node.dims() for f in flows)  # a barrier
    with pytest.raises(chunkc.ChunkcError, match=r"opaque ONNX op com.example::FancyOp: onnxruntime cannot run it"):
        chunkc.interpret(g, randn(3, 4))


def test_ops_defined_by_an_onnx_function_are_expanded():
    """SwiGLU (opset 28) has no converter: its ONNX function body is imported instead."""
    from onnx.reference import ReferenceEvaluator

    m = model([helper.make_node("SwiGLU", ["a", "b"], ["y"], alpha=1.5)],
              [vi("a", F32, ["n", 8]), vi("b", F32, ["n", 8])], [vi("y", F32, ["n", 8])], opset=28)
    g = from_onnx(m)
    assert "opaque" not in [n.op.name for n in g.nodes]
    a, b = randn(3, 8), randn(3, 8)
    want = ReferenceEvaluator(m).run(None, {"a": a, "b": b})[0]
    np.testing.assert_allclose(chunkc.interpret(g, a, b)[0], want, rtol=1e-5, atol=1e-6)


def test_if_with_a_condition_known_at_import_is_inlined():
    """Exporters emit If on shapes; the taken branch is imported, reading outer values."""
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"])], "then", [], [vi("t", F32, None)])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [vi("e", F32, None)])
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ReduceProd", ["s"], ["numel"], keepdims=0),
             helper.make_node("Greater", ["numel", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)]
    m = model(nodes, [vi("x", F32, ["n", 3])], [vi("y", F32, ["n", 3])],
              [("two", np.float32(2.0)), ("zero", np.int64(0))])
    g = from_onnx(m)
    assert [n.op.name for n in g.nodes] == ["mul"]
    assert_matches_ort(m, g, randn(4, 3))
    runtime = model([helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)],
                    [vi("c", onnx.TensorProto.BOOL, []), vi("x", F32, [2, 3])], [vi("y", F32, [2, 3])],
                    [("two", np.float32(2.0))])
    g = from_onnx(runtime, constant_inputs={"c": np.array(False)})
    x = randn(2, 3)
    np.testing.assert_array_equal(chunkc.interpret(g, x)[0], -x)
    g = from_onnx(runtime)  # a condition known only at run time: an opaque If that onnxruntime runs
    assert [n.op.name for n in g.nodes] == ["opaque"] and g.nodes[0].attrs["target"] == "onnx::If"
    for c in (True, False):
        assert_matches_ort(runtime, g, np.array(c), x)


# -- models exported by torch.onnx.export --------------------------------------------------------------


class AttentionBlock(torch.nn.Module):
    def __init__(self, d=32, h=4):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.fc1, self.fc2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (t.view(b, n, self.h, d // self.h).transpose(1, 2) for t in (q, k, v))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class ConvNet(torch.nn.Module):
    """UNet-style pieces: conv, group/batch norm, SiLU, pooling, upsampling, skip concat."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.gn = torch.nn.GroupNorm(2, 8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.up = torch.nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.c3 = torch.nn.Conv2d(16, 3, 1)

    def forward(self, x):
        a = torch.nn.functional.silu(self.gn(self.c1(x)))
        b = torch.relu(self.bn(self.c2(a)))
        b = torch.nn.functional.max_pool2d(b, 3, stride=1, padding=1) + torch.nn.functional.avg_pool2d(b, 3, 1, 1)
        u = self.up(b) + torch.nn.functional.interpolate(b, scale_factor=2.0, mode="nearest")
        return self.c3(torch.cat([a, u], dim=1)) * x.mean(dim=(2, 3), keepdim=True)


class ConformerConv(torch.nn.Module):
    """A conformer convolution module: pointwise conv, GLU, depthwise conv, batch norm, swish."""

    def __init__(self, d=16):
        super().__init__()
        self.ln = torch.nn.LayerNorm(d)
        self.pw1 = torch.nn.Conv1d(d, 2 * d, 1)
        self.dw = torch.nn.Conv1d(d, d, 7, padding=3, groups=d)
        self.bn = torch.nn.BatchNorm1d(d)
        self.pw2 = torch.nn.Conv1d(d, d, 1)

    def forward(self, x):  # x [B, T, d]
        y = self.ln(x).transpose(1, 2)
        y = torch.nn.functional.glu(self.pw1(y), dim=1)
        y = self.pw2(torch.nn.functional.silu(self.bn(self.dw(y))))
        return x + y.transpose(1, 2).softmax(dim=-1)


def _eval(module):
    torch.manual_seed(0)
    module = module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    for b in module.buffers():
        if b.dtype.is_floating_point:
            b.uniform_(0.5, 1.5)
    return module


SMALL = {
    "attention": (lambda: AttentionBlock(), lambda n: (torch.randn(2, n, 32),), {0: {0: "batch", 1: "seq"}}, (8, 13)),
    "convnet": (lambda: ConvNet(), lambda n: (torch.randn(1, 3, n, n),), {0: {2: "2*h", 3: "2*h"}}, (8, 12)),
    "conformer": (lambda: ConformerConv(), lambda n: (torch.randn(2, n, 16),), {0: {1: "T"}}, (9, 17)),
}


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_torch_exports_match_onnxruntime(name, dynamo):
    make, inputs, dynamic, sizes = SMALL[name]
    module = _eval(make())
    m = export_torch(module, inputs(sizes[0]), dynamo, dynamic)
    g = from_onnx(m)
    declared = {n.rpartition("*")[2] for axes in dynamic.values() for n in axes.values()}
    assert all_symbols(g) <= declared  # sizes stay symbolic: no fresh or unknown symbols appear
    for n in sizes:
        assert_matches_ort(m, g, *(t.numpy() for t in inputs(n)))


def _zoo_dynamic(case) -> dict[int, dict[int, str]]:
    name = case.dynamic_name if case.size_multiple == 1 else f"{case.size_multiple}*{case.dynamic_name}"
    return {i: {a: name for a in spec} for i, spec in enumerate(case.dynamic_shapes()) if spec}


# transformers 5's GPT-2 cannot go through the legacy exporter (aten::diff in its mask code)
ZOO = [("gpt2", True), ("vit", False), ("vit", True), ("unet", False), ("unet", True),
       ("evoformer", False), ("evoformer", True), ("transformer", False), ("transformer", True)]


@pytest.mark.slow
@pytest.mark.parametrize("factory, dynamo", ZOO, ids=[f"{f}-{'dynamo' if d else 'legacy'}" for f, d in ZOO])
def test_zoo_exports_match_onnxruntime(factory, dynamo):
    models = pytest.importorskip("chunkc.zoo")
    case = getattr(models, factory)()
    m = export_torch(case.module, case.example_inputs(), dynamo, _zoo_dynamic(case))
    g = from_onnx(m)
    assert all_symbols(g) == {case.dynamic_name}
    for size in case.test_sizes:
        args = [t.numpy() for t in case.make_inputs(size)]
        assert_matches_ort(m, g, *args)


def test_run_ort_helper_agrees_with_numpy():
    m = model([helper.make_node("Add", ["a", "b"], ["y"])], [vi("a", F32, [3]), vi("b", F32, [3])],
              [vi("y", F32, [3])])
    a, b = randn(3), randn(3)
    np.testing.assert_allclose(run_ort(m, a, b)[0], a + b)
