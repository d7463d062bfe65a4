"""Value, Node and Graph.

A :class:`Graph` is an ordered list of nodes: the order is the schedule, and
memory estimation reads it as such.  Graph inputs and constants (weights) are
values without a producer.  Every value has a :class:`TensorType`.

Nodes are built through :meth:`Graph.add_node`, which looks the op up in the
registry, binds its attributes and runs its shape inference, so malformed IR
cannot be constructed.  Names are sanitized to identifiers, so no text taken
from a model can reach generated code as anything but a plain name.
"""

from __future__ import annotations

import keyword
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import IRError
from .dims import DimRecord
from .dtypes import DType, dtype as to_dtype
from .registry import OpDef, lookup
from .sizes import Size, evaluate, format_size
from .types import TensorType

_IDENT_BAD = re.compile(r"[^A-Za-z0-9_]")
_ATTR_SCALARS = (bool, int, float, str, type(None), DType)


def sanitize_name(name: str) -> str:
    """Turn any text into an identifier (letters, digits, underscore)."""
    text = _IDENT_BAD.sub("_", str(name))[:64] or "v"
    if text[0].isdigit() or keyword.iskeyword(text) or keyword.issoftkeyword(text):
        text = "v" + text
    return text


class Value:
    """A tensor in the graph: a graph input, a constant, or a node's output."""

    __slots__ = ("name", "type", "producer", "index", "graph", "data", "kind")

    def __init__(self, graph: "Graph", name: str, type: TensorType, producer: "Node | None" = None,
                 index: int = 0, data: np.ndarray | None = None, kind: str | None = None):
        self.graph = graph
        self.name = name
        self.type = type
        self.producer = producer
        self.index = index
        self.data = data  # constants only; None for a shape-only constant parsed from text
        self.kind = kind or ("node" if producer is not None else "input")  # "input" | "constant" | "node"

    @property
    def shape(self) -> tuple[Size, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"

    @property
    def is_input(self) -> bool:
        return self.kind == "input"

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"

    # Operator sugar for the builder API (see chunkc.ops).
    def _op(self, name, *others, **attrs):
        from .. import ops as _ops
        return getattr(_ops, name)(self, *others, **attrs)

    def __add__(self, o): return self._op("add", o)
    def __radd__(self, o): return _rop("add", o, self)
    def __sub__(self, o): return self._op("sub", o)
    def __rsub__(self, o): return _rop("sub", o, self)
    def __mul__(self, o): return self._op("mul", o)
    def __rmul__(self, o): return _rop("mul", o, self)
    def __truediv__(self, o): return self._op("div", o)
    def __rtruediv__(self, o): return _rop("div", o, self)
    def __matmul__(self, o): return self._op("matmul", o)
    def __neg__(self): return self._op("neg")
    def __pow__(self, o): return self._op("pow", o)
    __hash__ = object.__hash__


def _rop(name, left, right: Value):
    from .. import ops as _ops
    return getattr(_ops, name)(left, right)


class Node:
    """One op application. ``outputs`` are created by shape inference."""

    __slots__ = ("name", "op", "inputs", "attrs", "outputs", "graph")

    def __init__(self, graph: "Graph", name: str, op: OpDef, inputs: tuple[Value, ...], attrs: dict[str, Any]):
        self.graph = graph
        self.name = name
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.outputs: tuple[Value, ...] = ()

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise IRError(f"node {self.name} ({self.op.name}) has {len(self.outputs)} outputs; use .outputs")
        return self.outputs[0]

    def dims(self) -> DimRecord:
        """This node's dimension record (see chunkc.ir.dims)."""
        return self.op.dims([v.type for v in self.inputs], self.attrs, [v.type for v in self.outputs])

    def flops(self) -> Size:
        return self.op.flops([v.type for v in self.inputs], self.attrs, [v.type for v in self.outputs])

    def __repr__(self) -> str:
        ins = ", ".join("%" + v.name for v in self.inputs)
        outs = ", ".join("%" + v.name for v in self.outputs)
        return f"<Node {self.name}: {outs} = {self.op.name}({ins})>"


def _check_attr_value(op: str, key: str, value: Any) -> Any:
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple):
        return tuple(_check_attr_value(op, key, v) for v in value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _ATTR_SCALARS):
        return value
    # symbolic sizes are allowed as attributes (reshape targets, full's shape)
    import sympy
    if isinstance(value, sympy.Expr):
        return value
    raise IRError(f"op {op}: attribute {key}={value!r} has type {type(value).__name__}; "
                  "attributes are numbers, strings, bools, None, dtypes, sizes or tuples of those")


class Graph:
    """A dataflow graph whose node order is its schedule."""

    def __init__(self, name: str = "main"):
        self.name = sanitize_name(name)
        self.inputs: list[Value] = []
        self.constants: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self._names: set[str] = set()
        self._counter = 0

    # -- naming ----------------------------------------------------------------
    def _fresh(self, hint: str | None) -> str:
        if hint is None:
            while True:
                self._counter += 1
                name = f"t{self._counter}"
                if name not in self._names:
                    break
        else:
            base = sanitize_name(hint)
            name, k = base, 1
            while name in self._names:
                name = f"{base}_{k}"
                k += 1
        self._names.add(name)
        return name

    # -- building --------------------------------------------------------------
    def add_input(self, name: str, dtype, shape: Iterable) -> Value:
        v = Value(self, self._fresh(name), TensorType(to_dtype(dtype), tuple(shape)))
        self.inputs.append(v)
        return v

    def add_constant(self, name: str, data, dtype=None, type: TensorType | None = None) -> Value:
        """A weight. ``data=None`` with a ``type`` makes a shape-only constant (from text IR)."""
        if data is None:
            if type is None:
                raise IRError(f"constant {name!r}: give its data, or its type for a shape-only constant")
            v = Value(self, self._fresh(name), type, kind="constant")
            self.constants.append(v)
            return v
        arr = np.asarray(data)
        if dtype is not None:
            arr = arr.astype(to_dtype(dtype).numpy)
        try:
            dt = to_dtype(arr.dtype)
        except TypeError as exc:
            raise IRError(f"constant {name!r}: {exc}") from None
        v = Value(self, self._fresh(name), TensorType(dt, arr.shape), data=arr, kind="constant")
        self.constants.append(v)
        return v

    def add_node(self, op: str | OpDef, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None,
                 name: str | None = None, output_names: Sequence[str] | None = None) -> Node:
        opdef = lookup(op) if isinstance(op, str) else op
        node_name = self._fresh(name or opdef.name)
        try:
            inputs = tuple(inputs)
            for i, v in enumerate(inputs):
                if not isinstance(v, Value):
                    raise IRError(f"op {opdef.name} (node {node_name}): input {i} is {type(v).__name__}, not a Value")
                if v.graph is not self:
                    raise IRError(f"op {opdef.name} (node {node_name}): input {i} %{v.name} belongs to another graph")
            opdef.check_arity(len(inputs), node_name)
            bound = opdef.bind_attrs(attrs or {}, node_name)
            bound = {k: _check_attr_value(opdef.name, k, v) for k, v in bound.items()}
            try:
                out_types = tuple(opdef.infer([v.type for v in inputs], bound))
            except IRError as exc:
                raise IRError(f"node {node_name}: {exc}") from None
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                ins = ", ".join(f"%{v.name}: {v.type}" for v in inputs)
                raise IRError(f"node {node_name}: op {opdef.name}({ins}) {bound}: {exc}") from None
        except IRError:
            self._names.discard(node_name)
            raise
        node = Node(self, node_name, opdef, inputs, bound)
        names = list(output_names or [])
        outs = []
        for i, t in enumerate(out_types):
            hint = names[i] if i < len(names) else (node_name if len(out_types) == 1 else f"{node_name}_{i}")
            outs.append(Value(self, self._fresh(hint) if hint != node_name else node_name, t, node, i))
            if hint == node_name:
                pass  # node and its single output share the name
        node.outputs = tuple(outs)
        self.nodes.append(node)
        return node

    def op(self, op: str, *inputs: Value, name: str | None = None, **attrs) -> Value | tuple[Value, ...]:
        node = self.add_node(op, inputs, attrs, name=name)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def set_outputs(self, *values: Value) -> None:
        for v in values:
            if not isinstance(v, Value) or v.graph is not self:
                raise IRError(f"graph {self.name}: output {v!r} is not a value of this graph")
        self.outputs = list(values)

    # -- queries ---------------------------------------------------------------
    def values(self) -> list[Value]:
        out = list(self.inputs) + list(self.constants)
        for n in self.nodes:
            out.extend(n.outputs)
        return out

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(f"graph {self.name} has no value %{name}")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"graph {self.name} has no node {name}")

    def users(self) -> dict[Value, list[Node]]:
        """Map each value to the nodes that read it, in schedule order."""
        uses: dict[Value, list[Node]] = {v: [] for v in self.values()}
        for n in self.nodes:
            for v in n.inputs:
                if not uses[v] or uses[v][-1] is not n:
                    uses[v].append(n)
        return uses

    def symbols(self) -> set[str]:
        out: set[str] = set()
        from .sizes import free_symbols
        for v in self.values():
            for s in v.shape:
                out |= free_symbols(s)
        return out

    def data_dependent_sizes(self) -> dict[str, tuple[Value, int]]:
        """Size symbols that no graph input's shape holds, each with the first node output (in
        schedule order) and axis whose size is exactly that symbol: a size known only once that
        node has run (NonZero's count of nonzeros, an image decoder's height).  Backends and the
        interpreter bind each one right after its node runs; planning needs a value for it."""
        from .sizes import free_symbols
        given: set[str] = set()
        for v in self.inputs:
            for s in v.shape:
                given |= free_symbols(s)
        found: dict[str, tuple[Value, int]] = {}
        for n in self.nodes:
            for o in n.outputs:
                for axis, s in enumerate(o.shape):
                    if not isinstance(s, int) and s.is_Symbol and s.name not in given and s.name not in found:
                        found[s.name] = (o, axis)
        return found

    def bind_sizes(self, arrays: Sequence[Any]) -> dict[str, int]:
        """Solve the symbolic sizes of the inputs from actual input arrays."""
        from .sizes import bind_symbols
        if len(arrays) != len(self.inputs):
            raise IRError(f"graph {self.name} takes {len(self.inputs)} inputs "
                          f"({', '.join(v.name for v in self.inputs)}), got {len(arrays)}")
        bindings: dict[str, int] = {}
        for _ in range(2):  # a second sweep solves sizes such as 2*L once L is known
            for v, a in zip(self.inputs, arrays):
                shape = tuple(a.shape)
                if len(shape) != v.rank:
                    raise IRError(f"input %{v.name}: expected rank {v.rank} {v.type}, got shape {shape}")
                for axis, (decl, actual) in enumerate(zip(v.shape, shape)):
                    try:
                        bind_symbols(decl, int(actual), bindings, f"input %{v.name} axis {axis}")
                    except ValueError as exc:
                        raise IRError(str(exc)) from None
        return bindings

    def nbytes(self, value: Value, bindings: Mapping[str, int] | None = None) -> int:
        return value.type.nbytes(bindings)

    # -- transformation ----------------------------------------------------------
    def copy(self) -> "Graph":
        """A structural copy (constants share their arrays)."""
        g = Graph(self.name)
        g._counter = self._counter
        vmap: dict[Value, Value] = {}
        for v in self.inputs:
            nv = Value(g, v.name, v.type)
            g.inputs.append(nv)
            vmap[v] = nv
        for v in self.constants:
            nv = Value(g, v.name, v.type, data=v.data, kind="constant")
            g.constants.append(nv)
            vmap[v] = nv
        for n in self.nodes:
            nn = Node(g, n.name, n.op, tuple(vmap[v] for v in n.inputs), dict(n.attrs))
            nn.outputs = tuple(Value(g, o.name, o.type, nn, o.index) for o in n.outputs)
            vmap.update(zip(n.outputs, nn.outputs))
            g.nodes.append(nn)
        g.outputs = [vmap[v] for v in self.outputs]
        g._names = set(self._names)
        return g

    def reordered(self, order: Sequence[str]) -> "Graph":
        """A copy whose schedule is ``order`` (node names); must stay topological."""
        g = self.copy()
        by_name = {n.name: n for n in g.nodes}
        if sorted(order) != sorted(by_name):
            raise IRError(f"graph {self.name}: a new order must name every node exactly once")
        g.nodes = [by_name[name] for name in order]
        from .verifier import verify
        verify(g)
        return g

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.constants)} constants, {len(self.nodes)} nodes>"


def describe_shape(shape: tuple[Size, ...]) -> str:
    return "[" + ", ".join(format_size(s) for s in shape) + "]"


def concrete(v: Value, bindings: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(evaluate(s, bindings) for s in v.shape)
