"""Where an FX node came from, for error messages: the user's source line and module."""

from __future__ import annotations

import os
import re

import torch.fx as fx

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n(?:\s+(.*))?')
_TORCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__import__("torch").__file__)))


def source_line(node: fx.Node) -> str:
    """``file.py:123 in forward: y = torch.special.bessel_j0(x)`` for the innermost frame of the
    user's code (frames inside torch itself are skipped when another frame exists)."""
    trace = node.meta.get("stack_trace") or ""
    frames = _FRAME.findall(trace)
    if not frames:
        return "<no source line recorded>"
    user = [f for f in frames if not os.path.abspath(f[0]).startswith(os.path.join(_TORCH_DIR, "torch") + os.sep)]
    path, line, fn, code = (user or frames)[-1]
    text = f"{path}:{line} in {fn}"
    return f"{text}: {code.strip()}" if code else text


def module_path(node: fx.Node) -> str:
    """The submodule that called the op (``h.0.attn (GPT2Attention)``), or ''."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, cls = list(stack.values())[-1]
    if not path:
        return ""  # the root module: the source line says enough
    if not isinstance(cls, str):
        cls = getattr(cls, "__name__", str(cls))
    short = cls.rsplit(".", 1)[-1]
    return f"{path} ({short})" if path else short


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
