"""Helpers for the ONNX frontend tests: build small models, run them with onnxruntime."""

from __future__ import annotations

import io

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import chunkc

F32 = TensorProto.FLOAT
I64 = TensorProto.INT64


def vi(name: str, elem_type: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def model(nodes, inputs, outputs, initializers=(), opset: int = 20, value_info=(), extra_opsets=(),
          name: str = "g", ir_version: int | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs),
                              initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in initializers],
                              value_info=list(value_info))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=opsets)
    m.ir_version = ir_version or min(onnx.IR_VERSION, 10)
    return m


def run_ort(m: onnx.ModelProto, *arrays) -> list[np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), arrays)})


def assert_matches_ort(m: onnx.ModelProto, graph: chunkc.Graph, *arrays, atol: float = 1e-4, rtol: float = 1e-4):
    want = run_ort(m, *arrays)
    got = chunkc.interpret(graph, *arrays)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol)


def export_torch(module, args, dynamo: bool, dynamic: dict[int, dict[int, str]], names=None) -> onnx.ModelProto:
    """torch.onnx.export with dynamic axes: {arg index: {axis: size name}} ("2*h" declares a multiple)."""
    import torch
    from torch.export import Dim

    names = names or [f"in{i}" for i in range(len(args))]
    if dynamo:
        dims: dict[str, object] = {}

        def dim(text: str):
            coeff, _, root = text.rpartition("*")
            d = dims.setdefault(root, Dim(root, min=2, max=4096))
            return int(coeff) * d if coeff else d
        spec = tuple({a: dim(n) for a, n in dynamic.get(i, {}).items()} or None for i in range(len(args)))
        program = torch.onnx.export(module, tuple(args), dynamo=True, dynamic_shapes=spec, input_names=names,
                                    verbose=False)
        return program.model_proto
    f = io.BytesIO()
    axes = {names[i]: d for i, d in dynamic.items()}
    torch.onnx.export(module, tuple(args), f, dynamo=False, input_names=names, dynamic_axes=axes)
    return onnx.load_from_string(f.getvalue())
