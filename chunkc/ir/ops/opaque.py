"""``opaque(*xs; target, result_types)``: an op chunkc does not model.

It is a barrier: no axis carries through it (every output axis is ``new``),
so chunk regions stop at it, but a graph holding it still builds, prints,
estimates and runs on the torch backend, which calls ``target`` (an ATen
overload name such as ``"aten::foo.default"``, checked against a strict
pattern and resolved through ``torch.ops``, never evaluated as code).
Its NumPy reference raises a clear error.

``result_types`` spells each output's type as text: ``"f32[B, L, 768]"``.
"""

from __future__ import annotations

import re

from ...errors import ChunkcError
from ..dtypes import dtype as to_dtype
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, barrier_dims, register
from ..sizes import parse_size
from ..types import TensorType
from ._common import fail

TARGET = re.compile(r"^[A-Za-z][A-Za-z0-9_]*::[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
_TYPE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*\[(.*)\]\s*$", re.S)


def parse_type(text: str) -> TensorType:
    """``"f32[B, 4*L, 768]"`` -> TensorType (sizes through the safe size parser)."""
    m = _TYPE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"bad type {text!r}: expected dtype[size, ...], e.g. 'f32[B, L, 768]'")
    dt = to_dtype(m.group(1))
    body = m.group(2).strip()
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    if body:
        parts.append(body[start:])
    if any(not p.strip() for p in parts):
        raise ValueError(f"bad type {text!r}: empty size")
    sizes = [parse_size(p) for p in parts]
    return TensorType(dt, tuple(sizes))


def _opaque_types(attrs) -> tuple[TensorType, ...]:
    target, types = attrs["target"], attrs["result_types"]
    if not isinstance(target, str) or not TARGET.match(target):
        raise fail("opaque", f"target {target!r} must be an operator name 'namespace::name' or "
                             "'namespace::name.overload' made of identifiers, e.g. 'aten::foo.default'")
    if not isinstance(types, tuple) or not types or not all(isinstance(t, str) for t in types):
        raise fail("opaque", f"result_types must be a non-empty tuple of type strings such as 'f32[B, L, 768]', "
                             f"got {types!r}")
    out = []
    for t in types:
        try:
            out.append(parse_type(t))
        except (ValueError, TypeError) as exc:
            raise fail("opaque", f"result type {t!r} of target {target}: {exc}") from None
    return tuple(out)


def _opaque_ref(xp, *arrays, target, result_types):
    raise ChunkcError(f"op opaque (target {target}) has no NumPy implementation: chunkc does not model this op; "
                      "run the graph with chunkc.compile(graph, backend='torch')")


def _opaque_torch(ctx: LoweringContext) -> str:
    """A validated lookup of the target through ``torch.ops``, bound once at module level."""
    from ...backends.torch_runtime import parse_target, torch_op  # generation time only: it imports torch

    target = ctx.attrs["target"]
    _, name, _ = parse_target(target)  # validated here, and again when the module loads
    returns = len(torch_op(target)._schema.returns)
    if returns != len(ctx.node.outputs):
        raise ctx.fail(f"target {target} returns {returns} value(s) but the node declares "
                       f"{len(ctx.node.outputs)} result type(s)")
    op = ctx.helper(f"op_{name}", f"rt.torch_op({target!r})")
    return f"{op}({', '.join(ctx.args)})"


register(OpDef(
    name="opaque", infer=lambda ins, attrs: _opaque_types(attrs), dims=barrier_dims, reference=_opaque_ref,
    torch=_opaque_torch,
    num_inputs=(0, None), num_outputs=None, attrs={"target": REQUIRED, "result_types": REQUIRED},
    flops=lambda *a: 0, recompute=False,
    doc="opaque(*xs, target='aten::foo.default', result_types=('f32[B, L, 768]',)): an op chunkc does not "
        "model; the torch backend calls target; NumPy cannot run it. Carries: nothing (a barrier)."))
