"""A transformers model through torch.onnx.export with default settings, both exporters (the dynamo
exporter writes its weights as external data beside the model): the import matches onnxruntime within
1e-4, interpreted and chunked, and chunks like the model's PyTorch import. The other models are checked
by ``python -m frontends.onnx.export_check`` (docs/frontend_onnx.md)."""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("transformers")

from frontends.onnx.export_check import TOLERANCE, ModelSpec, bert, check  # noqa: E402

SMALL_BERT = ModelSpec("bert", "transformers", functools.partial(bert, size=96))


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_a_default_export_imports_matches_onnxruntime_and_chunks(dynamo, tmp_path):
    result = check(SMALL_BERT, dynamo, folder=str(tmp_path))
    assert not result.error, result.error
    assert result.files == (("model.onnx", "model.onnx.data") if dynamo else ("model.onnx",))
    assert result.max_abs_error <= TOLERANCE and result.chunked_error <= TOLERANCE
    assert result.opaque == ()
    assert result.onnx_peaks[1] < result.onnx_peaks[0]  # chunking cuts the estimated peak, at the budget
    assert result.onnx_peaks[1] <= result.budget * result.onnx_peaks[0]  # that the PyTorch import reaches
