"""Difference tables: a value that depends only on ``j - i`` is computed once per difference.

Relative position encodings are built from ``D = arange(L)[None, :] - arange(L)[:, None]``
(``D[i, j] = j - i``) through a chain of elementwise ops (T5's buckets: abs, comparisons, a
float log, casts, a minimum, a where; ALiBi: ``|j - i| * slope``), often followed by a lookup
in a small table (T5's ``[num_buckets, heads]`` embedding).  Run on ``D`` the chain costs each
op once per element of an ``L x L`` matrix, although it only ever sees ``L_i + L_j - 1``
different inputs.  And rematerialization (:mod:`chunkc.passes.remat`) recomputes the whole
chain per chunk at each reader, so a model whose layers share the bias runs it once per layer.

This pass finds every value ``D`` whose element formula (:mod:`chunkc.ir.elements`, exact
integers only) is ``idx_a - idx_b + c`` on two axes of sizes ``L_a``, ``L_b`` (every other
axis of size 1), and the *region* of nodes that act elementwise on it — judged by their
dimension records, not their names: one output of ``D``'s shape whose every axis ``k``
carries axis ``k`` of each region input (ratio 1, not positional), every other input of
size 1 on every axis and not computed from ``D``.  The region is run once on the 1-D
``t = arange(c - (L_b - 1), c + L_a)`` (every value ``D`` takes, in order), giving tables,
and each value the region hands outside is read back as the Toeplitz matrix of its table:
``toeplitz(table)[i, j] = table[j - i + L_b - 1]`` (``chunkc.ir.ops.index``: the table's
sliding windows, last first, copied once — no index tensor, no gather).  Its row axis is
positional (a slice of rows moves its ``base``), so rematerialization makes each chunk's
rows from the whole O(L) table: one copy of ``[chunk, L_a]`` elements per chunk instead of
the chain.

A reader outside the region that *gathers* by a region value — its record carries the
value's axes ``0..r-1`` to its first ``r`` output axes and nothing else to them, its other
inputs not computed from ``D`` (an embedding from a small table) — is run on the table
too, so its output is the Toeplitz matrix of an ``[L_a + L_b - 1, ...]`` table (the further
axes moved first, the table made contiguous: T5's ``permute`` of the lookup to
``[heads, L, L]`` then finds the matrix in its layout and its ``contiguous`` copies nothing).
The matrix's element formula is the table's at ``j - i + c``, so an exact chain (a mask)
is still recognised by rewrites that read formulas.

Limits: the region grows only through nodes with an input in it, so a ``full`` of ``D``'s
shape made from attributes alone (not ``full_like``) ends it (cloning it onto the 1-D table
would need its shape attribute rewritten); ``D`` must have exactly two axes of size other
than 1; a region of fewer than :data:`MIN_TABULATED` nodes (gather readers counted) is
left alone (a single op is about as cheap as the copy that would replace it).

    g, names = chunkc.passes.difference_tables.tabulate_differences(g)   # canonicalize runs it
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from ..ir.dtypes import DType
from ..ir.elements import ElementAnalysis, exact, index
from ..ir.graph import Graph, Node, Value
from ..ir.sizes import normalize
from ..ir.types import TensorType

MIN_TABULATED = 2  # nodes a table must take off the L x L work to be worth its copy


@dataclass
class DifferenceRegion:
    """One match: ``root`` is ``idx_a - idx_b + offset``; ``nodes`` act elementwise on it."""

    root: Value
    a: int  # the axis of the index added (j)
    b: int  # the axis of the index subtracted (i)
    offset: int
    nodes: list[Node] = field(default_factory=list)  # in schedule order
    gathers: list[Node] = field(default_factory=list)  # readers run on a table (embedding lookups)

    @property
    def values(self) -> set[Value]:
        return {self.root} | {n.outputs[0] for n in self.nodes}


def tabulate_differences(graph: Graph) -> tuple[Graph, list[str]]:
    """A copy of ``graph`` with every difference region computed once per difference (see the
    module docstring), and the names of the roots rewritten; ``graph`` itself when none is."""
    regions = find_regions(graph)
    if not regions:
        return graph, []
    result = graph.copy()
    for region in regions:
        _rewrite(result, region)
    result.dce()
    return result, [r.root.name for r in regions]


def find_regions(graph: Graph) -> list[DifferenceRegion]:
    """Every difference region worth tabulating, on ``graph``'s own values."""
    analysis = ElementAnalysis(graph)
    users = graph.users()
    taken: set[Value] = set()
    found = []
    for node in graph.nodes:
        for v in node.outputs:
            if v in taken or not _candidate(v, users):
                continue
            axes = difference_axes(analysis.of(v), v.type)
            if axes is None:
                continue
            region = _grow(graph, users, DifferenceRegion(v, *axes))
            if len(region.nodes) + len(region.gathers) >= MIN_TABULATED:
                found.append(region)
                taken |= region.values
    return found


def _candidate(v: Value, users) -> bool:
    return v.dtype != DType.bool and exact(v.type) and v.rank >= 2 and bool(users.get(v))


def difference_axes(formula, t: TensorType) -> tuple[int, int, int] | None:
    """``(a, b, c)`` when ``formula`` is ``idx_a - idx_b + c`` for an integer ``c``, on two axes
    of ``t`` of size other than 1 with every other axis of size 1; else None."""
    long = [k for k, s in enumerate(t.shape) if not (isinstance(s, int) and s == 1)]
    if len(long) != 2:
        return None
    for a, b in (long, long[::-1]):
        rest = sympy.expand(formula - index(a) + index(b))
        if rest.is_Integer:
            return a, b, int(rest)
    return None


def _downstream(root: Value, users) -> set[Value]:
    seen, stack = {root}, [root]
    while stack:
        for n in users.get(stack.pop(), []):
            for o in n.outputs:
                if o not in seen:
                    seen.add(o)
                    stack.append(o)
    return seen


def _size_one(v: Value) -> bool:
    return all(isinstance(s, int) and s == 1 for s in v.shape)


def _grow(graph: Graph, users, region: DifferenceRegion) -> DifferenceRegion:
    """The nodes after ``region.root`` that act elementwise on it, then the gathers reading them."""
    reach = _downstream(region.root, users)
    inside = {region.root}
    shape = region.root.shape
    for node in graph.nodes[graph.position(region.root.producer) + 1:] if region.root.producer else graph.nodes:
        if any(v in inside for v in node.inputs) and _elementwise(node, inside, reach, shape):
            region.nodes.append(node)
            inside.add(node.outputs[0])
    region_nodes = set(region.nodes)
    for v in inside:
        for reader in dict.fromkeys(users.get(v, [])):
            if reader not in region_nodes and _gathers(reader, inside, reach):
                region.gathers.append(reader)
    region.gathers = sorted(dict.fromkeys(region.gathers), key=graph.position)
    return region


def _elementwise(node: Node, inside: set[Value], reach: set[Value], shape) -> bool:
    """Whether ``node`` computes each element of its one output of ``shape`` from the same
    element of its region inputs, reading its other inputs (size 1, not made from the root) whole."""
    if len(node.outputs) != 1 or tuple(node.outputs[0].shape) != tuple(shape):
        return False
    region_inputs = set()
    for p, v in enumerate(node.inputs):
        if v in inside:
            if tuple(v.shape) != tuple(shape):
                return False
            region_inputs.add(p)
        elif v in reach or not _size_one(v):
            return False
    flows = node.dims()[0]
    for k, flow in enumerate(flows):
        if flow.kind != "carry" or flow.positional:
            return False
        sources = {(s.input, s.axis) for s in flow.sources if s.ratio == 1}
        if len(sources) != len(flow.sources) or any(axis != k for _, axis in sources):
            return False
        if not {(p, k) for p in region_inputs} <= sources:
            return False
    return True


def _gathers(node: Node, inside: set[Value], reach: set[Value]) -> bool:
    """Whether ``node`` looks up each element of one region input (a table indexed by it): its
    first r output axes carry exactly that input's r axes, its later axes none of them, and
    its other inputs are not made from the root."""
    positions = [p for p, v in enumerate(node.inputs) if v in inside]
    if len(node.outputs) != 1 or len(positions) != 1:
        return False
    p = positions[0]
    if any(v in reach for q, v in enumerate(node.inputs) if q != p):
        return False
    r = node.inputs[p].rank
    flows = node.dims()[0]
    if len(flows) < r or tuple(node.outputs[0].shape[:r]) != tuple(node.inputs[p].shape):
        return False
    for k, flow in enumerate(flows):
        mine = [s for s in flow.sources if s.input == p]
        if k < r:
            if flow.kind != "carry" or flow.positional or \
                    [(s.input, s.axis, s.ratio) for s in flow.sources] != [(p, k, 1)]:
                return False
        elif mine:
            return False
    return True


# -- the rewrite ---------------------------------------------------------------------------


def _rewrite(g: Graph, found: DifferenceRegion) -> None:
    """Build the tables in ``g`` (a copy of the graph ``found`` was made on) and point every
    reader outside the region at Toeplitz matrices of them."""
    root = g.value(found.root.name)
    nodes = [g.node(n.name) for n in found.nodes]
    gathers = [g.node(n.name) for n in found.gathers]
    first = nodes[0] if nodes else gathers[0]
    source = root.producer.source if root.producer is not None else first.source
    size_a, size_b, c = root.shape[found.a], root.shape[found.b], found.offset
    # every value the root takes, in order: t[p] = c - (L_b - 1) + p
    table_input = g.add_node("arange", [], {"start": normalize(c - (size_b - 1)), "end": normalize(c + size_a),
                                            "step": 1, "dtype": root.dtype},
                             name=f"{root.name}_values", before=first, source=source).outputs[0]
    tables: dict[Value, Value] = {root: table_input}
    for node in nodes:  # the region once, on the 1-D table
        ins = [tables[v] if v in tables else _scalar(g, v, node) for v in node.inputs]
        copy = g.add_node(node.op, ins, node.attrs, name=f"{node.name}_table", before=node, source=node.source)
        tables[node.outputs[0]] = copy.outputs[0]
    inside = set(tables)
    for node in gathers:  # a lookup by a region value: the looked-up table, spread over (i, j)
        ins = [tables[v] if v in inside else v for v in node.inputs]
        table = g.add_node(node.op, ins, node.attrs, name=f"{node.name}_table", before=node,
                           source=node.source).outputs[0]
        g.replace_all_uses(node.outputs[0], _spread(g, table, found, root, node, node.source))
    skip = set(nodes) | set(gathers)
    for v in [root] + [n.outputs[0] for n in nodes]:  # other readers: the value from its table
        readers = [n for n in g.users().get(v, []) if n not in skip]
        if not readers and v not in g.outputs:
            continue
        at = min(readers, key=g.position) if readers else None
        spread = _spread(g, tables[v], found, root, at, v.producer.source if v.producer else source)
        g.replace_all_uses(v, spread, skip=skip)


def _spread(g: Graph, table: Value, found: DifferenceRegion, root: Value, before: Node | None, source) -> Value:
    """``table`` (axis 0: the root's values in order, then any further axes) read at every
    position of the root: a ``toeplitz`` matrix ``out[i, j] = table[j - i + L_b - 1]`` (the
    table's sliding windows, last first: one copy, no index tensor), its axes put where the
    root's and the further axes' are."""
    where = {"before": before} if before is not None else {}
    rest = table.rank - 1
    if rest:  # the further axes first, the differences last: toeplitz reads the last axis
        table = g.add_node("permute", [table], {"dims": tuple(range(1, rest + 1)) + (0,)}, source=source,
                           **where).outputs[0]
        # a contiguous table (O(L)) makes a contiguous matrix: the readers' permute back is free
        table = g.add_node("contiguous", [table], source=source, **where).outputs[0]
    size_a, size_b = root.shape[found.a], root.shape[found.b]
    out = g.add_node("toeplitz", [table], {"rows": size_b, "cols": size_a, "base": normalize(size_b - 1)},
                     name=f"{root.name}_toeplitz", source=source, **where).outputs[0]
    order = (rest, rest + 1) if found.b < found.a else (rest + 1, rest)  # rows are i (axis b), columns j (axis a)
    dims = order + tuple(range(rest))
    if dims != tuple(range(rest + 2)):
        out = g.add_node("permute", [out], {"dims": dims}, source=source, **where).outputs[0]
    for k in range(root.rank):  # the root's axes of size 1
        if k not in (found.a, found.b):
            out = g.add_node("unsqueeze", [out], {"axis": k}, source=source, **where).outputs[0]
    return out


def _scalar(g: Graph, v: Value, reader: Node) -> Value:
    """A size-1 input of a region node as a 0-d value (so the 1-D table keeps rank 1)."""
    if v.rank == 0:
        return v
    return g.add_node("reshape", [v], {"shape": ()}, name=f"{v.name}_scalar", before=reader,
                      source=reader.source).outputs[0]


__all__ = ["DifferenceRegion", "MIN_TABULATED", "difference_axes", "find_regions", "tabulate_differences"]
