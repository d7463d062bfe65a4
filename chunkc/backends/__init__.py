"""Code generation: readable Python source from the IR and a plan, and a callable.

    fn = chunkc.compile(graph, plan, backend="torch")   # an nn.Module
    fn = chunkc.compile(graph, plan, backend="numpy")   # NumPy (CuPy with backend="cupy")
    src = emit_source(graph, plan, backend="torch")      # the source alone

Every backend shares one generator (:mod:`.codegen`) and has its own lowering
table keyed by op name (:mod:`.torch_lowering`, :mod:`.array_lowering`).
"""

from __future__ import annotations

from typing import Any

from ..errors import ChunkcError
from ..ir.graph import Graph
from ..passes.plan import Plan

BACKENDS = ("torch", "numpy", "cupy")


def compile(graph: Graph, plan: Plan | None = None, backend: str = "torch", **options: Any):
    """A callable that runs ``graph`` (chunked by ``plan``) on the graph inputs, in order.

    ``torch``: an ``nn.Module`` holding the weights (``.chunkc_source`` is its source);
    options ``grad_mode`` ("inference" or "no_grad") and ``device``.
    ``numpy`` / ``cupy``: a program object over that array module.
    One output is returned as is, several as a tuple.
    """
    _check_options(backend, options)
    if backend == "torch":
        from .torch_backend import compile_torch
        return compile_torch(graph, plan, **options)
    from .array_backend import compile_array
    return compile_array(graph, plan, backend, **options)


OPTIONS = {"torch": ("grad_mode", "device"), "numpy": (), "cupy": ()}


def _check_options(backend: str, options: dict) -> None:
    if backend not in OPTIONS:
        raise ChunkcError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    unknown = sorted(set(options) - set(OPTIONS[backend]))
    if unknown:
        known = ", ".join(OPTIONS[backend]) or "none"
        raise ChunkcError(f"backend {backend!r}: unknown option(s) {', '.join(unknown)} (its options: {known})")


def emit_source(graph: Graph, plan: Plan | None = None, backend: str = "torch", **options: Any) -> str:
    """The generated Python source, without running it (torch option: ``grad_mode``)."""
    _check_options(backend, {k: v for k, v in options.items() if k != "device"})
    if backend == "torch":
        from .torch_backend import emit_torch_source
        return emit_torch_source(graph, plan, **{k: v for k, v in options.items() if k == "grad_mode"})
    from .array_backend import emit_array_source
    return emit_array_source(graph, plan)


def save_module(module, path) -> None:
    """Write a compiled torch module as ``path`` (its source) and ``path`` with ``.pt`` (its weights)."""
    from .torch_backend import save_module as _impl
    return _impl(module, path)


def load_module(path, map_location=None):
    """Load a module written by :func:`save_module` (or ``chunkc compile -o``)."""
    from .torch_backend import load_module as _impl
    return _impl(path, map_location=map_location)


def write_program(graph: Graph, plan: Plan | None, backend: str, path) -> list[str]:
    """Write a runnable program for ``backend`` to ``path`` (used by ``chunkc compile -o``).

    Returns the files written: for torch the source and its ``.pt`` weights; for
    numpy/cupy the source and its ``.npz`` weights.
    """
    if backend == "torch":
        from .torch_backend import compile_torch, save_module as _save
        module = compile_torch(graph, plan)
        return _save(module, path)
    if backend in ("numpy", "cupy"):
        from .array_backend import write_array_program
        return write_array_program(graph, plan, path)
    raise ChunkcError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "compile", "emit_source", "save_module", "load_module", "write_program"]
