"""Ops without a converter that ONNX defines by a function body are expanded into it.

Many recent ONNX ops (Attention, RotaryEmbedding, SwiGLU, the window
functions, the loss functions...) come with a *function body* in their schema:
a small graph of primitive ops that defines them.  Before conversion, each
node whose op has no converter but has such a body (for the model's opset,
context-dependent bodies included) is replaced by the body's nodes, with the
node's inputs, outputs and attributes substituted and internal names made
unique; expansion repeats for nested bodies.  The result is ONNX's own
definition of the op, so no semantics are re-implemented here.
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, FunctionProto, NodeProto

from chunkc.errors import ChunkcError

from .node import OnnxNode, label
from .converters import lookup

MAX_DEPTH = 4


def _schema(node: NodeProto, opsets: dict[str, int]):
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    version = opsets.get(domain)
    if version is None:
        return None
    try:
        return onnx.defs.get_schema(node.op_type, version, domain)
    except onnx.defs.SchemaError:
        return None


def _best_version(versions, opset: int) -> int | None:
    usable = [v for v in versions if v <= opset]
    return max(usable) if usable else None


def function_body(node: NodeProto, opsets: dict[str, int], types: dict[str, onnx.TypeProto]) -> FunctionProto | None:
    """The function body ONNX defines for this node's op at the model's opset, if any."""
    schema = _schema(node, opsets)
    if schema is None:
        return None
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    opset = opsets[domain]
    body = FunctionProto()
    v = _best_version(schema.function_opset_versions, opset)
    if v is not None:
        body.ParseFromString(schema.get_function_with_opset_version(v))
        return body
    v = _best_version(schema.context_dependent_function_opset_versions, opset)
    if v is None:
        return None
    input_types = []
    for name in node.input:
        t = types.get(name)
        if name and t is None:
            return None  # the body depends on input types that shape inference did not give
        input_types.append((t or onnx.TypeProto()).SerializeToString())
    with_defaults = NodeProto()
    with_defaults.CopyFrom(node)
    _add_default_attributes(with_defaults, schema)
    try:
        body.ParseFromString(schema.get_context_dependent_function_with_opset_version(
            v, with_defaults.SerializeToString(), input_types))
    except Exception:  # the schema's builder refuses this node's types
        return None
    return body


def _add_default_attributes(node: NodeProto, schema) -> None:
    present = {a.name for a in node.attribute}
    for name, attr in schema.attributes.items():
        if name not in present and attr.default_value and attr.default_value.type != AttributeProto.UNDEFINED:
            node.attribute.append(attr.default_value)


def inline(node: NodeProto, body: FunctionProto, prefix: str, schema) -> list[NodeProto]:
    """The body's nodes with the node's inputs, outputs and attributes substituted."""
    full = NodeProto()
    full.CopyFrom(node)
    if schema is not None:
        _add_default_attributes(full, schema)
    attrs = {a.name: a for a in full.attribute}
    names: dict[str, str] = {}
    for i, formal in enumerate(body.input):
        names[formal] = full.input[i] if i < len(full.input) else ""
    for i, formal in enumerate(body.output):
        if i < len(full.output) and full.output[i]:
            names[formal] = full.output[i]

    def rename(n: str) -> str:
        if n in names:
            return names[n]
        return "" if n == "" else prefix + n

    expanded = [_rename_node(inner, rename, attrs, prefix) for inner in body.node]
    for inner in expanded:  # the body's nodes come from where the node was written
        if not inner.metadata_props:
            inner.metadata_props.extend(node.metadata_props)
        if not inner.doc_string:
            inner.doc_string = node.doc_string
    return expanded


def _rename_node(inner: NodeProto, rename, attrs: dict[str, AttributeProto], prefix: str) -> NodeProto:
    new = NodeProto()
    new.CopyFrom(inner)
    new.ClearField("input")
    new.ClearField("output")
    new.ClearField("attribute")
    new.input.extend(rename(n) for n in inner.input)
    new.output.extend(rename(n) for n in inner.output)
    if inner.name:
        new.name = prefix + inner.name
    for a in inner.attribute:
        if a.ref_attr_name:
            if a.ref_attr_name in attrs:
                ref = AttributeProto()
                ref.CopyFrom(attrs[a.ref_attr_name])
                ref.name = a.name
                new.attribute.append(ref)
            continue
        copy = AttributeProto()
        copy.CopyFrom(a)
        if a.type == AttributeProto.GRAPH:
            _rename_graph(copy.g, rename, attrs, prefix)
        elif a.type == AttributeProto.GRAPHS:
            for g in copy.graphs:
                _rename_graph(g, rename, attrs, prefix)
        new.attribute.append(copy)
    return new


def _rename_graph(g: onnx.GraphProto, rename, attrs, prefix: str) -> None:
    """Rename a subgraph of a function body in place: its own names get the prefix too, and
    its references to the body's names follow the body's renaming."""
    for vi in list(g.input) + list(g.output):
        vi.name = rename(vi.name)
    for init in g.initializer:
        init.name = rename(init.name)
    nodes = [_rename_node(n, rename, attrs, prefix) for n in g.node]
    g.ClearField("node")
    g.node.extend(nodes)


def expand_functions(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """A copy of ``model`` whose function-defined ops without a converter are expanded."""
    opsets = {("" if o.domain in ("", "ai.onnx") else o.domain): int(o.version) for o in model.opset_import}
    counter = 0
    for _ in range(MAX_DEPTH):
        todo = [n for n in model.graph.node if lookup(n.domain, n.op_type) is None and _schema(n, opsets) is not None]
        if not todo:
            return model
        types = _known_types(model)
        new_nodes: list[NodeProto] = []
        changed = False
        for n in model.graph.node:
            body = function_body(n, opsets, types) if lookup(n.domain, n.op_type) is None else None
            if body is None:
                new_nodes.append(n)
                continue
            counter += 1
            prefix = f"{n.name or n.op_type}__f{counter}__"
            new_nodes.extend(inline(n, body, prefix, _schema(n, opsets)))
            for o in body.opset_import:
                d = "" if o.domain in ("", "ai.onnx") else o.domain
                if d not in opsets:
                    raise ChunkcError(f"{source}: {OnnxNode(n, 0).describe()}: its ONNX function body uses "
                                      f"domain {label(o.domain)}, which the model does not import")
            changed = True
        if not changed:
            return model
        model = with_nodes(model, new_nodes)
    return model


def with_nodes(model: onnx.ModelProto, nodes) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.ClearField("node")
    out.graph.node.extend(nodes)
    return out


def _known_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    g = inferred.graph
    types = {vi.name: vi.type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    for init in g.initializer:
        t = onnx.helper.make_tensor_type_proto(init.data_type, list(init.dims))
        types[init.name] = t
    return types
