"""The ONNX backend node test cases (written by the ONNX project) through the importer and the
reference interpreter, every case of every op type; see frontends/onnx/conformance.py and
docs/onnx_conformance.md (regenerate it with
``python -m frontends.onnx.conformance --write docs/onnx_conformance.md``)."""

from __future__ import annotations

import pytest

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
