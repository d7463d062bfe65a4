"""The verifier: checks a graph's invariants; run after every pass in tests.

Invariants (each violation raises :class:`~chunkc.errors.IRError` naming the
graph, the node and the value at fault, and the node's module and source line
when it has a ``source``):

* names: every value name and every node name is unique; a node shares its
  name only with its own first output (the builder's convention, which the
  text form relies on);
* inputs and constants have no producer; a constant's data matches its type;
* the schedule is topological: a node reads only values defined before it;
* each node's attributes are exactly its op's, its arity is allowed, and its
  outputs have the types that the op's shape inference gives now;
* each node's dimension record has one entry per output axis and names only
  existing input axes;
* every graph output is a value defined in the graph;
* use lists: each value lists exactly the nodes of the schedule that read it
  (as often as they read it), and the name table holds exactly the names in use.
"""

from __future__ import annotations

from ..errors import IRError
from .dtypes import dtype as to_dtype
from .graph import Graph
from .sizes import sizes_equal
from .source import describe


def verify(graph: Graph) -> None:
    """Raise IRError naming the first node that breaks an invariant."""
    where = f"graph {graph.name}"
    defined = set()
    names: set[str] = set()
    for kind, values in (("input", graph.inputs), ("constant", graph.constants)):
        for v in values:
            if v.name in names:
                raise IRError(f"{where}: value name %{v.name} is defined twice")
            if v.producer is not None or v.kind != kind:
                raise IRError(f"{where}: {kind} %{v.name} has kind {v.kind!r} and producer "
                              f"{v.producer.name if v.producer is not None else None}; a graph {kind} has none")
            if v.graph is not graph:
                raise IRError(f"{where}: {kind} %{v.name} belongs to another graph")
            names.add(v.name)
            defined.add(v)
    for v in graph.constants:
        if v.data is not None and not _data_matches(v):
            raise IRError(f"{where}: constant %{v.name} has data of dtype {v.data.dtype} and shape "
                          f"{tuple(v.data.shape)}, which does not match its type {v.type}")
    value_names = set(names) | {o.name for n in graph.nodes for o in n.outputs}
    node_names: set[str] = set()
    for node in graph.nodes:
        at = f"{where}: {describe(node, code=False)}"  # with the module and line it comes from
        if node.name in node_names:
            raise IRError(f"{at}: node name used twice")
        node_names.add(node.name)
        if node.name in value_names and not (node.outputs and node.outputs[0].name == node.name):
            raise IRError(f"{at}: the node's name is also the name of a value it does not produce first; "
                          "name nodes through Graph.add_node")
        if node.graph is not graph:
            raise IRError(f"{at}: belongs to another graph")
        for i, v in enumerate(node.inputs):
            if v not in defined:
                raise IRError(f"{at}: input {i} %{v.name} is used before it is defined (schedule is not topological)")
        node.op.check_arity(len(node.inputs), node.name)
        if set(node.attrs) != set(node.op.attrs):
            raise IRError(f"{at}: has attributes {sorted(node.attrs)}, its op takes {sorted(node.op.attrs)}")
        try:
            types = node.op.infer([v.type for v in node.inputs], node.attrs)
        except IRError as exc:
            raise IRError(f"{at}: {exc}") from None
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise IRError(f"{at}: shape inference fails: {type(exc).__name__}: {exc}") from None
        if len(types) != len(node.outputs):
            raise IRError(f"{at}: has {len(node.outputs)} outputs, its op infers {len(types)}")
        for index, (o, t) in enumerate(zip(node.outputs, types)):
            if o.type.dtype != t.dtype or o.rank != t.rank or not all(sizes_equal(a, b) for a, b in zip(o.shape, t.shape)):
                raise IRError(f"{at}: output %{o.name} is typed {o.type} but its op infers {t}")
            if o.producer is not node or o.index != index or o.kind != "node" or o.graph is not graph:
                raise IRError(f"{at}: output {index} %{o.name} does not record this node as its producer "
                              f"(producer {getattr(o.producer, 'name', None)}, index {o.index}, kind {o.kind!r})")
            if o.name in names:
                raise IRError(f"{at}: value name %{o.name} is defined twice")
            names.add(o.name)
            defined.add(o)
        record = node.dims()
        if len(record) != len(node.outputs):
            raise IRError(f"{at}: its dimension record covers {len(record)} outputs, not {len(node.outputs)}")
        for o, flows in zip(node.outputs, record):
            if len(flows) != o.rank:
                raise IRError(f"{at}: its dimension record has {len(flows)} axes for output {o.type}")
            for flow in flows:
                for s in flow.sources:
                    if not (0 <= s.input < len(node.inputs)) or not (0 <= s.axis < node.inputs[s.input].rank):
                        raise IRError(f"{at}: its dimension record names a missing input axis {s}")
    for v in graph.outputs:
        if v not in defined:
            producer = f" (produced by node {v.producer.name}, which is not in the schedule)" if v.producer else ""
            raise IRError(f"{where}: output %{v.name} is not defined in the graph{producer}")
    _verify_uses(graph, where)
    if graph._names != names | node_names:
        stale = sorted(graph._names - names - node_names)
        missing = sorted((names | node_names) - graph._names)
        raise IRError(f"{where}: the name table is out of date (names of removed values or nodes: {stale}; "
                      f"names missing from it: {missing}); edit graphs through Graph's methods")


def _verify_uses(graph: Graph, where: str) -> None:
    """Each node's reads are on the use lists of the values it reads, and nothing else is."""
    expected: dict = {}
    for node in graph.nodes:
        for v in node.inputs:
            readers = expected.setdefault(v, {})
            readers[node] = readers.get(node, 0) + 1
    for node in graph.nodes:
        for v in dict.fromkeys(node.inputs):
            count, recorded = expected[v][node], v._users.get(node, 0)
            if count != recorded:
                raise IRError(f"{where}: node {node.name} ({node.op.name}) reads %{v.name} {count} time(s), but the "
                              f"use list of %{v.name} records {recorded}; edit graphs through Graph's methods "
                              "(replace_all_uses, set_input), not Node.inputs")
    scheduled = set(graph.nodes)
    for v in graph.values():
        stray = next((n for n in v._users if n not in expected.get(v, {})), None)
        if stray is not None:
            raise IRError(f"{where}: the use list of %{v.name} names node {stray.name} ({stray.op.name}), which "
                          f"{'does not read it' if stray in scheduled else 'is not in the schedule'}; edit graphs "
                          "through Graph's methods (erase, replace_all_uses), not the node list")


def _data_matches(v) -> bool:
    try:
        dt = to_dtype(v.data.dtype)
    except TypeError:
        return False
    return dt == v.dtype and tuple(v.data.shape) == tuple(v.shape)
