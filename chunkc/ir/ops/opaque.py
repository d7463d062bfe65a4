"""``opaque(*xs; target, result_types, definition=None)``: an op chunkc does not model.

It is a barrier: no axis carries through it (every output axis is ``new``),
so chunk regions stop at it, but a graph holding it still builds, prints,
estimates and runs.  Two kinds:

* with a ``definition`` (what the ONNX importer makes of an op without a
  converter): base64 text of a one-node ONNX model; every backend and the
  interpreter run that ONNX op through onnxruntime, on NumPy arrays (see
  chunkc/ir/onnx_node.py; ``target`` is ``onnx::NonZero``,
  ``onnx_<domain>::Op``);
* without one: ``target`` is an ATen overload name such as
  ``"aten::foo.default"``, checked against a strict pattern and resolved through
  ``torch.ops`` by the torch backend, never evaluated as code; NumPy cannot run it.

``result_types`` spells each output's type as text: ``"f32[B, L, 768]"``.  A
size symbol there that no graph input has (NonZero's count) is bound when the
node runs (``Graph.data_dependent_sizes``).
"""

from __future__ import annotations

import re

from ...errors import ChunkcError
from ..dtypes import dtype as to_dtype
from ..lowering import LoweringContext
from ..registry import OpDef, REQUIRED, barrier_dims, register
from ..sizes import parse_size
from ..types import TensorType
from ..onnx_node import DEFINITION  # base64 text: inert in source, messages and the text IR
from ._common import fail, host_array

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
    target, types, definition = attrs["target"], attrs["result_types"], attrs["definition"]
    if definition is not None and (not isinstance(definition, str) or not definition
                                   or not DEFINITION.match(definition)):
        raise fail("opaque", f"definition of target {target} must be base64 text of a one-node ONNX model")
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


def _opaque_ref(xp, *arrays, target, result_types, definition=None):
    if definition is None:
        raise ChunkcError(f"op opaque (target {target}) has no NumPy implementation: chunkc does not model this op; "
                          "run the graph with chunkc.compile(graph, backend='torch')")
    from ..onnx_node import run  # onnxruntime is needed only by graphs that hold such nodes
    outs = run(definition, target, [host_array(a) for a in arrays])
    return tuple(xp.asarray(o) for o in outs)


def _opaque_torch(ctx: LoweringContext) -> str:
    """An ONNX op (with a definition): onnxruntime runs it on the host; an ATen target: a
    validated lookup through ``torch.ops``, bound once at module level."""
    if ctx.attrs.get("definition") is not None:
        from ...backends.host_call import onnx_rule  # generation time only
        return onnx_rule(ctx)
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
    num_inputs=(0, None), num_outputs=None, attrs={"target": REQUIRED, "result_types": REQUIRED, "definition": None},
    flops=lambda *a: 0, exact_dtypes=True, recompute=False,
    pure=False,  # the wrapped op may draw random numbers or have effects (aten::rand, ONNX RandomNormal)
    doc="opaque(*xs, target='aten::foo.default', result_types=('f32[B, L, 768]',), definition=None): an op chunkc "
        "does not model. With a definition (a one-node ONNX model, base64), every backend runs it through "
        "onnxruntime; without, the torch backend calls the ATen target and NumPy cannot run it. "
        "Carries: nothing (a barrier)."))
