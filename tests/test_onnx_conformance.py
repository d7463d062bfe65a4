"""The ONNX backend node test cases (written by the ONNX project) through the importer and the
reference interpreter; see frontends/onnx/conformance.py and docs/onnx_conformance.md."""

from __future__ import annotations

import pytest

from frontends.onnx import supported_op_types
from frontends.onnx.conformance import KNOWN_FAILURES, markdown, primary_ops, run_all

# The op types that transformer (GPT-2, BERT), ViT, UNet (diffusers) and conformer-style models
# exported to ONNX use; every one must be supported and pass its conformance cases.
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


@pytest.fixture(scope="module")
def report():
    return run_all()


def test_every_in_scope_case_passes_except_the_documented_ones(report):
    unexpected = report.unexpected_failures()
    assert not unexpected, "\n".join(f"{r.name}: {r.detail}" for r in unexpected)


def test_known_failures_still_fail(report):
    """A listed case that now passes must leave the list (it stays tiny and true)."""
    assert not report.stale_known_failures()
    names = {r.name for r in report.results}
    assert set(KNOWN_FAILURES) <= names
    assert len(KNOWN_FAILURES) <= 10


def test_coverage(report):
    in_scope = report.in_scope
    assert len(report.results) > 1800
    assert len(in_scope) > 1300
    assert len(report.by_status("pass")) >= len(in_scope) - len(KNOWN_FAILURES)
    assert len(supported_op_types()) >= 130


def test_model_op_types_are_supported_and_pass(report):
    primary = primary_ops(report.results)
    passed_ops = {op for r in report.by_status("pass") for op in primary[r.name]}
    missing = [op for op in MODEL_OP_TYPES if op not in passed_ops]
    assert len(MODEL_OP_TYPES) >= 80
    assert not missing, f"no passing conformance case for {missing}"


def test_report_renders(report):
    text = markdown(report)
    assert "## Summary" in text and "## Failing in-scope cases" in text
    for name in KNOWN_FAILURES:
        assert name in text
