"""Value, Node and Graph.

A :class:`Graph` is an ordered list of nodes: the order is the schedule, and
memory estimation reads it as such.  Graph inputs and constants (weights) are
values without a producer.  Every value has a :class:`TensorType`.

Nodes are built through :meth:`Graph.add_node`, which looks the op up in the
registry, binds its attributes and runs its shape inference, so malformed IR
cannot be constructed.  Names are sanitized to identifiers, so no text taken
from a model can reach generated code as anything but a plain name.

A graph edits itself: every value keeps its use list (the nodes that read it),
updated by each edit, so that :meth:`Graph.replace_all_uses`, :meth:`Graph.erase`,
:meth:`Graph.dce` and insertion at a chosen place of the schedule are cheap and
keep names and uses consistent.  Edit graphs through these methods, not by
changing ``nodes`` or ``Node.inputs`` by hand; the verifier checks the use lists
and the name table.  Inside ``with graph.transaction():`` a failure undoes every
edit made in the block.
"""

from __future__ import annotations

import keyword
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import IRError
from .dims import DimRecord
from .dtypes import DType, dtype as to_dtype
from .registry import OpDef, lookup
from .sizes import Size, sizes_equal
from .source import SourceInfo
from .types import TensorType

_IDENT_BAD = re.compile(r"[^A-Za-z0-9_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ATTR_SCALARS = (bool, int, float, str, type(None), DType)
_NUMBERS = (bool, int, float, np.number, np.bool_)


def sanitize_name(name: str) -> str:
    """Turn any text into an identifier (letters, digits, underscore)."""
    text = _IDENT_BAD.sub("_", str(name))[:64] or "v"
    if text[0].isdigit() or keyword.iskeyword(text) or keyword.issoftkeyword(text):
        text = "v" + text
    return text


class Value:
    """A tensor in the graph: a graph input, a constant, or a node's output."""

    __slots__ = ("name", "type", "producer", "index", "graph", "data", "kind", "_users")

    def __init__(self, graph: "Graph", name: str, type: TensorType, producer: "Node | None" = None,
                 index: int = 0, data: np.ndarray | None = None, kind: str | None = None):
        self.graph = graph
        self.name = name
        self.type = type
        self.producer = producer
        self.index = index
        self.data = data  # constants only; None for a shape-only constant parsed from text
        self.kind = kind or ("node" if producer is not None else "input")  # "input" | "constant" | "node"
        self._users: dict[Node, int] = {}  # reader -> how many of its inputs are this value (kept by Graph)

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
    def users(self) -> tuple["Node", ...]:
        """The nodes that read this value, each once, in schedule order."""
        return self.graph._in_schedule_order(self._users)

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"

    # Operator sugar for the builder API (chunkc.ops); numbers become shared 0-d constants.
    def __add__(self, o): return self.graph.op("add", self, o)
    def __radd__(self, o): return self.graph.op("add", o, self)
    def __sub__(self, o): return self.graph.op("sub", self, o)
    def __rsub__(self, o): return self.graph.op("sub", o, self)
    def __mul__(self, o): return self.graph.op("mul", self, o)
    def __rmul__(self, o): return self.graph.op("mul", o, self)
    def __truediv__(self, o): return self.graph.op("div", self, o)
    def __rtruediv__(self, o): return self.graph.op("div", o, self)
    def __matmul__(self, o): return self.graph.op("matmul", self, o)
    def __neg__(self): return self.graph.op("neg", self)
    def __pow__(self, o): return self.graph.op("pow", self, o)
    __hash__ = object.__hash__


class Node:
    """One op application. ``outputs`` are created by shape inference.

    ``source`` says where in the model the node comes from (module path, file,
    line; see :mod:`chunkc.ir.source`), or is None when unknown.
    """

    __slots__ = ("name", "op", "inputs", "attrs", "outputs", "graph", "source")

    def __init__(self, graph: "Graph", name: str, op: OpDef, inputs: tuple[Value, ...], attrs: dict[str, Any],
                 source: SourceInfo | None = None):
        self.graph = graph
        self.name = name
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.outputs: tuple[Value, ...] = ()
        self.source = source

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


def _same_type(a: TensorType, b: TensorType) -> bool:
    return a.dtype == b.dtype and a.rank == b.rank and all(sizes_equal(x, y) for x, y in zip(a.shape, b.shape))


def _add_use(v: Value, node: Node) -> None:
    v._users[node] = v._users.get(node, 0) + 1


def _drop_use(v: Value, node: Node) -> None:
    left = v._users[node] - 1
    if left:
        v._users[node] = left
    else:
        del v._users[node]


def _numpy_dtype(dt: DType) -> np.dtype:
    if dt is DType.bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            raise IRError("a bf16 constant needs the ml_dtypes package; build it with graph.add_constant from "
                          "an array of another dtype instead") from None
        return np.dtype(ml_dtypes.bfloat16)
    return dt.numpy


def number_dtype(value, like: DType) -> DType:
    """The dtype a Python number takes beside a value of dtype ``like`` (the builder's rule):
    booleans stay bool; a number takes ``like`` when it is numeric (f32 beside bool); a float
    never truncates to an integer dtype (it becomes f32)."""
    if isinstance(value, (bool, np.bool_)):
        return DType.bool
    if like is DType.bool:
        return DType.float32
    if not like.is_floating and isinstance(value, (float, np.floating)):
        return DType.float32
    return like


@dataclass(frozen=True)
class Parameter:
    """What makes a graph input a trainable parameter of the module it was imported from
    (``from_torch(..., train=True)``); the PyTorch backend makes it an ``nn.Parameter``."""

    name: str  # its name in the module (a state_dict key, e.g. "h.0.attn.c_attn.weight"); never code
    data: np.ndarray  # its value when imported: the compiled module's initial value
    aliases: tuple[str, ...] = ()  # other names of the same tensor in the module (tied weights)


class Graph:
    """A dataflow graph whose node order is its schedule."""

    def __init__(self, name: str = "main"):
        self.name = sanitize_name(name)
        self.inputs: list[Value] = []
        self.constants: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.parameters: dict[Value, Parameter] = {}  # inputs that are a module's trainable parameters
        self._names: set[str] = set()  # every value and node name in use
        self._scalars: dict[tuple[DType, bytes], Value] = {}  # shared 0-d constants (see scalar)
        self._position: dict[Node, int] = {}  # schedule index, checked before it is trusted
        self._insert_before: Node | None = None  # where add_node inserts by default (None: at the end)
        self._journal: list[Callable[[], None]] | None = None  # undo steps inside a transaction

    # -- names -----------------------------------------------------------------
    def _unique(self, hint: str) -> str:
        base = sanitize_name(hint)
        name, k = base, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        return name

    def _fresh(self, hint: str) -> str:
        name = self._unique(hint)
        self._claim(name)
        return name

    def has_name(self, name: str) -> bool:
        """Whether a value or node of this graph is called ``name``."""
        return name in self._names

    def rename(self, obj: Value | Node, name: str) -> None:
        """Give ``obj`` exactly ``name`` (an identifier no other value or node uses; a node may
        share its name with its own first output)."""
        if obj.graph is not self:
            raise IRError(f"graph {self.name}: cannot rename {obj!r}, which belongs to another graph")
        if not _IDENT.match(name):
            raise IRError(f"graph {self.name}: cannot rename {obj.name} to {name!r}, which is not an identifier")
        if obj.name == name:
            return
        partner = _name_partner(obj)
        partner_name = partner.name if partner is not None else None
        if name in self._names and name != partner_name:
            raise IRError(f"graph {self.name}: cannot rename {obj.name} to {name}: the name is already used")
        old = obj.name
        self._set_name(obj, name)
        if old != partner_name:
            self._release(old)
        if name != partner_name:
            self._claim(name)

    # -- the undo journal (every edit goes through these primitives) --------------
    def _log(self, undo: Callable[[], None]) -> None:
        if self._journal is not None:
            self._journal.append(undo)

    def _claim(self, name: str) -> None:
        self._names.add(name)
        self._log(lambda: self._names.discard(name))

    def _release(self, name: str) -> None:
        self._names.discard(name)
        self._log(lambda: self._names.add(name))

    def _set_name(self, obj: Value | Node, name: str) -> None:
        old = obj.name
        obj.name = name
        self._log(lambda: setattr(obj, "name", old))

    def _link(self, node: Node, index: int) -> None:
        self.nodes.insert(index, node)
        if index == len(self.nodes) - 1:
            self._position[node] = index
        for v in node.inputs:
            _add_use(v, node)
        self._log(lambda: self._unlink(node))

    def _unlink(self, node: Node) -> None:
        index = self.position(node)
        del self.nodes[index]
        self._position.pop(node, None)
        for v in node.inputs:
            _drop_use(v, node)
        self._log(lambda: self._link(node, index))

    def _set_inputs(self, node: Node, inputs: tuple[Value, ...]) -> None:
        old = node.inputs
        for v in old:
            _drop_use(v, node)
        node.inputs = inputs
        for v in inputs:
            _add_use(v, node)
        self._log(lambda: self._set_inputs(node, old))

    def _append(self, values: list[Value], v: Value) -> None:
        values.append(v)
        self._log(values.pop)

    def _remove_constant(self, v: Value) -> None:
        index = self.constants.index(v)
        del self.constants[index]
        self._log(lambda: self.constants.insert(index, v))
        for key, shared in list(self._scalars.items()):
            if shared is v:
                del self._scalars[key]
                self._log(lambda key=key: self._scalars.__setitem__(key, v))

    def _set_outputs(self, values: list[Value]) -> None:
        old = self.outputs
        self.outputs = values
        self._log(lambda: setattr(self, "outputs", old))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Undo every edit made in the block when it raises (names, uses and schedule included),
        then re-raise: the graph is left exactly as it was.  Blocks may nest."""
        outermost = self._journal is None
        if outermost:
            self._journal = []
        mark = len(self._journal)
        try:
            yield
        except BaseException:
            journal, self._journal = self._journal, None  # undo steps must not log themselves
            while len(journal) > mark:
                journal.pop()()
            self._journal = None if outermost else journal
            raise
        if outermost:
            self._journal = None

    # -- building --------------------------------------------------------------
    def add_input(self, name: str, dtype, shape: Iterable) -> Value:
        t = TensorType(to_dtype(dtype), tuple(shape))
        v = Value(self, self._fresh(name), t)
        self._append(self.inputs, v)
        return v

    def add_parameter(self, name: str, data, param_name: str | None = None, aliases: Sequence[str] = ()) -> Value:
        """A graph input that is a trainable parameter with initial value ``data`` (named
        ``param_name`` in its module, by default ``name``): see :class:`Parameter`."""
        arr = np.asarray(data)
        try:
            dt = to_dtype(arr.dtype)
        except TypeError as exc:
            raise IRError(f"parameter {name!r}: {exc}") from None
        if not dt.is_floating:
            raise IRError(f"parameter {param_name or name!r} is {dt.short}; trainable parameters are floating point")
        v = self.add_input(name, dt, arr.shape)
        self.parameters[v] = Parameter(param_name or name, arr, tuple(aliases))
        self._log(lambda: self.parameters.pop(v, None))
        return v

    def add_constant(self, name: str, data, dtype=None, type: TensorType | None = None) -> Value:
        """A weight. ``data=None`` with a ``type`` makes a shape-only constant (from text IR)."""
        if data is None:
            if type is None:
                raise IRError(f"constant {name!r}: give its data, or its type for a shape-only constant")
            t, arr = type, None
        else:
            arr = np.asarray(data)
            if dtype is not None:
                arr = arr.astype(_numpy_dtype(to_dtype(dtype)))
            try:
                t = TensorType(to_dtype(arr.dtype), arr.shape)
            except TypeError as exc:
                raise IRError(f"constant {name!r}: {exc}") from None
        v = Value(self, self._fresh(name), t, data=arr, kind="constant")
        self._append(self.constants, v)
        return v

    def scalar(self, value, dtype) -> Value:
        """The 0-d constant ``value`` of ``dtype``, shared: the same dtype and value (bit for bit)
        give the same constant, however often a graph asks for it."""
        dt = to_dtype(dtype)
        try:
            arr = np.asarray(value, dtype=_numpy_dtype(dt))
        except (OverflowError, TypeError, ValueError) as exc:
            raise IRError(f"graph {self.name}: the number {value!r} cannot be a {dt.short} constant: {exc}") from None
        if arr.ndim:
            raise IRError(f"graph {self.name}: scalar() takes one number, got shape {arr.shape}")
        key = (dt, arr.tobytes())
        shared = self._scalars.get(key)
        if shared is None:
            shared = self.add_constant("scalar", arr)
            self._scalars[key] = shared
            self._log(lambda: self._scalars.pop(key, None))
        return shared

    def add_node(self, op: str | OpDef, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None,
                 name: str | None = None, output_names: Sequence[str] | None = None, *,
                 before: Node | None = None, after: Node | None = None, source: SourceInfo | None = None) -> Node:
        """Build a node and put it in the schedule: at the end, or just ``before`` / ``after`` a
        node (or where a ``with graph.inserting(...)`` block says).  Its inputs must be defined
        before that place.  ``source`` says where in the model it comes from."""
        opdef = lookup(op) if isinstance(op, str) else op
        if source is not None and not isinstance(source, SourceInfo):
            raise IRError(f"op {opdef.name}: source must be a chunkc.ir.source.SourceInfo, not {type(source).__name__}")
        node_name = self._unique(name or opdef.name)
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
        index = self._insertion_index(f"op {opdef.name} (node {node_name})", inputs, before, after)
        self._claim(node_name)
        node = Node(self, node_name, opdef, inputs, bound, source)
        names = list(output_names or [])
        outs = []
        for i, t in enumerate(out_types):
            hint = names[i] if i < len(names) else (node_name if len(out_types) == 1 else f"{node_name}_{i}")
            out_name = node_name if i == 0 and hint == node_name else self._fresh(hint)  # may share the node's name
            outs.append(Value(self, out_name, t, node, i))
        node.outputs = tuple(outs)
        self._link(node, index)
        return node

    def _insertion_index(self, where: str, inputs: Sequence[Value], before: Node | None, after: Node | None) -> int:
        if before is not None and after is not None:
            raise IRError(f"{where}: give before= or after=, not both")
        if after is not None:
            index, place = self.position(after) + 1, f"after node {after.name}"
        elif before is not None:
            index, place = self.position(before), f"before node {before.name}"
        elif self._insert_before is not None:
            index, place = self.position(self._insert_before), f"before node {self._insert_before.name}"
        else:
            index, place = len(self.nodes), "at the end of the schedule"
        for i, v in enumerate(inputs):
            if v.producer is None:
                continue
            if v.producer.graph is not self or self._find(v.producer) is None:
                raise IRError(f"{where}: input {i} %{v.name} was produced by node {v.producer.name}, "
                              "which is no longer in the graph")
            if self.position(v.producer) >= index:
                raise IRError(f"{where}: cannot be placed {place}: its input {i} %{v.name} is defined later, "
                              f"by node {v.producer.name}")
        return index

    @contextmanager
    def inserting(self, *, before: Node | None = None, after: Node | None = None) -> Iterator[None]:
        """Within the block, new nodes (``add_node``, ``op``, the builder functions and operators)
        go just before ``before`` or just after ``after`` (in the order they are built) instead of
        at the end of the schedule."""
        if (before is None) == (after is None):
            raise IRError(f"graph {self.name}: inserting() takes exactly one of before= or after=")
        if after is not None:
            p = self.position(after) + 1
            anchor = self.nodes[p] if p < len(self.nodes) else None
        else:
            self.position(before)
            anchor = before
        saved = self._insert_before
        self._insert_before = anchor
        try:
            yield
        finally:
            self._insert_before = saved

    def op(self, op: str, *inputs: Value | int | float | bool, name: str | None = None,
           **attrs) -> Value | tuple[Value, ...]:
        """Add a node and return its output (a tuple for several).  Python numbers among the
        inputs become shared 0-d constants (see :meth:`scalar`) of the dtype the first Value
        input gives them (:func:`number_dtype`).  On failure the graph is left unchanged."""
        like = next((a.dtype for a in inputs if isinstance(a, Value)), None)
        with self.transaction():
            values = []
            for i, a in enumerate(inputs):
                if isinstance(a, Value):
                    values.append(a)
                elif isinstance(a, _NUMBERS):
                    if like is None:
                        raise IRError(f"op {op}: input {i} is the number {a!r}, and no input is a Value to take "
                                      "a dtype from; make it a constant with graph.scalar(value, dtype)")
                    values.append(self.scalar(a, number_dtype(a, like)))
                else:
                    raise IRError(f"op {op}: input {a!r} is neither a Value nor a number")
            node = self.add_node(op, values, attrs, name=name)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def set_outputs(self, *values: Value) -> None:
        for v in values:
            if not isinstance(v, Value) or v.graph is not self:
                raise IRError(f"graph {self.name}: output {v!r} is not a value of this graph")
        self._set_outputs(list(values))

    # -- editing ---------------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value, *, skip: Iterable[Node] = ()) -> int:
        """Make every node that reads ``old``, and the graph outputs, read ``new`` instead; return
        how many reads changed (graph outputs included).  Readers in ``skip`` keep reading
        ``old``, and so does ``new``'s own producer (``y = f(x)`` then replacing ``x`` by ``y``
        redirects every reader of ``x`` but ``f``).  ``new`` must have ``old``'s type and be
        defined before every reader it takes over."""
        where = f"graph {self.name}: replace_all_uses(%{old.name}, %{new.name})"
        for v in (old, new):
            if not isinstance(v, Value) or v.graph is not self:
                raise IRError(f"{where}: {v!r} is not a value of this graph")
        if not _same_type(old.type, new.type):
            raise IRError(f"{where}: the types differ: %{old.name} is {old.type}, %{new.name} is {new.type}; "
                          "cast or reshape the new value first")
        if old is new:
            return 0
        skipped = set(skip) | {new.producer}
        readers = [n for n in self._in_schedule_order(old._users) if n not in skipped]
        if new.producer is not None:
            defined_at = self.position(new.producer)
            early = [n.name for n in readers if self.position(n) < defined_at]
            if early:
                raise IRError(f"{where}: node(s) {', '.join(early)} read %{old.name} but come before node "
                              f"{new.producer.name}, which defines %{new.name}; define it earlier, or leave "
                              "them out with skip=")
        count = 0
        for node in readers:
            count += node.inputs.count(old)
            self._set_inputs(node, tuple(new if v is old else v for v in node.inputs))
        if old in self.outputs:
            count += self.outputs.count(old)
            self._set_outputs([new if v is old else v for v in self.outputs])
        return count

    def set_input(self, node: Node, index: int, value: Value) -> None:
        """Make input ``index`` of ``node`` read ``value``, which must have the same type and be
        defined before ``node``."""
        where = f"graph {self.name}: node {node.name} ({node.op.name}) input {index}"
        position = self.position(node)
        if not 0 <= index < len(node.inputs):
            raise IRError(f"{where}: the node has {len(node.inputs)} inputs")
        if not isinstance(value, Value) or value.graph is not self:
            raise IRError(f"{where}: {value!r} is not a value of this graph")
        old = node.inputs[index]
        if not _same_type(old.type, value.type):
            raise IRError(f"{where}: the types differ: %{old.name} is {old.type}, %{value.name} is {value.type}")
        if value.producer is not None and self.position(value.producer) >= position:
            raise IRError(f"{where}: %{value.name} is defined by node {value.producer.name}, which does not come "
                          "before it")
        self._set_inputs(node, node.inputs[:index] + (value,) + node.inputs[index + 1:])

    def erase(self, item: Node | Value) -> None:
        """Remove a node (or a constant) that nothing reads and that is not a graph output; its
        names become free.  Refused, naming the readers, while any output is still used."""
        if isinstance(item, Node):
            where = f"graph {self.name}: cannot erase node {item.name} ({item.op.name})"
            if item.graph is not self or self._find(item) is None:
                raise IRError(f"{where}: it is not in the graph's schedule")
            values = item.outputs
        elif isinstance(item, Value) and item.kind == "constant" and item.graph is self:
            where = f"graph {self.name}: cannot erase constant %{item.name}"
            if item not in self.constants:
                raise IRError(f"{where}: it is not in the graph")
            values = (item,)
        else:
            raise IRError(f"graph {self.name}: erase() takes a node or a constant of this graph, not {item!r} "
                          "(graph inputs are its signature)")
        for v in values:
            if v._users:
                readers = ", ".join(n.name for n in self._in_schedule_order(v._users))
                raise IRError(f"{where}: %{v.name} is still read by node(s) {readers}; replace those uses first "
                              "(Graph.replace_all_uses)")
            if v in self.outputs:
                raise IRError(f"{where}: %{v.name} is a graph output; set other outputs first (Graph.set_outputs)")
        if isinstance(item, Node):
            self._unlink(item)
            self._release(item.name)
            for v in item.outputs:
                if v.name != item.name:
                    self._release(v.name)
        else:
            self._remove_constant(item)
            self._release(item.name)

    def dce(self) -> int:
        """Dead-code elimination: erase every node none of whose outputs reaches a graph output,
        then every constant nothing reads.  Graph inputs stay (they are the signature).  Returns
        how many nodes and constants were erased."""
        outputs = set(self.outputs)
        erased = 0
        for node in reversed(list(self.nodes)):  # readers come after producers: one sweep suffices
            if not any(o._users or o in outputs for o in node.outputs):
                self.erase(node)
                erased += 1
        for c in list(self.constants):
            if not c._users and c not in outputs:
                self.erase(c)
                erased += 1
        return erased

    # -- queries ---------------------------------------------------------------
    def position(self, node: Node) -> int:
        """``node``'s index in the schedule."""
        p = self._find(node)
        if p is None:
            raise IRError(f"graph {self.name}: node {node.name} is not in its schedule")
        return p

    def _find(self, node: Node) -> int | None:
        p = self._position.get(node)
        if p is None or p >= len(self.nodes) or self.nodes[p] is not node:
            self._position = {n: i for i, n in enumerate(self.nodes)}
            p = self._position.get(node)
        return p

    def _in_schedule_order(self, nodes: Iterable[Node]) -> tuple[Node, ...]:
        return tuple(sorted(nodes, key=self.position))

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
        return {v: list(v.users) for v in self.values()}

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

    # -- transformation ----------------------------------------------------------
    def copy(self) -> "Graph":
        """A structural copy (constants share their arrays)."""
        g = Graph(self.name)
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
            nn = Node(g, n.name, n.op, tuple(vmap[v] for v in n.inputs), dict(n.attrs), n.source)
            nn.outputs = tuple(Value(g, o.name, o.type, nn, o.index) for o in n.outputs)
            vmap.update(zip(n.outputs, nn.outputs))
            g._link(nn, len(g.nodes))
        g.outputs = [vmap[v] for v in self.outputs]
        g.parameters = {vmap[v]: p for v, p in self.parameters.items()}
        g._names = set(self._names)
        g._scalars = {key: vmap[v] for key, v in self._scalars.items() if v in vmap}
        return g

    def reordered(self, order: Sequence[str]) -> "Graph":
        """A copy whose schedule is ``order`` (node names); must stay topological."""
        g = self.copy()
        by_name = {n.name: n for n in g.nodes}
        if sorted(order) != sorted(by_name):
            raise IRError(f"graph {self.name}: a new order must name every node exactly once")
        nodes = [by_name[name] for name in order]
        defined = set(g.inputs) | set(g.constants)
        for n in nodes:
            for i, v in enumerate(n.inputs):
                if v not in defined:
                    raise IRError(f"graph {self.name}: node {n.name} ({n.op.name}): input {i} %{v.name} is used "
                                  "before it is defined (schedule is not topological)")
            defined.update(n.outputs)
        g.nodes = nodes
        return g

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.constants)} constants, {len(self.nodes)} nodes>"


def _name_partner(obj: Value | Node) -> Value | Node | None:
    """The object that may share ``obj``'s name: a node and its first output."""
    if isinstance(obj, Node):
        return obj.outputs[0] if obj.outputs else None
    if obj.producer is not None and obj.index == 0:
        return obj.producer
    return None
