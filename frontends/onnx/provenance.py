"""Sources of ONNX nodes: the node's name and doc string, and where the exporter recorded it,
the module and the model's line.

* ``torch.onnx.export(..., dynamo=True)`` writes torch.export's records into each
  node's ``metadata_props``: ``pkg.torch.onnx.name_scopes`` (module paths,
  outermost first, then the FX node's name), ``pkg.torch.onnx.class_hierarchy``
  (their classes, then the ATen op) and ``pkg.torch.onnx.stack_trace``.  The
  frame is chosen as for the PyTorch frontend (:mod:`frontends.provenance`).
* The older TorchScript exporter names nodes by module scope (``/h.0/attn/MatMul``):
  the scopes between the slashes give the module path; it records no line.
* A node the exporter's optimizer created without metadata (a ``Split`` made by a
  rewrite rule, say) takes the module and line of the node that reads its output,
  or failing that of the node that produced its input.

The lists are Python literals; they are read with :func:`ast.literal_eval`, which
evaluates no code, and a malformed entry is ignored.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from chunkc.ir.source import SourceInfo

from ..provenance import composite_modules, module_stack, parse_stack_trace, source_info
from .node import OnnxNode

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
CLASS_HIERARCHY = "pkg.torch.onnx.class_hierarchy"
STACK_TRACE = "pkg.torch.onnx.stack_trace"
_MAX_LITERAL = 20000  # longer metadata entries are not parsed


def _metadata(node: OnnxNode) -> dict[str, str]:
    return {p.key: p.value for p in node.proto.metadata_props}


def _string_list(text: str | None) -> list[str]:
    if not text or len(text) > _MAX_LITERAL:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return []
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _stack(node: OnnxNode) -> list[tuple[str, str]]:
    """(module path, qualified class) pairs from the exporter's metadata, outermost first."""
    meta = _metadata(node)
    scopes, classes = _string_list(meta.get(NAME_SCOPES)), _string_list(meta.get(CLASS_HIERARCHY))
    if scopes and len(scopes) == len(classes):
        return module_stack(zip(scopes[:-1], classes[:-1]))  # the last entry is the FX node and its op
    name = node.proto.name
    if name.startswith("/") and NAME_SCOPES not in meta:  # the TorchScript exporter's scope names
        parts = [p for p in name.split("/")[1:-1] if p]
        return [(".".join(parts[: k + 1]), "") for k in range(len(parts))]
    return []


def assign_sources(nodes: list[OnnxNode]) -> None:
    """Set ``node.source`` for every node of one graph (``nodes`` in schedule order)."""
    stacks = [_stack(n) for n in nodes]
    composite = composite_modules(path for stack in stacks for path, _ in stack)
    for node, stack in zip(nodes, stacks):
        frames = parse_stack_trace(_metadata(node).get(STACK_TRACE))
        node.source = source_info(stack, frames, composite, onnx_node=node.name, doc=node.proto.doc_string)
    _borrow_from_neighbours(nodes)


def _borrow_from_neighbours(nodes: list[OnnxNode]) -> None:
    producer = {out: n for n in nodes for out in n.outputs if out}
    readers: dict[str, list[OnnxNode]] = {}
    for n in nodes:
        for x in n.inputs:
            readers.setdefault(x, []).append(n)

    def located(s: SourceInfo | None) -> bool:
        return s is not None and bool(s.file)

    def borrow(node: OnnxNode, other: SourceInfo) -> None:
        node.source = replace(other, onnx_node=node.name, doc=node.proto.doc_string)

    for node in reversed(nodes):  # readers first: they come later in the schedule
        if not located(node.source):
            found = [r.source for out in node.outputs for r in readers.get(out, []) if located(r.source)]
            if found:
                borrow(node, found[0])
    for node in nodes:
        if not located(node.source):
            found = [producer[x].source for x in node.inputs if x in producer and located(producer[x].source)]
            if found:
                borrow(node, found[-1])


__all__ = ["assign_sources", "NAME_SCOPES", "CLASS_HIERARCHY", "STACK_TRACE"]
