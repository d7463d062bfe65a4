"""The import context: what each ONNX tensor name stands for while a graph is built.

Every ONNX name maps to a :class:`Slot` holding an IR :class:`Value`, a
:class:`Known` value (an array known at import time), or both.  Known values
come from initializers, ``Constant`` nodes and folding of the small integer
computations that exporters build on shapes (``Shape -> Gather -> Concat ->
Reshape``).  Their arrays are NumPy arrays; an array of dtype ``object``
holds symbolic sizes (ints and sympy expressions), so a ``Reshape`` target
built from ``Shape`` keeps ``seq`` as ``seq``.  A known value becomes an IR
value only when an op reads it as a tensor (weights become constants, symbolic
sizes a ``size_tensor`` node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import onnx
import sympy

from chunkc.errors import ChunkcError, UnsupportedOpError
from chunkc.ir.dtypes import DType
from chunkc.ir.graph import Graph, Value
from chunkc.ir.sizes import Size, normalize
from chunkc.ir.types import TensorType

from .node import OnnxNode, label, machine_made, numbered, outer_references
from .types import identifier

FOLD_LIMIT = 4096  # folding at import handles small (shape-sized) tensors only


class DynamicValueError(UnsupportedOpError):
    """An input that chunkc needs at import time (a shape, axes, pads) is computed at run time.

    ``graph_input`` names the ONNX graph input it is, when it is one, so that a caller
    may bind it (``from_onnx(..., constant_inputs={name: array})``).
    """

    def __init__(self, message: str, graph_inputs: tuple[str, ...] = ()):
        super().__init__(message)
        self.graph_inputs = graph_inputs  # the ONNX graph inputs the value is computed from


@dataclass
class Known:
    """A tensor known at import time; ``data`` has dtype object when it holds symbolic sizes."""

    data: np.ndarray
    dtype: DType

    @property
    def symbolic(self) -> bool:
        return self.data.dtype == object

    @property
    def type(self) -> TensorType:
        return TensorType(self.dtype, tuple(int(s) for s in self.data.shape))


@dataclass
class Slot:
    value: Value | None = None
    known: Known | None = None


@dataclass
class ImportContext:
    graph: Graph
    opsets: dict[str, int]
    infer_types: Any = None  # () -> {name: TypeProto}: ONNX shape inference, run once on demand
    graph_inputs: set[str] = field(default_factory=set)  # ONNX names of graph inputs
    producers: dict[str, OnnxNode] = field(default_factory=dict)  # ONNX name -> the node writing it
    env: dict[str, Slot] = field(default_factory=dict)
    node: OnnxNode | None = None
    opaque_unknown: bool = True
    all_opaque: bool = False  # a model kept below opset 13 (see importer._upgrade_opset): every node runs opaque
    ir_version: int = 8  # the model's, for the one-node models of opaque nodes
    fresh_sizes: dict[str, str] = field(default_factory=dict)  # data-dependent sizes of opaque outputs -> symbol
    run_subgraph: Any = None  # converts a GraphProto's nodes in place (set by the importer)
    _inferred: dict[str, onnx.TypeProto] | None = None

    # -- the current node's inputs -----------------------------------------------
    @property
    def opset(self) -> int:
        return self.opsets.get("", 0)

    def has(self, i: int) -> bool:
        return self.node.has_input(i)

    def slot(self, name: str) -> Slot:
        try:
            return self.env[name]
        except KeyError:
            raise ChunkcError(f"{self.node.describe() if self.node else 'graph'}: reads {label(name)}, "
                              "which is not defined before it") from None

    def input_name(self, i: int) -> str:
        if not self.has(i):
            raise UnsupportedOpError(f"{self.node.describe()}: input {i} is required but missing")
        return self.node.inputs[i]

    def known(self, i: int) -> np.ndarray | None:
        """Input ``i``'s value when known at import time (None when absent or computed at run time)."""
        if not self.has(i):
            return None
        k = self.slot(self.node.inputs[i]).known
        return None if k is None else k.data

    def type(self, i: int) -> TensorType:
        s = self.slot(self.input_name(i))
        return s.value.type if s.value is not None else s.known.type

    def dtype(self, i: int) -> DType:
        return self.type(i).dtype

    def rank(self, i: int) -> int:
        return self.type(i).rank

    def shape(self, i: int) -> tuple[Size, ...]:
        return self.type(i).shape

    def value(self, i: int) -> Value:
        """Input ``i`` as an IR value (a known value becomes a constant or a size tensor)."""
        name = self.input_name(i)
        return self.materialize(name)

    def optional_value(self, i: int) -> Value | None:
        return self.value(i) if self.has(i) else None

    def static(self, i: int, what: str) -> np.ndarray:
        """Input ``i``'s known value; refuse clearly when it is computed at run time."""
        data = self.known(i)
        if data is None:
            name = self.input_name(i)
            sources = self.upstream_inputs(name)
            if sources:
                listed = ", ".join(label(s) for s in sources)
                hint = (f"it is computed from graph input(s) {listed}: bind them with "
                        "from_onnx(..., constant_inputs={name: array})")
            else:
                hint = "it must be computable at import time (from constants and shapes)"
            raise DynamicValueError(f"{self.node.describe()}: {what} (input {i}, {label(name)}) must be known at "
                                    f"import time, but is computed at run time; {hint}", graph_inputs=sources)
        return data

    def upstream_inputs(self, name: str) -> tuple[str, ...]:
        """The graph inputs whose *values* ``name`` depends on (through the ONNX nodes; Shape and
        Size read only shapes, so the walk stops there)."""
        found: list[str] = []
        seen: set[str] = set()
        stack = [name]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in self.graph_inputs:
                found.append(n)
            elif n in self.producers:
                node = self.producers[n]
                if node.op_type in ("Shape", "Size") and not node.domain:
                    continue
                stack.extend(x for x in list(node.inputs) + sorted(outer_references(node.proto)) if x)
        return tuple(sorted(found))

    def static_sizes(self, i: int, what: str) -> tuple[Size, ...]:
        """A known integer vector (or scalar) as a tuple of sizes (ints or symbolic)."""
        data = self.static(i, what)
        return tuple(as_size(v, self.node, what) for v in np.asarray(data).reshape(-1))

    def static_ints(self, i: int, what: str) -> tuple[int, ...]:
        sizes = self.static_sizes(i, what)
        for s in sizes:
            if not isinstance(s, int):
                raise DynamicValueError(f"{self.node.describe()}: {what} must be static integers, got symbolic {sizes}")
        return sizes  # type: ignore[return-value]

    def static_floats(self, i: int, what: str) -> tuple[float, ...]:
        data = self.static(i, what)
        if data.dtype == object:
            raise DynamicValueError(f"{self.node.describe()}: {what} must be static numbers, got symbolic values")
        return tuple(float(v) for v in np.asarray(data).reshape(-1))

    def inferred_type(self, name: str) -> onnx.TypeProto | None:
        """The type ONNX's own shape inference (with data propagation) gives ``name``."""
        if self._inferred is None:
            self._inferred = self.infer_types() if self.infer_types is not None else {}
        return self._inferred.get(name)

    def inferred_shape(self, i: int) -> tuple[Size, ...] | None:
        """Output ``i``'s shape from ONNX shape inference, when every size is known here: an int,
        or an expression of the graph's own symbols (ONNX's fresh ``unk__`` names are not)."""
        from .types import shape_from_type
        t = self.inferred_type(self.node.outputs[i]) if self.node.has_output(i) else None
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        if any(d.WhichOneof("value") is None for d in t.tensor_type.shape.dim):
            return None
        shape = shape_from_type(t, "inferred")
        known = self.graph.symbols()
        from chunkc.ir.sizes import free_symbols
        if any(not free_symbols(s) <= known for s in shape):
            return None
        return shape

    # -- building -------------------------------------------------------------------
    def op(self, op: str, *inputs: Value, **attrs) -> Value | tuple[Value, ...]:
        node = self.graph.add_node(op, inputs, attrs, name=self.node.short_name(op) if self.node else None)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def const(self, data, dtype: DType | None = None, name: str | None = None) -> Value:
        arr = np.asarray(data)
        if dtype is not None:
            arr = arr.astype(dtype.numpy)
        return self.graph.add_constant(identifier(name or (self.node.hint + "_c" if self.node else "c")), arr)

    def scalar(self, value, dtype: DType) -> Value:
        """A shared 0-d constant of ``dtype`` (see ``Graph.scalar``)."""
        return self.graph.scalar(value, dtype)

    def materialize(self, name: str) -> Value:
        slot = self.slot(name)
        if slot.value is None:
            k = slot.known
            short = numbered("const", name) if machine_made(name) else identifier(name)  # val_37 -> const_37
            if k.symbolic:
                flat = tuple(normalize(v) for v in k.data.reshape(-1))
                slot.value = self.graph.op("size_tensor", values=flat, shape=tuple(k.data.shape),
                                           dtype=k.dtype, name=numbered("sizes", name) if machine_made(name) else short)
            else:
                slot.value = self.graph.add_constant(short, k.data)
        return slot.value

    # -- the current node's outputs -------------------------------------------------
    def set(self, i: int, value: Value) -> None:
        if self.node.has_output(i):
            self.env[self.node.outputs[i]] = Slot(value=value)

    def set_all(self, values: Sequence[Value]) -> None:
        for i, v in enumerate(values):
            self.set(i, v)

    def forward(self, out: int, inp: int) -> None:
        """Output ``out`` is input ``inp`` (Identity and friends)."""
        if self.node.has_output(out):
            self.env[self.node.outputs[out]] = self.slot(self.input_name(inp))

    def set_known(self, i: int, data: np.ndarray, dtype: DType) -> None:
        if self.node.has_output(i):
            self.env[self.node.outputs[i]] = Slot(known=make_known(data, dtype))

    def keep_dtype(self, value: Value, dtype: DType) -> Value:
        """``value`` cast to ``dtype`` when an IR op widened it (integer sums give i64)."""
        return value if value.dtype == dtype else self.op("cast", value, dtype=dtype)

    def fail(self, message: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.node.describe()}: {message}")


def make_known(data, dtype: DType) -> Known:
    arr = np.asarray(data)
    if arr.dtype == object:
        flat = [normalize(v) if _is_size(v) else v for v in arr.reshape(-1)]
        if all(isinstance(v, (int, np.integer)) for v in flat):
            arr = np.asarray([int(v) for v in flat], dtype=np.int64).reshape(arr.shape)
            if dtype.numpy != arr.dtype:
                arr = arr.astype(dtype.numpy)
        else:
            out = np.empty(len(flat), dtype=object)
            out[:] = flat
            arr = out.reshape(arr.shape)
    elif arr.dtype != dtype.numpy:
        arr = arr.astype(dtype.numpy)
    return Known(arr, dtype)


def _is_size(v) -> bool:
    return isinstance(v, (int, np.integer, sympy.Basic)) and not isinstance(v, bool)


def as_size(v, node: OnnxNode, what: str) -> Size:
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    if isinstance(v, sympy.Basic):
        try:
            return normalize(v)
        except TypeError:
            pass
    raise DynamicValueError(f"{node.describe()}: {what} holds {v!r}, not an integer size")
