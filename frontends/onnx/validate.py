"""Checks run before conversion; each error names the node and what would fix it.

* every name is defined once (graph inputs, initializers, node outputs);
* every node input is defined (a missing initializer is the usual cause);
* the nodes form no cycle (the schedule is recomputed by a topological sort,
  so a model whose nodes are merely listed out of order still imports);
* every node's domain is imported by the model;
* every op has a converter (or ``opaque_unknown`` is set): one
  UnsupportedOpError lists every unsupported op type with its count and the
  first node of each.
"""

from __future__ import annotations

from collections import Counter

import networkx as nx
import onnx

from chunkc.errors import ChunkcError, UnsupportedOpError

from .node import OnnxNode, label, outer_references
from .converters import lookup

_MAX_LISTED = 12


def defined_names(graph: onnx.GraphProto) -> dict[str, str]:
    """Name -> what defines it, for graph inputs and initializers; refuses duplicates."""
    defined: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in defined:
            raise ChunkcError(f"initializer {label(init.name)} is defined twice")
        defined[init.name] = "initializer"
    for init in graph.sparse_initializer:
        raise UnsupportedOpError(f"sparse initializer {label(init.values.name)} is not supported; densify it")
    for inp in graph.input:
        if inp.name in defined and defined[inp.name] != "initializer":
            raise ChunkcError(f"graph input {label(inp.name)} is declared twice")
        defined.setdefault(inp.name, "graph input")
    return defined


def topological_nodes(graph: onnx.GraphProto, source: str) -> list[OnnxNode]:
    """The nodes in a valid schedule (the file's order where it is one); refuses cycles and undefined inputs."""
    nodes = [OnnxNode(n, i) for i, n in enumerate(graph.node)]
    defined = defined_names(graph)
    producer: dict[str, OnnxNode] = {}
    for node in nodes:
        for out in node.outputs:
            if not out:
                continue
            if out in producer or out in defined:
                first = producer[out].describe() if out in producer else f"the {defined[out]}"
                raise ChunkcError(f"{source}: {node.describe()} writes {label(out)}, which {first} already defines; "
                                  "every tensor name must be assigned once")
            producer[out] = node
    for node in nodes:
        for name in node.inputs:
            if name and name not in producer and name not in defined:
                raise ChunkcError(f"{source}: {node.describe()} reads {label(name)}, which no node, graph input or "
                                  "initializer defines (a missing initializer?); add it or remove the node")
    for out in graph.output:
        if out.name not in producer and out.name not in defined:
            raise ChunkcError(f"{source}: graph output {label(out.name)} is defined by no node, input or initializer")
    # networkx's lexicographic topological sort takes nodes in file order whenever they are
    # ready; a node holding a subgraph also waits for the outer values its subgraph reads
    deps = nx.DiGraph()
    deps.add_nodes_from(n.index for n in nodes)
    for n in nodes:
        for x in set(n.inputs) | outer_references(n.proto):
            if x in producer:
                deps.add_edge(producer[x].index, n.index)
    try:
        return [nodes[i] for i in nx.lexicographical_topological_sort(deps)]
    except nx.NetworkXUnfeasible:
        cycle = [nodes[u] for u, _ in nx.find_cycle(deps)]
        path = " -> ".join(label(n.name) for n in cycle + cycle[:1])
        raise ChunkcError(f"{source}: the graph has a cycle through nodes {path}; ONNX graphs must be acyclic "
                          f"(first node on it: {cycle[0].describe()})") from None


def check_domains(nodes: list[OnnxNode], opsets: dict[str, int], source: str) -> None:
    """Every node's domain must be one the model imports (an opset_import entry)."""
    for n in nodes:
        if n.domain not in opsets:
            raise UnsupportedOpError(f"{source}: {n.describe()} uses domain {label(n.domain)}, which the model does "
                                     "not import; add an opset_import entry for it")


def check_supported(nodes: list[OnnxNode], source: str) -> list[OnnxNode]:
    """Refuse every op without a converter in one error; return the unsupported nodes."""
    missing = [n for n in nodes if lookup(n.domain, n.op_type) is None]
    if missing:
        counts = Counter((n.domain, n.op_type) for n in missing)
        first: dict[tuple[str, str], OnnxNode] = {}
        for n in missing:
            first.setdefault((n.domain, n.op_type), n)
        parts = []
        for (domain, op), k in counts.most_common(_MAX_LISTED):
            name = f"{domain}::{op}" if domain else op
            node = first[(domain, op)]
            where = node.source.where() if node.source is not None and node.source.file else ""
            parts.append(f"{label(name)} x{k} (first: node {label(node.name)}{' at ' + where if where else ''})")
        more = f", and {len(counts) - _MAX_LISTED} more" if len(counts) > _MAX_LISTED else ""
        raise UnsupportedOpError(
            f"{source}: {len(counts)} unsupported op type(s): {', '.join(parts)}{more}. "
            "Import with opaque_unknown=True (the default) to keep them as opaque nodes that onnxruntime runs")
    return missing
