"""Lowering table of the PyTorch backend: one rule per op, keyed by op name.

The rules live in one module per op family (elementwise, linalg, reduce, shape,
window, opaque), mirroring ``chunkc/ir/ops``.

A rule gets a :class:`~chunkc.backends.codegen.NodeContext` and returns the
expression that computes the node: its value when the node has one output, a
sequence of values when it has several.
Rules use the leanest PyTorch call for each op (``F.linear``, ``F.softmax``,
``F.layer_norm``, ``F.scaled_dot_product_attention``...), so that the unchunked
program allocates what eager PyTorch allocates.

Where PyTorch's type promotion or result dtype differs from chunkc's (a 0-d
tensor of a wider type, an integer sum), the rule converts so that the result
has the IR's dtype.
"""

from __future__ import annotations

from typing import Callable

from ._base import RULES, operands, rule, torch_dtype
from . import elementwise, linalg, opaque, reduce, shape, window  # noqa: F401,E402  (each registers its rules)


def torch_rules() -> dict[str, Callable]:
    """The table: op name -> rule."""
    return dict(RULES)


__all__ = ["RULES", "rule", "torch_rules", "torch_dtype", "operands"]
