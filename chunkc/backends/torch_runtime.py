"""Helpers that generated PyTorch code imports (``from chunkc.backends import torch_runtime as rt``).

Only what has no single PyTorch call lives here; each helper is small and
allocates no more than its result.
"""

from __future__ import annotations

import re

import torch

from ..errors import ChunkcError

# ``namespace::name`` or ``namespace::name.overload``; nothing else reaches torch.ops.
_TARGET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)::([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$")


def parse_target(target: str) -> tuple[str, str, str]:
    """Split ``aten::foo.default`` into (namespace, name, overload); refuse anything else."""
    m = _TARGET.match(target) if isinstance(target, str) else None
    if m is None:
        raise ChunkcError(f"opaque target {target!r} is not an operator name like 'aten::foo.default'")
    return m.group(1), m.group(2), m.group(3) or "default"


def torch_op(target: str):
    """The ``torch.ops`` overload named by ``target`` (looked up by attribute, never evaluated)."""
    ns, name, overload = parse_target(target)
    try:
        packet = getattr(getattr(torch.ops, ns), name)
        return getattr(packet, overload)
    except (AttributeError, RuntimeError) as exc:
        raise ChunkcError(f"opaque target {target!r}: torch has no such operator ({exc})") from None


def prod(x: torch.Tensor, dims: tuple[int, ...], keepdim: bool) -> torch.Tensor:
    """Product over several axes (``torch.prod`` takes one)."""
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdim)
    return x


__all__ = ["parse_target", "torch_op", "prod"]
