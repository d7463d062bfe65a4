"""Rematerialization: recompute cheap, large values where they are read, instead of holding them.

Models build some tensors once and share them: a causal or padding mask
``[B, 1, L, L]`` made from ``arange`` and comparisons, a relative position bias
``[1, H, L, L]`` gathered from a small bucket table.  They cost a few
elementwise ops to make and L x L to hold, and they stay live from the first
layer to the last — often the one thing the chunk search cannot cut.

This pass finds every *rematerializable* node: its op is cheap (at most
``max_flops_per_element`` FLOPs per output element, and its record allows
recomputation), its output is large (at least ``min_fraction`` of the
unchunked peak), and each input is small, itself rematerializable, or held
anyway until the output's last reader (the residual stream a normalization
reads: recomputing the norm at each projection holds nothing more).  Every
reader of such a value outside that set gets its own copy of the chain that
computes it, placed right before the reader; the originals then have no
readers and are dropped.  The value now lives only around each reader — and
since the copy sits right before its reader, the chunk search can pull it into
the reader's loop, where it is computed one slice at a time (``arange``
and ``full`` make any slice of their output, see :mod:`chunkc.ir.dims`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..ir.graph import Graph, Node, Value
from ..ir.liveness import last_use
from ..ir.sizes import evaluate
from .options import SearchKnobs
from .rewrite import copy_leaves


@dataclass(frozen=True)
class RematOptions:
    max_flops_per_element: float = 8.0  # "cheap": elementwise, comparisons, gathers, shape ops
    min_fraction: float = 1 / 64  # "large": at least this share of the unchunked peak
    # autochunk also plans with "large" and "small" measured against a lower reference, the budget
    # but not below these shares of the unchunked peak: a mask of 1% of a peak made of L x L scores
    # is large beside a budget of 1% of it; against a few bytes every cheap value would be large,
    # and recomputing all of them before every reader leaves the search less to chunk
    lower_references: tuple[float, ...] = (1 / 8, 1 / 64)


@dataclass
class RematResult:
    graph: Graph
    copies: dict[str, str] = field(default_factory=dict)  # copied node -> the node it copies
    values: list[str] = field(default_factory=list)  # values now recomputed at each reader

    def describe(self) -> list[str]:
        if not self.values:
            return []
        readers = len({c for c in self.copies})
        return [f"rematerialized {', '.join('%' + v for v in self.values)}: "
                f"{readers} node(s) recomputed right before their readers instead of held"]


def rematerializable(graph: Graph, sizes: Mapping[str, int], peak_bytes: int,
                     options: RematOptions = RematOptions()) -> set[Node]:
    """The nodes whose outputs are large, cheap to compute, and made from small values."""
    threshold = max(int(peak_bytes * options.min_fraction), 1)
    last = last_use(graph)
    out: set[Node] = set()
    for node in graph.nodes:
        if not node.op.recompute or not node.outputs:
            continue
        nbytes = [o.type.nbytes(sizes) for o in node.outputs]
        if max(nbytes) < threshold:
            continue
        elements = sum(evaluate(o.type.numel(), sizes) for o in node.outputs)
        if evaluate(node.flops(), sizes) > options.max_flops_per_element * max(elements, 1):
            continue
        # each input is small, rematerializable itself, or held anyway until the output's
        # last reader (a normalization of the residual stream, which the residual add reads later)
        done = max(last[o] for o in node.outputs)
        if all(v.producer in out or v.type.nbytes(sizes) < threshold or last[v] >= done for v in node.inputs):
            out.add(node)
    return out


def recompute_chain(graph: Graph, sizes: Mapping[str, int], value: str,
                    max_nodes: int = SearchKnobs.recompute_nodes) -> set[Node] | None:
    """The nodes to recompute, at each reader of ``value``, so that it is not held whole: its
    producer and, backwards, the producer of every input that is neither small beside it (at
    most half its bytes: holding that input longer is the price) nor held anyway until its last
    reader; None when that chain passes a node whose record forbids recomputation or that has
    several outputs, or holds more than ``max_nodes`` nodes.  Any cost: for a value a plan's
    floor holds whole (chunkc.passes.autochunk), not for every value as :func:`rematerializable`."""
    try:
        v = graph.value(value)
    except KeyError:
        return None
    if v.producer is None or v in graph.outputs:
        return None
    last = last_use(graph)
    limit = v.type.nbytes(sizes) // 2
    chain: set[Node] = set()
    stack = [v.producer]
    while stack:
        node = stack.pop()
        if node in chain:
            continue
        if not node.op.recompute or len(node.outputs) != 1 or len(chain) >= max_nodes:
            return None
        chain.add(node)
        for u in node.inputs:
            if u.producer is not None and u.type.nbytes(sizes) > limit and last[u] < last[v]:
                stack.append(u.producer)
    return chain


def rematerialize(graph: Graph, sizes: Mapping[str, int], peak_bytes: int,
                  options: RematOptions = RematOptions(), members: set[Node] | None = None) -> RematResult:
    """A copy of ``graph`` where each rematerializable value (or each value of ``members``,
    when given: e.g. a :func:`recompute_chain`) is recomputed before each reader."""
    if members is None:
        members = rematerializable(graph, sizes, peak_bytes, options)
    if not members:
        return RematResult(graph)
    position = {n: i for i, n in enumerate(graph.nodes)}
    users = graph.users()
    # the member values each outside reader needs, copied before it when that moves anything
    wanted: dict[Node, list[Value]] = {}
    keep: set[Node] = set()  # members that stay where they are
    for node in graph.nodes:
        if node in members:
            continue
        for v in dict.fromkeys(v for v in node.inputs if v.producer in members):
            if _moves(graph.nodes, position, members, users, v, node):
                wanted.setdefault(node, []).append(v)
            else:
                keep.update(_chain(v, members, position))
    for v in graph.outputs:
        if v.producer in members:
            keep.update(_chain(v, members, position))
    if not wanted:
        return RematResult(graph)

    g, vmap = copy_leaves(graph)
    result = RematResult(g)
    remat_values: dict[str, None] = {}
    for node in graph.nodes:
        if node in members and node not in keep:
            continue
        local = dict(vmap)
        for v in wanted.get(node, []):
            for member in _chain(v, members, position):
                if member.outputs[0] in local and local[member.outputs[0]] is not vmap.get(member.outputs[0]):
                    continue  # copied already for another value this reader needs
                copy = g.add_node(member.op, [local[u] for u in member.inputs], member.attrs,
                                  name=f"{member.name}_remat", source=member.source)
                local.update(zip(member.outputs, copy.outputs))
                result.copies[copy.name] = member.name
            remat_values[v.name] = None
        new = g.add_node(node.op, [local[v] for v in node.inputs], node.attrs, name=node.name,
                         output_names=[o.name for o in node.outputs], source=node.source)
        vmap.update(zip(node.outputs, new.outputs))
    g.set_outputs(*[vmap[v] for v in graph.outputs])
    result.values = list(remat_values)
    return result


def _chain(v: Value, members: set[Node], position: Mapping[Node, int]) -> list[Node]:
    """The member nodes ``v`` depends on through members only, in schedule order."""
    seen: set[Node] = set()
    stack = [v.producer]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(u.producer for u in n.inputs if u.producer in members)
    return sorted(seen, key=position.__getitem__)


def _moves(nodes: list[Node], position: Mapping[Node, int], members: set[Node],
           users: Mapping[Value, list[Node]], v: Value, reader: Node) -> bool:
    """Whether copying ``v``'s chain right before ``reader`` changes anything: a value of the
    chain has another reader, or something else runs between the chain and the reader."""
    chain = _chain(v, members, position)
    inside = set(chain) | {reader}
    if any(u not in inside for n in chain for o in n.outputs for u in users[o]):
        return True
    between = nodes[position[chain[0]] + 1: position[reader]]
    return any(n not in members for n in between)


__all__ = ["RematOptions", "RematResult", "recompute_chain", "rematerializable", "rematerialize"]
