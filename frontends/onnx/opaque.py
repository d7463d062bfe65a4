"""Opaque nodes: an ONNX op without a converter, kept as it is and run by onnxruntime.

The node becomes one IR ``opaque`` node (a barrier to chunking) whose
``definition`` attribute is a one-node ONNX model in base64 text: the node
itself (attributes and subgraphs included), its inputs declared with the IR
types of the values that feed it, its outputs with the types chunkc gives them,
the opsets the model imports.  Values a subgraph reads from the enclosing graph
(a Loop body's outer references) become extra inputs of that model.  The
backends run it through onnxruntime (chunkc/ir/onnx_node.py); nothing
of it is ever Python code.

Result types, in order of preference:

1. ONNX shape inference on the node alone, its inputs typed by chunkc (a
   symbolic size such as ``4*L`` is handed over as the dim_param text ``4*L``
   and read back, so sizes that pass through keep their expressions) and its
   small constant inputs given as initializers (so a target shape can be read);
2. ONNX shape inference on the whole model;
3. when neither gives a rank, a *probe*: onnxruntime runs the node twice on
   small random integers (the known constants as they are), every symbolic size
   set to 2 the first time and 3 the second; an axis of the same length both
   times is static, any other becomes a data-dependent size.

A subgraph (a Loop or Scan body) that reads known constants from the enclosing
graph gets them as its own initializers first, which lets inference see
through it (and onnxruntime wants its outputs typed).

A size none of these knows (NonZero's count, Unique's length) becomes a fresh
symbol named after the output and axis (``nz_dim1``): the IR binds it when the
node runs (``Graph.data_dependent_sizes``), and the nodes after it plan with it
like any other size.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import helper, numpy_helper

from chunkc.ir.onnx_node import encode_definition
from chunkc.errors import ChunkcError, UnsupportedOpError
from chunkc.ir.dtypes import dtype as chunkc_dtype
from chunkc.ir.graph import Value
from chunkc.ir.sizes import Size, evaluate, format_size, free_symbols, normalize, sym

from .context import FOLD_LIMIT
from .node import label
from .types import DTYPE_TO_ONNX, identifier, symbol_size, to_dtype
from .node import outer_references

_ONNX_FRESH = re.compile(r"^unk__\d+$")  # names ONNX's shape inference makes up
PROBE_SIZES = (2, 3)  # the values symbolic sizes take in the two probe runs


def opaque_node(ctx, node, proto: onnx.NodeProto | None = None) -> dict[int, Value]:
    """Build the opaque node for ONNX ``node`` (or for ``proto``, a rewritten copy of it that reads
    the same input names); return its outputs by output position (absent optional ones left out)."""
    proto = _with_outer_constants(ctx, proto or node.proto)
    names = _input_names(proto)
    values = [ctx.materialize(n) for n in names]
    inputs = [helper.make_tensor_value_info(n, DTYPE_TO_ONNX[v.dtype], [_dim_text(s) for s in v.shape])
              for n, v in zip(names, values)]
    present = [k for k, o in enumerate(proto.output) if o]
    types, proto = _result_types(ctx, node, proto, inputs, names, values, present)
    declared = [helper.make_tensor_value_info(proto.output[k], DTYPE_TO_ONNX[dt], [_dim_text(s) for s in shape])
                for k, (dt, shape) in zip(present, types)]
    model = _model(ctx, proto, inputs, declared)
    namespace = identifier(f"onnx_{node.domain}") if node.domain else "onnx"
    target = f"{namespace}::{identifier(proto.op_type)}"
    result_types = tuple(f"{dt.short}[{', '.join(format_size(s) for s in shape)}]" for dt, shape in types)
    outs = ctx.op("opaque", *values, target=target, result_types=result_types,
                  definition=encode_definition(model.SerializeToString()))
    return dict(zip(present, outs if isinstance(outs, tuple) else (outs,)))


def _model(ctx, proto, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph([proto], "opaque", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d or "", v) for d, v in ctx.opsets.items()])
    model.ir_version = ctx.ir_version
    return model


def _with_outer_constants(ctx, proto: onnx.NodeProto) -> onnx.NodeProto:
    """A copy whose subgraphs hold the known constants they read from outside as initializers, so
    that shape inference (and onnxruntime, which wants typed subgraph outputs) sees them."""
    graphs = [a for a in proto.attribute if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)]
    if not graphs:
        return proto
    out = onnx.NodeProto()
    out.CopyFrom(proto)
    known = _known_arrays(ctx, sorted(outer_references(proto)))
    for a in out.attribute:
        for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []:
            reads = _subgraph_reads(g)
            g.initializer.extend(numpy_helper.from_array(arr, n) for n, arr in known.items() if n in reads)
    return out


def _subgraph_reads(g: onnx.GraphProto) -> set[str]:
    reads = {o.name for o in g.output}
    for n in g.node:
        reads.update(n.input)
        for a in n.attribute:
            for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                reads |= _subgraph_reads(sub)
    return reads


def _input_names(proto: onnx.NodeProto) -> list[str]:
    """The node's inputs (each once, absent optional ones left out), then its subgraphs' outer references."""
    names: list[str] = []
    for n in list(proto.input) + sorted(outer_references(proto)):
        if n and n not in names:
            names.append(n)
    return names


def _dim_text(s: Size):
    return s if isinstance(s, int) else format_size(s)


# -- result types -----------------------------------------------------------------------------------


def _result_types(ctx, node, proto, inputs, names, values, present: list[int]) -> tuple[list[tuple], onnx.NodeProto]:
    """The present outputs' (dtype, shape), and the node as inference annotated it (typed subgraphs)."""
    one, annotated = _infer_one(ctx, proto, inputs, names)
    scope_one = f"{len(ctx.fresh_sizes)}:{proto.output[present[0]] if present else ''}"  # ONNX's made-up names restart
    out: list = []
    for k in present:
        name = proto.output[k]
        t, scope = one.get(name), scope_one
        if t is None or not _has_shape(t):
            t, scope = _whole_model_type(ctx, name), ""
        if t is None or not _has_shape(t) or not t.tensor_type.elem_type:
            out.append(None)
            continue
        dt = to_dtype(t.tensor_type.elem_type, f"{node.describe()}: output {label(name)}")
        out.append((dt, tuple(_size(ctx, d, name, axis, scope) for axis, d in enumerate(t.tensor_type.shape.dim))))
    if any(t is None for t in out):
        probed = _probe(ctx, node, annotated, inputs, names, values, present)
        out = [t if t is not None else p for t, p in zip(out, probed)]
    return out, annotated


def _whole_model_type(ctx, name: str) -> onnx.TypeProto | None:
    try:
        return ctx.inferred_type(name)
    except ChunkcError:  # whole-model inference fails: the probe decides
        return None


def _has_shape(t: onnx.TypeProto) -> bool:
    return t.HasField("tensor_type") and t.tensor_type.HasField("shape")


def _size(ctx, d, output: str, axis: int, scope: str) -> Size:
    which = d.WhichOneof("value")
    if which == "dim_value" and d.dim_value >= 0:
        return int(d.dim_value)
    if which == "dim_param" and d.dim_param and not _ONNX_FRESH.match(d.dim_param):
        size = symbol_size(d.dim_param)
        if free_symbols(size) <= ctx.graph.symbols() | set(ctx.fresh_sizes.values()):
            return normalize(size)
    key = f"{scope}|{d.dim_param}" if which == "dim_param" and d.dim_param else f"{output}#{axis}"
    return fresh_size(ctx, key, f"{output}_dim{axis}")


def fresh_size(ctx, key: str, hint: str) -> Size:
    """The data-dependent size ``key`` stands for (a new symbol named after ``hint`` the first time)."""
    if key not in ctx.fresh_sizes:
        base = identifier(hint)
        taken = ctx.graph.symbols() | set(ctx.fresh_sizes.values())
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        ctx.fresh_sizes[key] = name
    return sym(ctx.fresh_sizes[key])


def _known_arrays(ctx, names) -> dict[str, np.ndarray]:
    out = {}
    for n in names:
        known = ctx.slot(n).known
        if known is not None and not known.symbolic and known.data.size <= FOLD_LIMIT:
            out[n] = np.asarray(known.data)
    return out


def _infer_one(ctx, proto, inputs, names) -> tuple[dict[str, onnx.TypeProto], onnx.NodeProto]:
    """ONNX shape inference on the node alone, inputs typed by chunkc and small constants given:
    the output types, and the node with its subgraphs' values typed."""
    initializers = [numpy_helper.from_array(a, n) for n, a in _known_arrays(ctx, names).items()]
    outputs = [onnx.ValueInfoProto(name=o) for o in proto.output if o]
    try:
        inferred = onnx.shape_inference.infer_shapes(_model(ctx, proto, inputs, outputs, initializers), data_prop=True)
    except Exception:  # inference refuses the node alone: whole-model inference decides
        return {}, proto
    types = {vi.name: vi.type for vi in list(inferred.graph.output) + list(inferred.graph.value_info)}
    return types, inferred.graph.node[0]


def _probe(ctx, node, proto, inputs, names, values, present) -> list[tuple]:
    """Output types from two runs on zeros (see the module docstring)."""
    from chunkc.ir.onnx_node import OnnxNode

    outputs = [onnx.ValueInfoProto(name=proto.output[k]) for k in present]
    model = _model(ctx, proto, inputs, outputs)
    known = _known_arrays(ctx, names)
    runs = []
    for seed, size in enumerate(PROBE_SIZES):
        rng = np.random.default_rng(seed)
        bindings = {s: size for s in ctx.graph.symbols()}
        arrays = []
        for n, v in zip(names, values):
            if n in known:
                arrays.append(known[n])
            else:
                shape = tuple(evaluate(s, bindings) for s in v.shape)
                arrays.append(rng.integers(1, 4, size=shape).astype(v.dtype.numpy))
        try:
            runs.append(OnnxNode.probe(model, arrays))
        except Exception as exc:
            raise UnsupportedOpError(f"{node.describe()}: ONNX shape inference gives no type for its outputs, and "
                                     f"running it on sample data to learn them failed: {' '.join(str(exc).split())[:300]}; "
                                     "declare its outputs' shapes in the model's value_info") from None
    out = []
    for j, k in enumerate(present):
        first, second = runs[0][j], runs[1][j]
        if not isinstance(first, np.ndarray):
            raise UnsupportedOpError(f"{node.describe()}: output {k} {label(proto.output[k])} is not a tensor "
                                     "(sequences, maps and optionals are not supported)")
        dt = chunkc_dtype(first.dtype)
        shape = tuple(int(a) if a == b else fresh_size(ctx, f"{proto.output[k]}#{axis}", f"{proto.output[k]}_dim{axis}")
                      for axis, (a, b) in enumerate(zip(first.shape, second.shape)))
        out.append((dt, shape))
    return out


__all__ = ["opaque_node", "fresh_size", "PROBE_SIZES"]
