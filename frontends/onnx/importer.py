"""``from_onnx``: an ONNX model to a chunkc Graph.

Steps: read the model (load.py), upgrade an opset older than 13 with ONNX's
version converter, check its structure (validate.py: duplicate names, undefined
inputs, cycles; the schedule is a topological sort) and run ``onnx.checker``;
expand ops that ONNX defines by a function body (functions.py); refuse ops
without a converter (or keep them as opaque nodes typed by ONNX shape
inference); declare graph inputs with symbolic sizes from ``dim_param``; keep
initializers and ``Constant`` nodes as known values; convert node by node
through the converter table, folding small shape computations (every IR node
made for an ONNX node gets its source: provenance.py); finally drop
the IR nodes and constants no output needs (``Graph.dce``), check the
outputs against the model's declared types, and verify.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from chunkc.errors import ChunkcError, IRError, UnsupportedOpError
from chunkc.ir.graph import Graph
from chunkc.ir.verifier import verify

from . import folding as F
from .context import FOLD_LIMIT, ImportContext, Slot, make_known
from .node import OnnxNode, label
from .converters import lookup
from .provenance import assign_sources
from .functions import expand_functions, with_nodes
from .load import load_external_data, load_model
from .types import identifier, shape_from_type, to_dtype
from .opaque import opaque_node
from .validate import check_domains, check_supported, topological_nodes

MIN_OPSET = 13
TRAINING_DOMAINS = ("ai.onnx.preview.training",)  # optimizers and gradients: refused, not run


def from_onnx(model_or_path, *, opaque_unknown: bool = True, constant_inputs: Mapping[str, np.ndarray] | None = None,
              check: bool = True, name: str | None = None) -> Graph:
    """Import an ONNX model (a ModelProto, serialized bytes or a path) as a chunkc Graph.

    ``opaque_unknown``: keep ops without a converter as ``opaque`` barrier nodes that
    onnxruntime runs (frontends/onnx/opaque.py); False refuses the model instead, listing them.
    ``constant_inputs``: graph inputs to bind to fixed arrays at import (they become constants).
    ``check``: run ``onnx.checker`` on the model first.
    """
    loaded = load_model(model_or_path)
    load_external_data(loaded)
    model, source = loaded.model, loaded.source
    model, nodes = prepare(model, source, check=check, opaque_unknown=opaque_unknown)
    graph = Graph(identifier(name or model.graph.name or "onnx"))
    ctx = ImportContext(graph=graph, opsets=_opsets(model), opaque_unknown=opaque_unknown,
                        ir_version=int(model.ir_version), all_opaque=_opsets(model).get("", MIN_OPSET) < MIN_OPSET)
    ctx.run_subgraph = lambda g: _convert_subgraph(ctx, g, source)
    constant_inputs = dict(constant_inputs or {})
    _declare_inputs(ctx, model.graph, constant_inputs, source)
    ctx.infer_types = lambda: _infer_types(model, source)
    ctx.producers = {out: n for n in nodes for out in n.outputs if out}
    for node in nodes:
        ctx.node = node
        first_new = len(graph.nodes)
        _convert(ctx, node, source)
        for made in graph.nodes[first_new:]:
            made.source = node.source
    ctx.node = None
    outputs = []
    for out in model.graph.output:
        outputs.append(ctx.materialize(out.name))
    graph.set_outputs(*outputs)
    graph.dce()  # the IR built for shape arithmetic that folding made unneeded
    _check_outputs(graph, model.graph, source)
    try:
        verify(graph)
    except IRError as exc:
        raise ChunkcError(f"{source}: the imported graph does not verify: {exc}") from None
    return graph


# -- model-level steps ---------------------------------------------------------------------


def prepare(model: onnx.ModelProto, source: str, check: bool = True,
            opaque_unknown: bool = True, census: bool = True) -> tuple[onnx.ModelProto, list]:
    """Upgrade an old opset, check the graph's structure, expand function-defined ops, refuse
    unsupported ones (``census``), run ``onnx.checker``; return the model and its nodes in
    schedule order."""
    model = _upgrade_opset(model, source)
    legacy = _opsets(model).get("", MIN_OPSET) < MIN_OPSET  # kept at its opset: every node runs opaque
    if legacy and not opaque_unknown:
        raise UnsupportedOpError(f"{source}: upgrading this opset-{_opsets(model)['']} model to opset {MIN_OPSET} "
                                 "would change its inputs or outputs; pass opaque_unknown=True to run its nodes "
                                 "as they are, through onnxruntime")
    order = topological_nodes(model.graph, source)  # structural errors name the file's own nodes
    if [n.index for n in order] != list(range(len(order))):  # listed out of order: keep a sorted copy
        model = with_nodes(model, [n.proto for n in order])
    original = model
    if not legacy:
        model = expand_functions(model, source)
    nodes = topological_nodes(model.graph, source)
    assign_sources(nodes)
    if not opaque_unknown and census:
        check_supported(nodes, source)
    if census:
        check_domains(nodes, _opsets(model), source)
    if check:
        _run_checker(original, source, custom_ok=opaque_unknown)
    return model, nodes


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {("" if o.domain in ("", "ai.onnx") else o.domain): int(o.version) for o in model.opset_import}


def _upgrade_opset(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """The model at opset 13 (ONNX's version converter), or as it is when the upgrade would change
    its inputs or outputs (Scan-8 loses its batch axis at opset 9): its nodes then run opaque."""
    version = _opsets(model).get("", MIN_OPSET)
    if version >= MIN_OPSET:
        return model
    try:
        from onnx import version_converter
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # the converter raises assorted errors
        raise UnsupportedOpError(f"{source}: opset {version} is older than {MIN_OPSET}, and ONNX's version "
                                 f"converter could not upgrade it: {str(exc).splitlines()[0][:300]}") from None
    interface = [(vi.name, vi.type.SerializeToString()) for vi in list(model.graph.input) + list(model.graph.output)]
    if [(vi.name, vi.type.SerializeToString()) for vi in list(upgraded.graph.input) + list(upgraded.graph.output)] \
            != interface:
        return model
    return upgraded


def _run_checker(model: onnx.ModelProto, source: str, custom_ok: bool) -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        text = str(exc).strip().splitlines()
        message = " ".join(t.strip() for t in text[:6])[:600]
        if custom_ok and ("No Op registered" in message or "domain" in message.lower()):
            return
        raise ChunkcError(f"{source}: the ONNX checker refuses the model: {message}") from None


def _infer_types(model: onnx.ModelProto, source: str) -> dict[str, onnx.TypeProto]:
    """ONNX's shape inference (with data propagation): the result types of opaque nodes, and the
    targets of Reshape/Expand nodes whose shapes chunkc cannot fold."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise ChunkcError(f"{source}: ONNX shape inference failed, and opaque nodes need it for their "
                          f"result types: {str(exc).splitlines()[0][:300]}") from None
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        out[vi.name] = vi.type
    return out


def _declare_inputs(ctx: ImportContext, g: onnx.GraphProto, constant_inputs: dict, source: str) -> None:
    initialized = {init.name for init in g.initializer}
    for init in g.initializer:
        dt = to_dtype(init.data_type, f"{source}: initializer {label(init.name)}")
        try:
            data = numpy_helper.to_array(init)
        except Exception as exc:
            raise ChunkcError(f"{source}: initializer {label(init.name)} cannot be read: {exc}") from None
        ctx.env[init.name] = Slot(known=make_known(np.asarray(data), dt))
    for inp in g.input:
        if inp.name in initialized:
            continue  # an input with a default value (IR version < 4): kept as the constant
        where = f"{source}: graph input {label(inp.name)}"
        if not inp.type.HasField("tensor_type"):
            raise UnsupportedOpError(f"{where} is not a tensor (sequences, maps and optionals are not supported)")
        dt = to_dtype(inp.type.tensor_type.elem_type, where)
        if inp.name in constant_inputs:
            ctx.env[inp.name] = Slot(known=make_known(np.asarray(constant_inputs.pop(inp.name)), dt))
            continue
        shape = shape_from_type(inp.type, identifier(inp.name))
        if shape is None:
            raise UnsupportedOpError(f"{where} has no shape; give it one (dims or dim_param names)")
        ctx.env[inp.name] = Slot(value=ctx.graph.add_input(identifier(inp.name), dt, shape))
        ctx.graph_inputs.add(inp.name)
    if constant_inputs:
        raise ChunkcError(f"{source}: constant_inputs names {sorted(constant_inputs)}, which are not graph inputs")


# -- one node ---------------------------------------------------------------------------------


def _convert(ctx: ImportContext, node, source: str) -> None:
    conv = None if ctx.all_opaque and node.op_type != "Constant" else lookup(node.domain, node.op_type)
    try:
        if conv is None:
            if not ctx.opaque_unknown:  # (top-level nodes were all checked; this is inside a subgraph)
                raise UnsupportedOpError(f"{node.describe()}: op type {label(node.op_type)} is not supported; "
                                         "pass opaque_unknown=True to keep it as an opaque node")
            _opaque(ctx, node)
            return
        if conv.fold is not None and _try_fold(ctx, node, conv):
            return
        conv.fn(ctx, node)
    except UnsupportedOpError as exc:
        raise exc if str(exc).startswith(source) else _with_source(exc, source) from None
    except Exception as exc:  # any other failure still names the node (a malformed file must not crash us)
        text = str(exc) if isinstance(exc, ChunkcError) else f"{type(exc).__name__}: {exc}"
        if text.startswith(source):  # raised inside a subgraph, already located
            raise ChunkcError(text) from None
        prefix = node.describe()
        message = text if text.startswith(prefix) else f"{prefix}: {text}"
        raise ChunkcError(f"{source}: {message}") from None
    for k, out in enumerate(node.outputs):
        if out and out not in ctx.env:
            raise ChunkcError(f"{source}: {node.describe()}: output {k} {label(out)} is not produced by this importer "
                              "(an optional output that is not supported)")


def _convert_subgraph(ctx: ImportContext, g: onnx.GraphProto, source: str) -> None:
    """Convert a subgraph's nodes into the current graph (its outer references are in scope)."""
    outer = ctx.node
    for init in g.initializer:
        dt = to_dtype(init.data_type, f"{source}: initializer {label(init.name)}")
        ctx.env[init.name] = Slot(known=make_known(np.asarray(numpy_helper.to_array(init)), dt))
    nodes = [OnnxNode(proto, i) for i, proto in enumerate(g.node)]
    assign_sources(nodes)
    ctx.producers.update({out: n for n in nodes for out in n.outputs if out})
    try:
        for node in nodes:
            ctx.node = node
            _convert(ctx, node, source)
    finally:
        ctx.node = outer


def _with_source(exc: UnsupportedOpError, source: str) -> UnsupportedOpError:
    new = type(exc)(f"{source}: {exc}")
    new.__dict__.update(exc.__dict__)
    return new


def _try_fold(ctx: ImportContext, node, conv) -> bool:
    arrays = []
    for i in range(len(node.inputs)):
        if not ctx.has(i) or (conv.fold_inputs is not None and i not in conv.fold_inputs):
            arrays.append(None)
            continue
        k = ctx.slot(node.inputs[i]).known
        if k is None or k.data.size > FOLD_LIMIT:
            return False
        arrays.append(k.data)
    if not any(a is not None for a in arrays):
        return False
    try:
        results = conv.fold(ctx, arrays)
    except (F.Undecided, TypeError, ArithmeticError):
        return False
    if results is None:
        return False
    for k, (data, dt) in enumerate(results):
        ctx.set_known(k, np.asarray(data), dt)
    return True


def _opaque(ctx: ImportContext, node) -> None:
    if node.domain in TRAINING_DOMAINS:
        raise UnsupportedOpError(f"{node.describe()}: a training-only op (domain {label(node.domain)}); chunkc "
                                 "imports inference graphs")
    for k, value in opaque_node(ctx, node).items():
        ctx.set(k, value)


# -- after conversion ----------------------------------------------------------------------------


def _check_outputs(graph: Graph, g: onnx.GraphProto, source: str) -> None:
    """Each output's dtype and rank (and static sizes) must match what the model declares."""
    for value, out in zip(graph.outputs, g.output):
        t = out.type.tensor_type
        if not out.type.HasField("tensor_type"):
            continue
        if t.elem_type:
            dt = to_dtype(t.elem_type, f"{source}: graph output {label(out.name)}")
            if dt != value.dtype:
                raise ChunkcError(f"{source}: graph output {label(out.name)} is declared {dt.short} but imports "
                                  f"as {value.type}")
        if t.HasField("shape"):
            dims = t.shape.dim
            if len(dims) != value.rank:
                raise ChunkcError(f"{source}: graph output {label(out.name)} is declared with rank {len(dims)} "
                                  f"but imports as {value.type}")
            for d, s in zip(dims, value.shape):
                if d.WhichOneof("value") == "dim_value" and isinstance(s, int) and d.dim_value != s:
                    raise ChunkcError(f"{source}: graph output {label(out.name)} is declared "
                                      f"{[x.dim_value or x.dim_param for x in dims]} but imports as {value.type}")


__all__ = ["from_onnx", "prepare"]
