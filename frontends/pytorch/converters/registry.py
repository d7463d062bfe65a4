"""The converter table (see the package docstring); the family modules register into it."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..context import Args, Ctx

Converter = Callable[[Ctx, Args], Any]
CONVERTERS: dict[torch._ops.OpOverloadPacket, Converter] = {}


def converts(*packets: torch._ops.OpOverloadPacket) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of every packet in ``packets``."""
    def register(fn: Converter) -> Converter:
        for p in packets:
            if not isinstance(p, torch._ops.OpOverloadPacket):
                raise TypeError(f"{fn.__name__}: register an overload packet (aten.add), not {p!r}")
            if p in CONVERTERS:
                raise ValueError(f"{p} has two converters: {CONVERTERS[p].__name__} and {fn.__name__}")
            CONVERTERS[p] = fn
        return fn
    return register


def lookup(target: Any) -> Converter | None:
    if isinstance(target, torch._ops.OpOverload):
        return CONVERTERS.get(target.overloadpacket)
    return None


def supported_ops() -> list[str]:
    """Every ATen op (overload packet) the importer maps, sorted: ``aten.add``, ..."""
    return sorted(f"{p._qualified_op_name.replace('::', '.')}" for p in CONVERTERS)
