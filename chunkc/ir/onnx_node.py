"""Running an opaque ONNX node through onnxruntime, on NumPy arrays.

An ONNX op that chunkc has no record for is imported as an ``opaque`` node whose
``definition`` attribute holds a one-node ONNX model (base64 text of its
serialized ``ModelProto``: the node with its attributes and subgraphs, its
inputs and outputs typed, the opsets it needs).  :class:`OnnxNode` checks that
definition (exactly one node, of the op the node's target names, no local
functions) and builds one small onnxruntime session for it, once; calling it
runs that op on NumPy arrays and nothing else: onnxruntime executes ONNX ops
only, and no custom-op library is ever registered.

Two adjustments keep models that onnxruntime would otherwise refuse running:

* **older kernels**: when onnxruntime has no kernel for the op at the model's
  opset (ONNX bumps an op's version to add element types), the session is built
  at the newest older version of the op whose inputs, outputs and attributes are
  the same (so its semantics are too);
* **widened types**: onnxruntime's Python API takes no ml_dtypes arrays, so an
  op with bf16, float8 or sub-byte values runs widened like the NumPy
  references (chunkc/ir/reference.py): on f32/i8/u8, its results rounded back.

Sessions are cached by definition (one per distinct node), so the interpreter
and every compiled program share them.
"""

from __future__ import annotations

import base64
import re
import functools
import threading
from typing import Sequence

import numpy as np

from ..errors import ChunkcError
from .dtypes import DType, dtype as to_dtype

DEFINITION = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")  # base64 text: inert in source, messages and the text IR


def encode_definition(model_bytes: bytes) -> str:
    return base64.b64encode(model_bytes).decode("ascii")


class OnnxNode:
    """One opaque node's ONNX op, ready to run on NumPy arrays (see the module docstring)."""

    def __init__(self, definition: str, target: str = ""):
        self.target = target
        self.model = _decode(definition, target)
        node = self.model.graph.node[0]
        self.op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        self.input_types = [_elem_dtype(vi, self.op) for vi in self.model.graph.input]
        self.output_types = [_elem_dtype(vi, self.op) for vi in self.model.graph.output]
        self.widen = any(dt.from_ml_dtypes for dt in self.input_types + self.output_types)
        self._session = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<OnnxNode {self.op}>"

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                self._session = _build_session(self.model, self.op, self.widen)
            return self._session

    @staticmethod
    def probe(model, arrays: Sequence) -> list:
        """Run a one-node ``model`` built by the importer (outputs possibly untyped) on ``arrays``:
        what onnxruntime returns, sequences included (the importer learns output types so)."""
        inputs = [_elem_dtype(vi, "probe") for vi in model.graph.input]
        widen = any(dt.from_ml_dtypes for dt in inputs)
        session = _build_session(model, model.graph.node[0].op_type, widen)
        feed = {vi.name: np.asarray(a).astype(dt.wide if widen else dt.numpy, copy=False)
                for vi, dt, a in zip(model.graph.input, inputs, arrays)}
        return session.run(None, feed)

    def __call__(self, *arrays) -> tuple[np.ndarray, ...]:
        """Run the op on ``arrays`` (graph-input order); returns NumPy arrays in the declared dtypes."""
        if len(arrays) != len(self.input_types):
            raise ChunkcError(f"opaque ONNX op {self.op}: takes {len(self.input_types)} inputs, got {len(arrays)}")
        feed = {}
        for vi, dt, a in zip(self.model.graph.input, self.input_types, arrays):
            a = np.asarray(a)
            feed[vi.name] = a.astype(dt.wide if self.widen else dt.numpy, copy=False)
        try:
            outs = self.session.run(None, feed)
        except Exception as exc:  # onnxruntime raises its own exception types
            shapes = ", ".join(f"{np.shape(a)}" for a in arrays)
            raise ChunkcError(f"opaque ONNX op {self.op}: onnxruntime failed on inputs of shapes {shapes}: "
                              f"{_first_line(exc)}") from None
        results = tuple(np.asarray(o).astype(dt.numpy, copy=False) for o, dt in zip(outs, self.output_types))
        for k, (vi, r) in enumerate(zip(self.model.graph.output, results)):
            _check_shape(self.op, k, vi, r.shape)
        return results


@functools.lru_cache(maxsize=512)
def onnx_node(definition: str, target: str = "") -> OnnxNode:
    """The (cached) :class:`OnnxNode` of a definition."""
    return OnnxNode(definition, target)


def run(definition: str, target: str, arrays: Sequence) -> tuple[np.ndarray, ...]:
    """Run the opaque node defined by ``definition`` on NumPy arrays."""
    return onnx_node(definition, target)(*arrays)


def _check_shape(op: str, k: int, vi, shape: tuple[int, ...]) -> None:
    """A result must have the rank and the static sizes its node was typed with at import."""
    if not vi.type.tensor_type.HasField("shape"):
        return
    dims = vi.type.tensor_type.shape.dim
    if len(dims) != len(shape) or any(d.HasField("dim_value") and d.dim_value != s for d, s in zip(dims, shape)):
        declared = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
        raise ChunkcError(f"opaque ONNX op {op}: output {k} has shape {tuple(shape)}, but the node was typed "
                          f"{declared} at import (from ONNX shape inference or a sample run); declare the "
                          "output's shape in the model's value_info")


# -- checking the definition ------------------------------------------------------------------


def _decode(definition: str, target: str):
    import onnx

    where = f"opaque node {target}" if target else "opaque node"
    if not isinstance(definition, str) or not DEFINITION.match(definition):
        raise ChunkcError(f"{where}: its ONNX definition must be base64 text of a one-node ONNX model")
    try:
        data = base64.b64decode(definition, validate=True)
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except Exception as exc:  # binascii.Error, protobuf's DecodeError
        raise ChunkcError(f"{where}: its ONNX definition does not decode to an ONNX model ({_first_line(exc)})") from None
    g = model.graph
    if len(g.node) != 1:
        raise ChunkcError(f"{where}: its ONNX definition must hold exactly one node, not {len(g.node)}")
    if model.functions:
        raise ChunkcError(f"{where}: its ONNX definition must not define functions")
    node = g.node[0]
    if target:
        name = target.split("::", 1)[-1]
        if _identifier(node.op_type) != name:
            raise ChunkcError(f"{where}: its ONNX definition runs op {node.op_type!r}, not {name}")
    return model


def _identifier(text: str) -> str:
    from ..ir.graph import sanitize_name
    return sanitize_name(text)


def _elem_dtype(vi, op: str) -> DType:
    from onnx import TensorProto, helper

    if not vi.type.HasField("tensor_type"):
        raise ChunkcError(f"opaque ONNX op {op}: value {vi.name!r} is not a tensor")
    elem = vi.type.tensor_type.elem_type
    try:
        return to_dtype(np.dtype(helper.tensor_dtype_to_np_dtype(elem)))
    except (KeyError, TypeError, ValueError):
        raise ChunkcError(f"opaque ONNX op {op}: element type {TensorProto.DataType.Name(elem)} of "
                          f"{vi.name!r} has no chunkc dtype") from None


# -- building the session -----------------------------------------------------------------------


def _build_session(model, op: str, widen: bool):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ChunkcError(f"opaque ONNX op {op} runs through onnxruntime: pip install onnxruntime") from None
    if widen:
        model = _widened(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # one small op: no thread pool to start
    options.inter_op_num_threads = 1
    first_error = None
    for candidate in _version_candidates(model):
        try:
            return ort.InferenceSession(candidate.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's exception types are not importable portably
            first_error = first_error or exc
            if "NOT_IMPLEMENTED" not in str(exc) and "not a registered function/op" not in str(exc):
                break
    raise ChunkcError(f"opaque ONNX op {op}: onnxruntime cannot run it: {_first_line(first_error)}")


def _widened(model):
    """A copy whose ml_dtypes tensors (bf16, f8, i4...) are declared in their wide type."""
    import onnx
    from onnx import helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in list(out.graph.input) + list(out.graph.output):
        dt = _elem_dtype(vi, "")
        if dt.from_ml_dtypes:
            vi.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(dt.wide)
    return out


def _version_candidates(model):
    """``model``, then copies at older versions of its op with the same signature (newest first)."""
    import onnx

    yield model
    node = model.graph.node[0]
    domain = _domain(node.domain)
    opset = {_domain(o.domain): o.version for o in model.opset_import}.get(domain)
    if opset is None:
        return
    try:
        current = onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return
    history = sorted((s for s in onnx.defs.get_all_schemas_with_history()
                      if s.name == node.op_type and s.domain == domain and s.since_version < current.since_version),
                     key=lambda s: -s.since_version)
    for older in history:
        if _signature(older) != _signature(current):
            return
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for o in copy.opset_import:
            if _domain(o.domain) == domain:
                o.version = older.since_version
        yield copy


def _domain(name: str) -> str:
    return "" if name in ("", "ai.onnx") else name


def _signature(schema) -> tuple:
    attrs = tuple(sorted((name, int(a.type), a.default_value.SerializeToString(), bool(a.required))
                         for name, a in schema.attributes.items()))
    ins = tuple((p.name, int(p.option)) for p in schema.inputs)
    outs = tuple((p.name, int(p.option)) for p in schema.outputs)
    return attrs, ins, outs, schema.min_input, schema.max_input, schema.min_output, schema.max_output


def _first_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:400]


__all__ = ["OnnxNode", "onnx_node", "run", "encode_definition", "DEFINITION"]
