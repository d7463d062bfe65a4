"""One ONNX node as the importer sees it: names, inputs, outputs, decoded attributes.

Names from the file are only ever shown through :func:`label` (a quoted, escaped,
shortened ``repr``), so quotes and newlines in a model stay inert in messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import onnx

from chunkc.errors import UnsupportedOpError
from chunkc.ir.source import SourceInfo

from .types import identifier


# Names exporters make up: torch.onnx's dynamo exporter (node_MatMul_82, val_37), its legacy
# exporter (/model/h.0/attn/MatMul_1, onnx::MatMul_17, /Constant_output_0), onnx.helper's defaults.
_MACHINE = re.compile(r"^(node_\w+|val_\d+|/.*|.*::.*|.*_output_\d+|_v_\d+)$")
_NUMBER = re.compile(r"_(\d+)$")


def machine_made(name: str) -> bool:
    """Whether ``name`` is one an exporter made up rather than one the model's author chose."""
    return bool(_MACHINE.match(name))


def numbered(stem: str, name: str) -> str:
    """``stem`` with the number that ends ``name``, if any: ``matmul_82`` from ``node_MatMul_82``."""
    m = _NUMBER.search(re.sub(r"_output_\d+$", "", name))  # /Constant_1_output_0: the node's number
    return identifier(f"{stem}_{m.group(1)}" if m else stem)


def snake_case(op_type: str) -> str:
    """``LayerNormalization`` -> ``layer_normalization``, ``MatMul`` -> ``matmul``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op_type).lower()
    return text.replace("mat_mul", "matmul")


def label(name: str, limit: int = 80) -> str:
    """A name from the model, quoted and escaped for messages (never for code)."""
    text = repr(str(name))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


@dataclass
class OnnxNode:
    proto: onnx.NodeProto
    index: int  # position in the ONNX graph
    source: SourceInfo | None = None  # where the exporter says it comes from (set by provenance.py)

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def domain(self) -> str:
        return self.proto.domain if self.proto.domain not in ("ai.onnx",) else ""

    @property
    def inputs(self) -> Sequence[str]:
        return self.proto.input

    @property
    def outputs(self) -> Sequence[str]:
        return self.proto.output

    @property
    def name(self) -> str:
        """The node's name, or its first output's name, or its position."""
        return self.proto.name or (self.proto.output[0] if self.proto.output and self.proto.output[0] else f"node{self.index}")

    @property
    def hint(self) -> str:
        """A short name for what the importer builds from this node (see :meth:`short_name`)."""
        return self.short_name(snake_case(self.op_type))

    def short_name(self, op: str) -> str:
        """The name of a chunkc node of op ``op`` built from this ONNX node: the name the model's
        author gave it, or, for the names exporters make up (``node_MatMul_82``,
        ``/model/h.0/attn/MatMul_1``, ``val_37``), the op and the exporter's number:
        ``matmul_82`` (the module path stays in the node's source)."""
        given = self.proto.name or (self.proto.output[0] if self.proto.output else "")
        if given and not machine_made(given):
            return identifier(given)
        return numbered(op, given)

    def describe(self) -> str:
        """``ONNX node 'name' (Op)``, then the module and line the exporter recorded, if any."""
        op = f"{self.domain}::{self.op_type}" if self.domain else self.op_type
        text = f"ONNX node {label(self.name)} ({label(op)[1:-1]})"
        src = self.source
        if src is not None and (src.scope or src.location):
            text += " in " + ", ".join(p for p in (src.scope, src.location) if p)
        return text

    def has_input(self, i: int) -> bool:
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def has_output(self, i: int) -> bool:
        return i < len(self.proto.output) and self.proto.output[i] != ""

    @property
    def attrs(self) -> dict[str, Any]:
        out = {}
        for a in self.proto.attribute:
            out[a.name] = _attr_value(a)
        return out

    def attr(self, key: str, default: Any = None) -> Any:
        for a in self.proto.attribute:
            if a.name == key:
                return _attr_value(a)
        return default


def _attr_value(a: onnx.AttributeProto) -> Any:
    if a.ref_attr_name:
        raise UnsupportedOpError(f"attribute {label(a.name)} refers to a function attribute; only graphs are imported")
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", errors="replace") for v in value]
    return value


def outer_references(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read from the enclosing scope (empty for ordinary nodes)."""
    out: set[str] = set()
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {i.name for i in g.initializer}
            for n in g.node:
                local.update(x for x in n.output if x)
            for n in g.node:
                out.update(x for x in list(n.input) + sorted(outer_references(n)) if x and x not in local)
            out.update(o.name for o in g.output if o.name not in local)
    return out
