"""Code generation: readable Python source from the IR and a plan, and a callable.

    fn = chunkc.compile(graph, plan, backend="torch")   # an nn.Module
    fn = chunkc.compile(graph, plan, backend="numpy")   # NumPy (CuPy with backend="cupy")
    src = emit_source(graph, plan, backend="torch")      # the source alone

Backends are records in :mod:`.registry` (``backend_names()`` lists them,
``register_backend`` adds one); every backend shares one generator
(:mod:`.codegen`), which asks each op's record for its code: its PyTorch
lowering (:mod:`chunkc.ir.lowering`) or its NumPy reference.
"""

from __future__ import annotations

from typing import Any

from ..errors import ChunkcError
from ..ir.graph import Graph
from ..passes.plan import DEFAULT_BACKEND, Plan
from .budget import install_budget_check, plan_for_backend
from . import builtin  # noqa: F401  (registers the torch, numpy and cupy backends)
from .registry import Backend, backend_names, get_backend, register_backend, unregister_backend


def compile(graph: Graph, plan: Plan | None = None, backend: str = DEFAULT_BACKEND, strict: bool = False,
            **options: Any):
    """A callable that runs ``graph`` (chunked by ``plan``) on the graph inputs, in order.

    ``torch``: an ``nn.Module`` holding the weights (``.chunkc_source`` is its source);
    options ``grad_mode`` ("inference" or "no_grad") and ``device``.
    ``numpy`` / ``cupy``: a program object over that array module.
    One output is returned as is, several as a tuple.  Every call checks its inputs
    (count, array type, dtype, device, rank, sizes: an InputError names the one at fault).

    A plan made for another backend is re-checked for this one (see
    :func:`.budget.plan_for_backend`).  At sizes where the plan's budget cannot hold, a
    call warns once (BudgetWarning), or with ``strict=True`` raises BudgetExceededError,
    before it allocates anything (:class:`.budget.BudgetCheck`).
    """
    b = get_backend(backend)
    b.check_options(options)
    plan = plan_for_backend(graph, plan, backend, b.memory_device(options))
    program = b.compile(graph, plan, **options)
    install_budget_check(program, plan, backend, strict)
    return program


def emit_source(graph: Graph, plan: Plan | None = None, backend: str = DEFAULT_BACKEND, **options: Any) -> str:
    """The generated Python source, without running it (the backend's options are accepted;
    a plan made for another backend is re-checked for this one, as by :func:`compile`)."""
    b = get_backend(backend)
    b.check_options(options)
    return b.emit_source(graph, plan_for_backend(graph, plan, backend, b.memory_device(options)), **options)


def write_program(graph: Graph, plan: Plan | None, backend: str, path, **options: Any) -> list[str]:
    """Write a runnable program for ``backend`` to ``path`` (used by ``chunkc compile -o``).

    Returns the files written: for torch the source and its ``.pt`` weights; for
    numpy/cupy the source and its ``.npz`` weights.
    """
    b = get_backend(backend)
    b.check_options(options)
    if b.write_program is None:
        raise ChunkcError(f"backend {backend!r} cannot write a program to disk; use emit_source for its source")
    return b.write_program(graph, plan_for_backend(graph, plan, backend, b.memory_device(options)), path, **options)


def save_module(module, path) -> None:
    """Write a compiled torch module as ``path`` (its source) and ``path`` with ``.pt`` (its weights)."""
    from .torch_backend import save_module as _impl
    return _impl(module, path)


def load_module(path, map_location=None):
    """Load a module written by :func:`save_module` (or ``chunkc compile -o``)."""
    from .torch_backend import load_module as _impl
    return _impl(path, map_location=map_location)


def load_program(path, xp=None):
    """Load a NumPy/CuPy program written by ``write_program`` (or ``chunkc compile --backend numpy -o``):
    its class on ``xp`` (NumPy by default) with the weights from the ``.npz`` beside it."""
    from .runtime import load_file
    return load_file(path, "chunkc_program").load(xp=xp)


__all__ = ["Backend", "backend_names", "get_backend", "register_backend", "unregister_backend", "compile",
           "emit_source", "save_module", "load_module", "load_program", "write_program"]
