"""Where an FX node came from: its :class:`~chunkc.ir.source.SourceInfo`, for nodes and messages.

The frame chosen as the model's code is explained in :mod:`frontends.provenance`.
"""

from __future__ import annotations

from typing import Iterable

import torch.fx as fx

from chunkc.ir.source import SourceInfo

from ..provenance import composite_modules, module_stack, parse_stack_trace, source_info


def _class_name(cls) -> str:
    if isinstance(cls, str):
        return cls
    return f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', getattr(cls, '__name__', str(cls)))}"


def _stack(node: fx.Node) -> list[tuple[str, str]]:
    entries = (node.meta.get("nn_module_stack") or {}).values()
    return module_stack((str(path), _class_name(cls)) for path, cls in entries)


def composite_paths(nodes: Iterable[fx.Node]) -> set[str]:
    """The module paths of an exported graph that contain submodules (see frontends.provenance)."""
    return composite_modules(path for n in nodes for path, _ in _stack(n))


def node_source(node: fx.Node, composite: set[str]) -> SourceInfo:
    """The module and the model's source line behind one FX node."""
    return source_info(_stack(node), parse_stack_trace(node.meta.get("stack_trace")), composite)


def source_line(source: SourceInfo) -> str:
    """``modeling.py:123: y = torch.special.bessel_j0(x)`` (the code when the file is readable)."""
    if not source.file:
        return "<no source line recorded>"
    code = source.code()
    return f"{source.file}:{source.line}" + (f": {code}" if code else "")


def op_name(target) -> str:
    """``aten.cosh.default`` for an OpOverload; the qualified name of anything else."""
    import torch
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name.replace('::', '.')}.{target._overloadname}"
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)


def aten_target(target) -> str:
    """The ``aten::name.overload`` text the opaque op stores as its target."""
    import torch
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name}.{target._overloadname}"
    return op_name(target)
