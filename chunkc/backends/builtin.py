"""The built-in backends (torch, numpy, cupy), registered when ``chunkc.backends`` is
imported.  Each imports its implementation when first used, so that importing chunkc
never imports torch; they live apart from :mod:`.registry` so that the estimator, which
reads the records, does not depend on the code generators, which read the estimator."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..ir.layout import numpy_layout, tensoriterator_layout
from .registry import Backend, reference_workspace, register_backend, torch_lowering_workspace



def _trains(graph, grad_mode: str | None) -> bool:
    """Whether the torch backend compiles a training step (chunkc.backends.torch_train)."""
    from .torch_backend import TRAIN, resolve_grad_mode
    return resolve_grad_mode(graph, grad_mode) == TRAIN


def _torch_emit(graph, plan, grad_mode: str | None = None, device: Any = None) -> str:
    if _trains(graph, grad_mode):
        from .torch_train import emit_train_source
        return emit_train_source(graph, plan)
    from .torch_backend import emit_torch_source
    return emit_torch_source(graph, plan, grad_mode=grad_mode)  # the device does not change the source


def _torch_compile(graph, plan, grad_mode: str | None = None, device: Any = None):
    if _trains(graph, grad_mode):
        from .torch_train import compile_train
        return compile_train(graph, plan, device=device)
    from .torch_backend import compile_torch
    return compile_torch(graph, plan, grad_mode=grad_mode, device=device)


def _torch_memory_device(options: Mapping[str, Any]) -> str:
    """A torch program's memory is the ``device`` option's kind (a string or a torch.device)."""
    device = options.get("device")
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    return "cuda" if kind == "cuda" else "cpu"


def _torch_write(graph, plan, path, **options) -> list[str]:
    from .torch_backend import save_module
    return save_module(_torch_compile(graph, plan, **options), path)


def _array_emit(graph, plan) -> str:
    from .array_backend import emit_array_source
    return emit_array_source(graph, plan)


def _array_compile(xp_name: str) -> Callable[..., Any]:
    def compile_on(graph, plan):
        from .array_backend import compile_array
        return compile_array(graph, plan, xp_name)
    return compile_on


def _array_write(graph, plan, path) -> list[str]:
    from .array_backend import write_array_program
    return write_array_program(graph, plan, path)


register_backend(Backend(
    "torch", _torch_emit, _torch_compile, torch_lowering_workspace, options=("grad_mode", "device"), write_program=_torch_write,
    layout=tensoriterator_layout, memory_device=_torch_memory_device,
    description="an nn.Module holding the weights as buffers; runs on any torch device; "
    "grad_mode='train' (a graph with parameters): one whose parameters train"))
register_backend(Backend(
    "numpy", _array_emit, _array_compile("numpy"), reference_workspace, write_program=_array_write, layout=numpy_layout,
    description="a program class over NumPy that calls each op's reference"))
register_backend(Backend(
    "cupy", _array_emit, _array_compile("cupy"), reference_workspace, write_program=_array_write, layout=numpy_layout,
    memory_device=lambda options: "cuda", description="the NumPy program run with xp = cupy on an NVIDIA GPU"))
