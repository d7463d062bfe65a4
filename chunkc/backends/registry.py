"""The backend registry: one record per backend, looked up by name.

A :class:`Backend` says everything chunkc needs to know about a backend: the
options it accepts, how it writes a graph's source, compiles a callable and
writes a program to disk, its workspace policy (which of an op's declared
workspaces its kernels allocate) and its layout rule (how its elementwise kernels
lay out a fresh result, :mod:`chunkc.ir.layout`), both for the memory estimator.
:func:`chunkc.compile`, :func:`~chunkc.backends.emit_source`,
:func:`~chunkc.backends.write_program`, the command line and
:func:`chunkc.estimate_memory` all look backends up here; nothing else names
one.  docs/tutorial_backend.md adds a backend.

The built-in records (torch, numpy, cupy) are registered by :mod:`.builtin`, which the
package imports; they import their implementation when first used, so that importing
chunkc never imports torch.  This module imports no implementation, so that the
estimator can ask a backend's workspace policy and layout rule without importing code
generators that ask the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import ChunkcError
from ..ir.layout import LayoutRule, contiguous_layout
from ..ir.registry import OpDef


def reference_workspace(op: OpDef):
    """Workspace policy of backends whose kernels are the ops' NumPy references: the
    workspace each record declares for its reference."""
    return op.workspace


def torch_lowering_workspace(op: OpDef):
    """Workspace policy of the PyTorch backend: what the record's PyTorch code allocates
    beyond its outputs (``torch_workspace``: the lowering's and the ATen kernels'
    temporaries, the CPU's answer; see chunkc.ir.kernel_workspace)."""
    return op.torch_workspace


@dataclass(frozen=True)
class Backend:
    """One backend.  The three functions take ``(graph, plan, **options)``
    (``write_program`` takes the output path after the plan) and accept every
    name in ``options``; an option that does not change the source (torch's
    ``device``) is accepted by ``emit_source`` and ignored."""

    name: str
    emit_source: Callable[..., str]  # -> the generated source text
    compile: Callable[..., Any]  # -> a callable taking the graph inputs in order
    # the op's workspace function on this backend (elements of the output dtype), or None
    workspace: Callable[[OpDef], Callable | None]
    options: tuple[str, ...] = ()  # keyword options the functions accept
    write_program: Callable[..., list[str]] | None = None  # -> the files written (None: it cannot)
    description: str = ""
    # strides of a fresh result of an op whose record ``keeps_layout`` (elementwise kernels)
    layout: LayoutRule = contiguous_layout
    # the device whose allocator a program compiled with these options uses ("cpu" or "cuda")
    memory_device: Callable[[Mapping[str, Any]], str] = lambda options: "cpu"

    def check_options(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ChunkcError(f"backend {self.name!r}: unknown option(s) {', '.join(unknown)} (its options: {known})")


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, replace: bool = False) -> Backend:
    """Make ``backend`` available by name (``replace``: over an existing one of that name)."""
    if not isinstance(backend.name, str) or not backend.name.isidentifier():
        raise ChunkcError(f"backend name {backend.name!r} must be an identifier")
    if backend.name in _BACKENDS and not replace:
        raise ChunkcError(f"backend {backend.name!r} is registered already; pass replace=True to redefine it")
    _BACKENDS[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Forget a backend (a test's toy backend, for instance)."""
    get_backend(name)
    del _BACKENDS[name]


def get_backend(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except (KeyError, TypeError):
        raise ChunkcError(f"unknown backend {name!r}; choose one of {', '.join(_BACKENDS)}") from None


def backend_names() -> tuple[str, ...]:
    """The registered backends, in registration order."""
    return tuple(_BACKENDS)


__all__ = ["Backend", "register_backend", "unregister_backend", "get_backend", "backend_names",
           "reference_workspace", "torch_lowering_workspace"]
