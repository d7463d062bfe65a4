"""The converter table: one entry per (domain, op type), looked up, never matched by name.

A converter is a small function ``fn(ctx, node)`` that reads the current
node's inputs through the :class:`~frontends.onnx.context.ImportContext` and
sets its outputs.  An optional ``fold(ctx, arrays)`` computes the outputs at
import time when every input is known and small (shape arithmetic); it returns
``None`` to decline, and the node is then converted to IR ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Fold = Callable[..., "list | None"]


@dataclass(frozen=True)
class Converter:
    domain: str
    op_type: str
    fn: Callable
    fold: Fold | None = None
    fold_inputs: tuple[int, ...] | None = None  # inputs fold reads (None: all of them)
    opaque: bool = False  # it builds an opaque node that onnxruntime runs (after adapting the node)


CONVERTERS: dict[tuple[str, str], Converter] = {}


def converter(*op_types: str, domain: str = "", fold: Fold | None = None, fold_inputs: tuple[int, ...] | None = None,
              opaque: bool = False):
    """Register ``fn`` for each op type of ``domain``."""
    def deco(fn):
        for op_type in op_types:
            key = (domain, op_type)
            if key in CONVERTERS:
                raise ValueError(f"ONNX converter for {domain or 'ai.onnx'}::{op_type} registered twice")
            CONVERTERS[key] = Converter(domain, op_type, fn, fold, fold_inputs, opaque)
        return fn
    return deco


# The table is complete once frontends.onnx.converters is imported: its __init__ imports
# every family module (the registry itself imports none of them).


def lookup(domain: str, op_type: str) -> Converter | None:
    return CONVERTERS.get(("" if domain == "ai.onnx" else domain, op_type))


def supported_op_types(domain: str = "", native: bool | None = None) -> list[str]:
    """Op types with a converter; ``native=True``: those that convert to IR ops, False: those whose
    converter adapts the node into an opaque node."""
    return sorted(op for (d, op), c in CONVERTERS.items() if d == domain and (native is None or native != c.opaque))
