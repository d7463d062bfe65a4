"""Names of imported ONNX graphs are short and readable: the names exporters make up
(``node_MatMul_82``, ``val_37``, ``/model/attn/MatMul_3``) become the op and the exporter's
number (``matmul_82``, ``const_37``); names the model's author chose stay."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from onnx import helper  # noqa: E402

from chunkc.backends import emit_source  # noqa: E402
from frontends.onnx import from_onnx  # noqa: E402
from frontends.onnx.node import machine_made, numbered, snake_case  # noqa: E402
from onnx_helpers import F32, model, vi  # noqa: E402


def _graph(node_names, weight_name):
    w = np.ones((4, 4), np.float32)
    nodes = [helper.make_node("MatMul", ["x", weight_name], ["h"], name=node_names[0]),
             helper.make_node("Relu", ["h"], ["r"], name=node_names[1]),
             helper.make_node("Softmax", ["r"], ["y"], name=node_names[2], axis=-1)]
    return from_onnx(model(nodes, [vi("x", F32, ["n", 4])], [vi("y", F32, ["n", 4])], [(weight_name, w)]))


@pytest.mark.parametrize("names, weight, expected, constant", [
    (("node_MatMul_82", "node_Relu_83", "node_softmax"), "val_37", ["matmul_82", "relu_83", "softmax"], "const_37"),
    (("/model/attn/MatMul_3", "/model/attn/Relu", "/Softmax_1"), "onnx::MatMul_17", ["matmul_3", "relu", "softmax_1"],
     "const_17"),
    (("project", "activate", "normalize"), "proj_weight", ["project", "activate", "normalize"], "proj_weight"),
], ids=["dynamo", "legacy", "chosen"])
def test_imported_names_are_short(names, weight, expected, constant):
    g = _graph(names, weight)
    assert [n.name for n in g.nodes] == expected
    assert [c.name for c in g.constants] == [constant]
    src = emit_source(g, None, "torch")
    assert "node_MatMul" not in src and "val_37" not in src and "_model_attn" not in src


def test_the_rules():
    assert machine_made("node_MatMul_82") and machine_made("val_37") and machine_made("/h.0/attn/MatMul")
    assert machine_made("onnx::MatMul_17") and machine_made("/Constant_1_output_0")
    assert not machine_made("attention_scores") and not machine_made("w")
    assert numbered("matmul", "node_MatMul_82") == "matmul_82" and numbered("const", "/Constant_1_output_0") == "const_1"
    assert numbered("relu", "/model/Relu") == "relu"
    assert snake_case("LayerNormalization") == "layer_normalization" and snake_case("MatMul") == "matmul"
