"""Real exports: transformers and diffusers models through ``torch.onnx.export`` with default settings.

For each model and each exporter (``dynamo=True``, and the legacy TorchScript one), the
model is exported to a file in a fresh folder with the exporter's default settings (the
dynamo exporter writes its weights beside the model as external data), imported with
``from_onnx(path)``, and checked:

* the imported graph, run by chunkc's interpreter and by the chunked PyTorch program,
  matches onnxruntime on the same file within 1e-4;
* it is chunkable like the model's PyTorch import (``from_torch``) at the same size: the
  smallest budget of 50%, 60%, ... 90% of the unchunked peak that ``autochunk`` reaches on the
  PyTorch import, it reaches on the ONNX import too.

    python -m frontends.onnx.export_check            # print the table
    python -m frontends.onnx.export_check gpt2 bert  # some models only

The table in docs/frontend_onnx.md comes from this command.  The suite runs one small model
(tests/test_onnx_exports.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

BUDGETS = (0.5, 0.6, 0.7, 0.8, 0.9)  # fractions of the unchunked peak tried, smallest first
TOLERANCE = 1e-4


@dataclass
class ModelSpec:
    name: str
    library: str
    make: Callable[[], tuple]  # () -> (module, example args)


def _zoo(factory: str, size: int | None = None):
    def make():
        from chunkc import zoo
        case = getattr(zoo, factory)()
        return case.module, case.make_inputs(size) if size else case.example_inputs()
    return make


def bert(size: int = 256):
    """transformers BertModel (2 layers, hidden 128), input_ids [1, size]."""
    import torch
    from transformers import BertConfig, BertModel

    from chunkc.zoo.zoo import LastHiddenState
    cfg = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=512, max_position_embeddings=512, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    module = LastHiddenState(BertModel(cfg, add_pooling_layer=False)).eval()
    return module, (torch.randint(0, 1000, (1, size), generator=torch.Generator().manual_seed(1)),)


def distilbert(size: int = 256):
    """transformers DistilBertModel (2 layers, dim 128), input_ids [1, size]."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    from chunkc.zoo.zoo import LastHiddenState
    cfg = DistilBertConfig(vocab_size=1000, dim=128, n_layers=2, n_heads=4, hidden_dim=512, max_position_embeddings=512,
                           dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    module = LastHiddenState(DistilBertModel(cfg)).eval()
    return module, (torch.randint(0, 1000, (1, size), generator=torch.Generator().manual_seed(1)),)


MODELS = {
    "gpt2": ModelSpec("gpt2", "transformers", _zoo("gpt2", 256)),
    "bert": ModelSpec("bert", "transformers", bert),
    "distilbert": ModelSpec("distilbert", "transformers", distilbert),
    "vit": ModelSpec("vit", "transformers", _zoo("vit", 256)),
    "unet": ModelSpec("unet", "diffusers", _zoo("unet", 64)),
}


@dataclass
class ExportResult:
    model: str
    exporter: str
    files: tuple[str, ...] = ()
    error: str = ""  # the export or a check failed
    max_abs_error: float = float("nan")  # interpreter vs onnxruntime
    chunked_error: float = float("nan")  # chunked PyTorch program vs onnxruntime
    opaque: tuple[str, ...] = ()
    budget: float = 0.0  # the smallest fraction the PyTorch import reaches
    onnx_peaks: tuple[int, int] = (0, 0)  # unchunked, planned (estimates, bytes)
    torch_peaks: tuple[int, int] = (0, 0)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and self.max_abs_error <= TOLERANCE and self.chunked_error <= TOLERANCE


def export(module, args, folder: str, dynamo: bool) -> str:
    """``torch.onnx.export`` with default settings to ``folder/model.onnx``."""
    import torch
    path = os.path.join(folder, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, dynamo=dynamo)
    return path


def check(spec: ModelSpec, dynamo: bool, folder: str | None = None) -> ExportResult:
    import onnxruntime as ort

    import chunkc
    from frontends.onnx import from_onnx

    result = ExportResult(spec.name, "dynamo" if dynamo else "legacy")
    start = time.perf_counter()
    module, args = spec.make()
    with tempfile.TemporaryDirectory() as tmp:
        folder = folder or tmp
        try:
            path = export(module, args, folder, dynamo)
        except Exception as exc:  # the exporter's own failure: reported, not ours to fix
            result.error = f"export failed: {' '.join(str(exc).split())[:200]}"
            return result
        result.files = tuple(sorted(os.listdir(folder)))
        try:
            g = from_onnx(path)
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            arrays = [a.numpy() for a in args]
            want = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), arrays)})
            got = chunkc.interpret(g, *arrays)
            result.max_abs_error = max(float(np.abs(np.asarray(a, np.float64) - b).max()) for a, b in zip(got, want))
            result.opaque = tuple(sorted({n.attrs["target"] for n in g.nodes if n.op.name == "opaque"}))
            result.budget, tplan = smallest_budget(chunkc.from_torch(module, args))
            result.torch_peaks = (tplan.unchunked_peak_bytes, tplan.estimated_peak_bytes)
            plan = chunkc.autochunk(g, result.budget)
            result.onnx_peaks = (plan.unchunked_peak_bytes, plan.estimated_peak_bytes)
            out = chunkc.compile(g, plan, backend="torch")(*args)
            out = out if isinstance(out, tuple) else (out,)
            result.chunked_error = max(float(np.abs(o.numpy() - b).max()) for o, b in zip(out, want))
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        finally:
            result.seconds = time.perf_counter() - start
    return result


def smallest_budget(graph):
    """(fraction, plan): the smallest of BUDGETS that autochunk reaches on ``graph``."""
    import chunkc
    for fraction in BUDGETS:
        try:
            return fraction, chunkc.autochunk(graph, fraction)
        except chunkc.InfeasibleBudgetError:
            continue
    raise chunkc.InfeasibleBudgetError(f"graph {graph.name}: no plan reaches {BUDGETS[-1]:.0%} of its peak")


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def markdown(results: list[ExportResult]) -> str:
    lines = ["| model | exporter | files written | max error vs onnxruntime (interpreter / chunked torch) | "
             "opaque ops | budget | ONNX import: estimated peak MiB unchunked -> planned | "
             "PyTorch import: same |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.exporter} | {', '.join(r.files) or '-'} | {r.error} | | | | |")
            continue
        lines.append(f"| {r.model} | {r.exporter} | {', '.join(r.files)} | {r.max_abs_error:.1e} / {r.chunked_error:.1e} "
                     f"| {', '.join(r.opaque) or 'none'} | {r.budget:.0%} | {_mib(r.onnx_peaks[0])} -> "
                     f"{_mib(r.onnx_peaks[1])} | {_mib(r.torch_peaks[0])} -> {_mib(r.torch_peaks[1])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help=f"models to check, of {', '.join(MODELS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    results = [check(MODELS[name], dynamo) for name in (args.models or MODELS) for dynamo in (True, False)]
    print(markdown(results))
    return 0 if all(r.ok or r.error.startswith("export failed") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
