"""Opaque ONNX nodes (run by onnxruntime), data-dependent sizes, and element types on every backend."""

from __future__ import annotations

import base64

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import chunkc
from chunkc.backends import compile as compile_graph, emit_source
from chunkc.ir.onnx_node import OnnxNode
from chunkc.errors import ChunkcError
from chunkc.passes.report import plan_report
from frontends.onnx import from_onnx
from onnx_helpers import F32, model, run_ort, vi


def _nonzero_model():
    """x [n, 4] -> the positive entries (NonZero: a count known only at run time) -> a small MLP."""
    w = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    nodes = [helper.make_node("Greater", ["x", "zero"], ["mask"]),
             helper.make_node("NonZero", ["mask"], ["idx"], name="nz"),
             helper.make_node("Transpose", ["idx"], ["pairs"], perm=[1, 0]),
             helper.make_node("GatherND", ["x", "pairs"], ["picked"]),
             helper.make_node("Unsqueeze", ["picked", "one"], ["col"]),
             helper.make_node("MatMul", ["col", "w"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    return model(nodes, [vi("x", F32, ["n", 4])], [vi("y", F32, [None, 64])],
                 [("zero", np.float32(0)), ("one", np.array([1], np.int64)), ("w", w)])


def _inputs(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def test_a_data_dependent_size_is_a_symbol_bound_when_its_node_runs():
    m = _nonzero_model()
    g = from_onnx(m)
    nz = g.node("nz")
    assert nz.op.name == "opaque" and nz.attrs["target"] == "onnx::NonZero"
    (count, (value, axis)), = g.data_dependent_sizes().items()
    assert (value, axis) == (nz.outputs[0], 1) and g.outputs[0].shape == (chunkc.ir.sizes.sym(count), 64)
    torch_fn, numpy_fn = compile_graph(g, backend="torch"), compile_graph(g, backend="numpy")
    for n in (5, 9):  # one compiled program serves every count
        x = _inputs(n)
        want = run_ort(m, x)[0]
        np.testing.assert_allclose(chunkc.interpret(g, x)[0], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(numpy_fn(x), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(torch_fn(torch.from_numpy(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    source = emit_source(g, backend="torch")
    assert f"{count} = nz.shape[1]" in source  # bound right after the node, from what it produced


def test_planning_needs_a_value_for_a_data_dependent_size():
    g = from_onnx(_nonzero_model())
    (count,) = g.data_dependent_sizes()
    with pytest.raises(ChunkcError, match=rf"symbolic sizes {count}"):
        chunkc.estimate_memory(g, sizes={"n": 64})
    plan = chunkc.autochunk(g, 0.6, sizes={"n": 64, count: 4096})
    assert plan.regions and plan.estimated_peak_bytes <= plan.budget_bytes
    assert "barriers (ops chunkc does not model): nz (onnx::NonZero)" in plan_report(plan)
    for region in plan.regions:  # regions never cross the opaque node
        assert "nz" not in region.nodes
    x = _inputs(40)
    np.testing.assert_allclose(compile_graph(g, plan, backend="numpy")(x), run_ort(_nonzero_model(), x)[0],
                               rtol=1e-5, atol=1e-6)


def test_the_definition_round_trips_through_the_text_format(tmp_path):
    g = from_onnx(_nonzero_model())
    text = chunkc.print_graph(g)
    assert chunkc.print_graph(chunkc.parse_graph(text)) == text
    chunkc.save(g, tmp_path / "g.cir")
    back = chunkc.load(tmp_path / "g.cir")
    x = _inputs(7)
    np.testing.assert_allclose(chunkc.interpret(back, x)[0], chunkc.interpret(g, x)[0])


def _definition(nodes, inputs, outputs, functions=()) -> str:
    m = helper.make_model(helper.make_graph(nodes, "d", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)],
                          functions=list(functions))
    return base64.b64encode(m.SerializeToString()).decode()


def test_a_definition_runs_only_the_one_op_its_target_names():
    relu = _definition([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F32, [2])], [vi("y", F32, [2])])
    np.testing.assert_array_equal(OnnxNode(relu, "onnx::Relu")(np.array([-1.0, 2.0], np.float32))[0], [0.0, 2.0])
    with pytest.raises(ChunkcError, match=r"runs op 'Relu', not Neg"):
        OnnxNode(relu, "onnx::Neg")
    two = _definition([helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["t"], ["y"])],
                      [vi("x", F32, [2])], [vi("y", F32, [2])])
    with pytest.raises(ChunkcError, match="exactly one node, not 2"):
        OnnxNode(two, "onnx::Relu")
    with pytest.raises(ChunkcError, match="base64 text"):
        OnnxNode("print('hello'); import os", "onnx::Relu")
    with pytest.raises(ChunkcError, match="does not decode to an ONNX model"):
        OnnxNode(base64.b64encode(b"\xff\x00 not a model").decode(), "onnx::Relu")
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", (2,))
    with pytest.raises(chunkc.IRError, match="definition of target onnx::Relu must be base64"):
        g.op("opaque", x, target="onnx::Relu", result_types=("f32[2]",), definition="x = 1\nimport os")


def test_control_flow_runs_on_both_backends():
    """A Loop whose body reads an outer value, and an If on a run-time condition."""
    body = helper.make_graph([helper.make_node("Add", ["acc", "step"], ["acc_out"]),
                              helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("Identity", ["acc_out"], ["scan"])],
                             "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                                      vi("acc", F32, [3])],
                             [vi("cond_out", TensorProto.BOOL, []), vi("acc_out", F32, [3]), vi("scan", F32, [3])])
    then_g = helper.make_graph([helper.make_node("Mul", ["final", "two"], ["t"])], "then", [], [vi("t", F32, [3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["final"], ["e"])], "else", [], [vi("e", F32, [3])])
    nodes = [helper.make_node("Exp", ["x"], ["step"]),
             helper.make_node("Loop", ["trips", "", "x"], ["final", "all"], name="loop", body=body),
             helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)]
    m = model(nodes, [vi("trips", TensorProto.INT64, []), vi("c", TensorProto.BOOL, []), vi("x", F32, [3])],
              [vi("y", F32, [3]), vi("all", F32, [None, 3])], [("two", np.float32(2.0))], opset=17)
    g = from_onnx(m)
    assert sorted(n.attrs["target"] for n in g.nodes if n.op.name == "opaque") == ["onnx::If", "onnx::Loop"]
    fn = compile_graph(g, backend="torch")
    for trips, c in ((3, True), (5, False)):
        args = (np.array(trips, np.int64), np.array(c), np.array([0.5, -1.0, 2.0], np.float32))
        want = run_ort(m, *args)
        for got in (chunkc.interpret(g, *args), [t.numpy() for t in fn(*(torch.from_numpy(a) for a in args))]):
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("layout", [0, 1])
def test_lstm_runs_in_both_layouts(layout):
    rng = np.random.default_rng(0)
    h, d = 5, 3
    w, r = (rng.standard_normal((1, 4 * h, d)) * 0.3).astype(np.float32), (rng.standard_normal((1, 4 * h, h)) * 0.3).astype(np.float32)
    x_shape = ["b", "t", d] if layout else ["t", "b", d]
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y", "y_h"], hidden_size=h, layout=layout)
    y_shape, h_shape = (["b", "t", 1, h], ["b", 1, h]) if layout else (["t", 1, "b", h], [1, "b", h])
    m = model([node], [vi("x", F32, x_shape)], [vi("y", F32, y_shape), vi("y_h", F32, h_shape)], [("w", w), ("r", r)])
    g = from_onnx(m)
    x = rng.standard_normal((2, 7, d) if layout else (7, 2, d)).astype(np.float32)
    for got, want in zip(compile_graph(g, backend="numpy")(x), run_ort(m, x) if layout == 0 else _ort_batch_major(m, x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _ort_batch_major(m, x):
    """onnxruntime has no batch-major LSTM: the reference is the sequence-major one, transposed."""
    seq = onnx.ModelProto()
    seq.CopyFrom(m)
    node = seq.graph.node[0]
    node.attribute.remove(next(a for a in node.attribute if a.name == "layout"))
    y, y_h = run_ort(seq, np.ascontiguousarray(x.transpose(1, 0, 2)))
    return y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2)


def test_every_element_type_runs_on_torch_or_is_run_on_the_host():
    """bf16 runs in PyTorch; float8, int4 and uint16 values run their NumPy reference on the host and
    stay NumPy arrays; results equal the NumPy backend's and ONNX's reference evaluator's."""
    from onnx.reference import ReferenceEvaluator

    nodes = [helper.make_node("Cast", ["x"], ["f8"], to=TensorProto.FLOAT8E4M3FN),  # saturates: 1000 -> 448
             helper.make_node("Cast", ["f8"], ["back"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["x"], ["bf"], to=TensorProto.BFLOAT16),
             helper.make_node("Mul", ["bf", "bf"], ["sq"]),
             helper.make_node("Cast", ["sq"], ["sq32"], to=TensorProto.FLOAT),
             helper.make_node("DequantizeLinear", ["q4", "scale"], ["dq"]),
             helper.make_node("Add", ["u", "u"], ["u2"])]
    q4 = np.array([-8, -1, 0, 7], dtype=onnx.helper.tensor_dtype_to_np_dtype(TensorProto.INT4))
    m = model(nodes, [vi("x", F32, [4]), vi("u", TensorProto.UINT16, [4])],
              [vi("back", F32, [4]), vi("sq32", F32, [4]), vi("dq", F32, [4]), vi("u2", TensorProto.UINT16, [4])],
              [("q4", q4), ("scale", np.float32(0.5))], opset=21)
    g = from_onnx(m)
    x, u = np.array([1000.0, -0.3, 2.5, -1e6], np.float32), np.array([1, 40000, 7, 65535], np.uint16)
    want = ReferenceEvaluator(m).run(None, {"x": x, "u": u})
    module = compile_graph(g, backend="torch")
    torch_out = module(torch.from_numpy(x), u)
    assert isinstance(torch_out[3], np.ndarray) and torch_out[3].dtype == np.uint16  # PyTorch has no uint16 kernels
    for got in (chunkc.interpret(g, x, u), compile_graph(g, backend="numpy")(x, u),
                [t.numpy() if isinstance(t, torch.Tensor) else t for t in torch_out]):
        for a, b in zip(got, want):
            np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-2)
    assert want[0][0] == 448.0 and want[0][3] == -448.0


def test_an_op_onnxruntime_lacks_a_bfloat16_kernel_for_runs_widened():
    """Unique has no bf16 kernel in onnxruntime: the opaque node runs it on f32 (exact here)."""
    from onnx.reference import ReferenceEvaluator

    m = model([helper.make_node("Unique", ["x"], ["y", "idx", "inv", "counts"], sorted=1)],
              [vi("x", TensorProto.BFLOAT16, [6])],
              [vi("y", TensorProto.BFLOAT16, [None]), vi("idx", TensorProto.INT64, [None]),
               vi("inv", TensorProto.INT64, [6]), vi("counts", TensorProto.INT64, [None])])
    g = from_onnx(m)
    x = np.array([2.5, -1.0, 2.5, 0.0, -1.0, 3.0], dtype=g.inputs[0].dtype.numpy)
    for got, want in zip(chunkc.interpret(g, x), ReferenceEvaluator(m).run(None, {"x": x})):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


def test_a_result_of_another_shape_than_typed_is_an_error_naming_the_op():
    wrong = _definition([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F32, [2])], [vi("y", F32, [3])])
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", (2,))
    g.set_outputs(g.op("opaque", x, target="onnx::Relu", result_types=("f32[3]",), definition=wrong))
    with pytest.raises(ChunkcError, match=r"opaque ONNX op Relu: output 0 has shape \(2,\), but the node was typed "
                                          r"\[3\] at import"):
        chunkc.interpret(g, np.ones(2, np.float32))
