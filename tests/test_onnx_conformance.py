"""The ONNX backend node test cases (written by the ONNX project) through the importer and the
reference interpreter, every case of every op type; see frontends/onnx/conformance.py and
docs/onnx_conformance.md (regenerate it with
``python -m frontends.onnx.conformance_report --write docs/onnx_conformance.md``)."""

from __future__ import annotations

import numpy as np
import pytest

import chunkc
from frontends.onnx import supported_op_types
from frontends.onnx.conformance import KNOWN_FAILURES, run_all
from frontends.onnx.conformance_report import NATIVE, OPAQUE, markdown, op_rows, primary_ops

# The op types that transformer (GPT-2, BERT), ViT, UNet (diffusers) and conformer-style models
# exported to ONNX use; every one must import natively (or through its function body) and pass.
MODEL_OP_TYPES = """
Add Sub Mul Div Pow Sqrt Reciprocal Neg Abs Exp Log Erf Tanh Sigmoid Relu Gelu LeakyRelu Elu Softplus
HardSigmoid HardSwish Mish Sin Cos Floor Ceil Round Sign Clip Min Max Sum Mean Where Equal Less Greater
LessOrEqual GreaterOrEqual Not And Or Xor IsNaN IsInf Mod Cast CastLike Constant ConstantOfShape Identity
Dropout Shape Size Reshape Flatten Transpose Squeeze Unsqueeze Expand Concat Split Slice Gather
GatherElements GatherND ScatterND ScatterElements Tile Pad Range Trilu CumSum Einsum MatMul Gemm
Softmax LogSoftmax ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL2 ArgMax ArgMin TopK
LayerNormalization GroupNormalization InstanceNormalization BatchNormalization RMSNormalization
Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool Resize Upsample
DepthToSpace SpaceToDepth OneHot Attention RotaryEmbedding
""".split()

# Ops that must run (opaque is fine): control flow, recurrences, data-dependent sizes, quantized ops.
MUST_RUN = "If Loop Scan RNN GRU LSTM NonZero Unique Compress NonMaxSuppression QLinearMatMul DFT STFT".split()


@pytest.fixture(scope="module")
def report():
    return run_all()


def test_every_case_passes_or_is_refused_as_permitted(report):
    unexpected = report.unexpected_failures()
    assert not unexpected, "\n".join(f"{r.name} ({r.status}): {r.detail}" for r in unexpected)


def test_known_failures_still_fail(report):
    """A listed case that now passes must leave the list (it stays tiny and true)."""
    assert not report.stale_known_failures()
    assert set(KNOWN_FAILURES) <= {r.name for r in report.results}
    assert len(KNOWN_FAILURES) <= 10


def test_the_issue_targets(report):
    """>= 185 of the op types import and pass; >= 99% of the cases of natively imported op types pass
    (counting their permitted refusals as failures)."""
    rows = op_rows(report)
    assert len(rows) >= 197 and len(report.results) > 1800
    assert sum(r.passes for r in rows) >= 185
    native = [c for r in rows if r.how == NATIVE for c in r.cases]
    assert sum(c.status == "pass" for c in native) >= 0.99 * len(native)
    assert len(supported_op_types(native=True)) >= 140


def test_refusals_are_permitted_and_say_why(report):
    """Only string tensors, non-tensor values and training-only behaviour are refused, each with a
    message naming the model and the value or node at fault."""
    refused = report.by_status("refused")
    assert refused and all(r.permitted in ("string", "non-tensor", "training") for r in refused)
    for r in refused:
        assert r.detail.startswith(f"<ModelProto '{r.name}'>: ") and ("ONNX node" in r.detail or "graph " in r.detail), r


def test_model_op_types_import_without_opaque_nodes_and_pass(report):
    rows = {r.op: r for r in op_rows(report)}
    bad = [op for op in MODEL_OP_TYPES if op not in rows or rows[op].how == OPAQUE or not rows[op].passes]
    assert len(MODEL_OP_TYPES) >= 80
    assert not bad, f"not native or not passing: {bad}"


def test_control_flow_recurrences_and_data_dependent_ops_run(report):
    rows = {r.op: r for r in op_rows(report)}
    assert not [op for op in MUST_RUN if not rows[op].passes]
    assert rows["NonZero"].how == OPAQUE and rows["Loop"].how == OPAQUE


def test_report_renders(report):
    text = markdown(report)
    primary = primary_ops(report.results)
    assert "## Summary" in text and "## Op types" in text and "## Permitted refusals" in text
    assert all(op in text for ops in primary.values() for op in ops)


def _backend_args(graph, arrays, backend):
    """The case's inputs as the backend takes them (PyTorch: tensors where PyTorch has the dtype)."""
    import torch  # noqa: F401

    from chunkc.backends.host_call import TORCH_NATIVE, weight_tensor
    if backend != "torch":
        return arrays
    return [weight_tensor(a, v.dtype) if v.dtype in TORCH_NATIVE else a for a, v in zip(arrays, graph.inputs)]


def _as_numpy(value, dtype):
    import torch
    if isinstance(value, torch.Tensor):
        return value.view(torch.int16).numpy().view(dtype.numpy) if value.dtype == torch.bfloat16 else value.numpy()
    return np.asarray(value)


def test_new_paths_run_on_both_backends_as_in_the_interpreter(report):
    """Every passing case whose graph holds an opaque node or a value of a dtype NumPy holds through
    ml_dtypes or PyTorch cannot compute in (the host paths), compiled for numpy and torch."""
    from chunkc.backends import compile as compile_graph
    from chunkc.backends.host_call import TORCH_NATIVE
    from frontends.onnx.conformance import DynamicValueError, _array, collect_cases
    from frontends.onnx import from_onnx

    passed = {r.name for r in report.by_status("pass")}
    checked = 0
    for case in collect_cases():
        if case.name not in passed or case.name.startswith("test_bernoulli"):
            continue
        inputs = [_array(a) for a in case.data_sets[0][0]]
        names = [i.name for i in case.model.graph.input]
        frozen = {}
        while True:
            try:
                graph = from_onnx(case.model, constant_inputs=frozen)
                break
            except DynamicValueError as exc:
                frozen.update({n: inputs[names.index(n)] for n in exc.graph_inputs if n in names})
        values = graph.values()
        if not any(n.op.name == "opaque" for n in graph.nodes) and all(v.dtype in TORCH_NATIVE for v in values):
            continue
        args = [np.asarray(a) for n, a in zip(names, inputs) if n not in frozen]
        want = chunkc.interpret(graph, *args)
        for backend in ("numpy", "torch"):
            got = compile_graph(graph, backend=backend)(*_backend_args(graph, args, backend))
            got = got if isinstance(got, tuple) else (got,)
            for g, w, v in zip(got, want, graph.outputs):
                g = _as_numpy(g, v.dtype)
                assert g.dtype == w.dtype and g.shape == w.shape, (case.name, backend, g.dtype, g.shape, w.shape)
                tol = 2e-2 if v.dtype.itemsize <= 2 else 1e-4
                np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol,
                                           equal_nan=True, err_msg=f"{case.name} on {backend}")
        checked += 1
    assert checked >= 300
