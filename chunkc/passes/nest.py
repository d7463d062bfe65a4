"""Nested chunk loops: an outer loop over rows with inner loops that accumulate over another axis.

A loop over query rows reads attention's keys and values whole: they have no query axis.
Split over its keys (chunkc.ir.ops.attention_keys), attention accumulates over them, so
inside each outer iteration an *inner* loop (ChunkRegion.inner) can run over key rows,
recomputing each key chunk from the layer input, and merge the partial results into the
outer chunk's queries.  No L x hidden tensor of keys or values exists at any time.

:func:`nested_plan` (the whole graph; autochunk's last fallback) and :func:`nest_loops` (one
region) build such regions from the records alone: in a loop that reads the input 0 of a
node *whole* where that node's record accumulates over an axis of it (:func:`row_reading`),
the node becomes the end of an inner loop; the values it (and its record's partners) reads are
recomputed in that inner loop from the values held anyway (graph inputs, weights, values
read after the loop), by a copy of their producer chain placed right before the node, so
that each inner loop has chains of its own.  A causal record (``Accumulation.offset_attr``)
lets the inner loop stop at the outer chunk's last row (``ChunkRegion.stop_at``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from ..errors import ChunkcError
from ..ir.dims import LOOP_STOP
from ..ir.graph import Graph, Node, Value
from ..ir.sizes import Size, evaluate, sizes_equal
from .accumulate import accumulating_end, sliced_axes
from .plan import ChunkRegion, Plan
from .search import GraphIndex, candidate_axes, walk_regions

# Nodes of one recomputed chain, at most.  A pre-norm rotary layer's keys and values need 35
# after rematerialization: RMS norm (pow, mean, add, rsqrt, two muls), the projections with
# their views, rotate_half (two slices, neg, concat) and its cos/sin tables from the positions.
MAX_CHAIN = 48


def _chain(graph: Graph, roots: Sequence[Value], held_after: int, max_nodes: int = MAX_CHAIN) -> list[Node] | None:
    """The producers of ``roots`` back to values held anyway (graph inputs, weights, values read
    at or after schedule position ``held_after``), in schedule order; None when a node of it
    must not be recomputed or it is longer than ``max_nodes``."""
    position = {n: i for i, n in enumerate(graph.nodes)}
    last = {}
    for n in graph.nodes:
        for v in n.inputs:
            last[v] = position[n]
    outputs = set(graph.outputs)
    chain: set[Node] = set()
    stack = [v.producer for v in roots if v.producer is not None]
    while stack:
        node = stack.pop()
        if node in chain:
            continue
        if not node.op.recompute or len(chain) >= max_nodes:
            return None
        chain.add(node)
        for u in node.inputs:
            if u.producer is not None and u not in outputs and last.get(u, -1) < held_after:
                stack.append(u.producer)
    return sorted(chain, key=position.__getitem__)


def _copy_chain(graph: Graph, chain: list[Node], reader: Node, positions: Sequence[int], tag: str) -> list[str]:
    """Copies of ``chain`` placed right before ``reader``, which reads the copies at ``positions``;
    the copies' names."""
    made: dict[Value, Value] = {}
    names = []
    for node in chain:
        copy = graph.add_node(node.op, [made.get(v, v) for v in node.inputs], dict(node.attrs),
                              name=f"{node.name}_{tag}", before=reader, source=node.source)
        names.append(copy.name)
        for a, b in zip(node.outputs, copy.outputs):
            made[a] = b
    for p in positions:
        v = reader.inputs[p]
        if v in made:
            graph.set_input(reader, p, made[v])
    return names


def row_reading(node: Node) -> tuple[int, object] | None:
    """(axis, accumulation) when ``node``'s record accumulates over an axis of its input 0 and
    carries an output axis from another input that it does not slice with input 0 (the
    queries of attention split over its keys): a loop over that axis reads input 0 whole."""
    if not node.inputs or len(node.outputs) != 1:
        return None
    for axis in range(node.inputs[0].rank):
        how = accumulating_end(node, axis)
        if how is None:
            continue
        sliced = set(sliced_axes(axis, how))
        for flow in node.dims()[0]:
            if flow.kind == "carry" and any(s.input not in sliced for s in flow.sources) and \
                    all(s.input != 0 for s in flow.sources):
                return axis, how
    return None


def _copy_chains(g: Graph, max_nodes: int = MAX_CHAIN) -> list[tuple[list[str], dict[str, list[str]], set[str]]]:
    """Copy, for every node that :func:`row_reading` finds, the producer chain of the values it
    accumulates over, right before it (see the module docstring); dead originals are dropped.
    Returns one group per accumulated value (attention's keys, read by both halves), in
    schedule order: (its readers, each reader's copies, the values the copies read that were
    made before them, held anyway)."""
    readers: dict[Value, list[Node]] = {}
    for n in g.nodes:
        if row_reading(n) is not None:
            readers.setdefault(n.inputs[0], []).append(n)
    groups = []
    for j, (_, nodes) in enumerate(readers.items()):
        last = g.position(nodes[-1])
        made: dict[str, list[str]] = {}
        for k, node in enumerate(nodes):
            axis, how = row_reading(node)
            positions = list(sliced_axes(axis, how))
            chain = _chain(g, [node.inputs[p] for p in positions], last + 1, max_nodes)
            if chain is None:
                raise ChunkcError(f"nest_loops: the inputs of node {node.name} ({node.op.name}) cannot be "
                                  f"recomputed in an inner loop (a node that must not be recomputed, or more than "
                                  f"{max_nodes} nodes)")
            made[node.name] = _copy_chain(g, chain, node, positions, f"inner{j}_{k}")
        groups.append(([n.name for n in nodes], made))
    g.dce()
    out = []
    for names, made in groups:
        copies = {c for cs in made.values() for c in cs if g.has_name(c)}
        held = {v.name for c in copies for v in g.node(c).inputs
                if v.producer is not None and v.producer.name not in copies}
        out.append((names, {k: [c for c in v if g.has_name(c)] for k, v in made.items()}, held))
    return out


def _nest_group(g: Graph, end: str, names: list[str], made: dict[str, list[str]], held: set[str],
                chunk: Size, inner_chunk: Size) -> tuple[Graph, ChunkRegion] | None:
    """The region ending at node ``end`` over rows of its output that runs the readers
    ``names`` with their copies ``made`` as inner loops (the longest such region whose loop
    makes none of the ``held`` values the copies read), and the graph reordered for it; None
    when there is none."""
    idx = GraphIndex(g)
    end_pos = g.position(g.node(end))
    need = {g.position(g.node(n)) for n in names}
    held_at = {g.position(g.value(v).producer) for v in held}
    copies = {g.node(c) for cs in made.values() for c in cs}
    outer = None
    for axis in candidate_axes(g.node(end)):
        for cand in walk_regions(idx, end_pos, axis):
            if need <= set(cand.loop) and not held_at & set(cand.loop) and cand.start > max(held_at, default=-1) \
                    and not cand.halos:
                outer = cand
        if outer is not None:
            break
    if outer is None:
        return None
    order: list[Node] = []
    spans: list[list[Node]] = []
    for i in outer.loop:
        n = g.nodes[i]
        if n in copies:
            continue
        if n.name in made:
            span = [g.node(c) for c in made[n.name]]
            spans.append(span + [n])
            order.extend(span)
        order.append(n)
    hoisted = [g.nodes[i] for i in outer.hoisted if g.nodes[i] not in copies]
    before = [n for n in g.nodes[:outer.start] if n not in copies]
    after = [n for n in g.nodes[outer.end + 1:] if n not in copies]
    g2 = g.reordered([n.name for n in before + hoisted + order + after])
    region = outer.to_region(g, chunk)
    inner, whole = [], set(region.whole_reads)
    for span in spans:
        r = _inner_region(g2, [n.name for n in span], inner_chunk, region)
        inner.append(r)
        for name in r.nodes:  # a value both loops slice along one axis: the inner loop slices all of it
            for p, v in enumerate(g2.node(name).inputs):
                a, b = region.axis_of(v.name), r.axis_of(v.name)
                if a is not None and b is not None and a.axis == b.axis:
                    whole.add((name, p))
    region = replace(region, nodes=tuple(n.name for n in order), whole_reads=tuple(sorted(whole)), inner=tuple(inner))
    return g2, region


def nest_loops(graph: Graph, end: str, axis: int, chunk: Size, inner_chunk: Size) -> Plan:
    """A plan of one region ending at node ``end`` (its output sliced along ``axis``) with an
    inner loop at each node of it that reads its input 0 whole and accumulates over it (see
    the module docstring).  ``chunk``: the outer loop's units per iteration; ``inner_chunk``:
    each inner loop's."""
    g = graph.copy()
    groups = _copy_chains(g)
    for names, made, held in groups:
        built = _nest_group(g, end, names, made, held, chunk, inner_chunk)
        if built is not None and built[1].axis_of(g.node(end).outputs[0].name).axis == axis:
            return Plan(graph=built[0], regions=(built[1],))
    raise ChunkcError(f"nest_loops: no chunk loop ending at node {end} along axis {axis} runs a node that reads "
                      "a value whole that it accumulates over; nothing to nest")


def nested_plan(graph: Graph, sizes: Mapping[str, int], budget_bytes: int, backend: str,
                max_nodes: int = MAX_CHAIN, time_model: Callable[[Graph], Any] | None = None) -> tuple[Plan, int] | None:
    """A plan of the whole graph with nested loops at every value read whole by nodes that
    accumulate over it (see the module docstring), and flat loops over what they leave: the
    largest chunk, the same for every loop, whose estimated peak meets ``budget_bytes``, then
    the largest for the inner loops at that chunk; the inner chunk is at least ``extent / chunk``
    (:func:`least_inner`), so that no loop runs more chunk bodies than the extent.  With
    ``time_model`` (graph -> chunkc.passes.cost.TimeModel), the pair predicted fastest among
    that one and smaller outer chunks (powers of two, each with its largest inner chunk): each
    outer iteration recomputes the keys, so fewer, longer ones cost less, unless the inner
    chunk left beside them is so short that its bodies' overhead outweighs that.
    Returns (the plan, or the lowest one when none meets it; its estimated peak), or None
    when the graph has nothing to nest."""
    from .memory import MemoryModel
    g = graph.copy()
    try:
        groups = _copy_chains(g, max_nodes)
    except ChunkcError:
        return None
    if not groups:
        return None
    regions: list[ChunkRegion] = []
    for k, (names, made, held) in enumerate(groups):
        if k + 1 < len(groups):  # up to the value the next group's chains read, made last
            nxt = groups[k + 1][2]
            ends = sorted((g.value(v).producer for v in nxt), key=g.position)
            end = ends[-1].name if ends else g.nodes[g.position(g.node(groups[k + 1][0][0])) - 1].name
        else:
            end = g.nodes[-1].name
        after = g.position(g.node(regions[-1].nodes[-1])) + 1 if regions else 0
        g = _held_first(g, held, after)
        built = _nest_group(g, end, names, made, held, 1, 1)
        if built is None:
            return None
        g, region = built
        regions.append(region)
    regions = [choose_hosts(g, r, sizes) for r in _fill(g, regions)]  # outputs written over dying inputs
    extent = max((evaluate(r.extent, sizes) for r in regions), default=1)
    plan = Plan(graph=g, regions=tuple(regions), sizes=dict(sizes), budget_bytes=budget_bytes, backend=backend)

    model = MemoryModel(g, sizes, backend)  # one graph, many chunk sizes

    def at(c: int, inner: int) -> tuple[Plan, int]:
        trial = replace(plan, regions=tuple(_with_chunk(r, c, inner) for r in regions))
        return trial, model.peak(trial)

    def fits(c: int, inner: int) -> bool:
        return at(c, inner)[1] <= budget_bytes

    def largest(lo: int, fits) -> int:
        hi = extent
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        return lo

    # The loops run (extent / chunk) x (extent / inner) chunk bodies; an inner chunk of at least
    # extent / chunk keeps that at most the extent, as a flat loop of one-row chunks (without the
    # bound: quadratic, e.g. a fuzzed 384-row attention at a budget just above its output took
    # 1-row outer and 2-row inner chunks, 147,456 bodies, minutes of run time and gigabytes of
    # allocator events when measured).
    outers = sorted({min(1 << k, extent) for k in range(extent.bit_length() + 1)})
    lowest = min((at(c, least_inner(c, extent)) for c in outers), key=lambda made: made[1])
    if lowest[1] > budget_bytes:
        return lowest
    # the largest chunk for every loop, then the largest for the inner loops beside it (fewer,
    # longer key chunks: each one recomputes its keys for a whole outer chunk of queries);
    # where that pair breaks the bound, the largest outer chunk (a power of two) that keeps it
    c = largest(1, lambda n: fits(n, n)) if fits(1, 1) else 0
    if not c or c * largest(c, lambda n: fits(c, n)) < extent or not fits(c, least_inner(c, extent)):
        c = max(o for o in outers if fits(o, least_inner(o, extent)))
    chosen = at(c, largest(least_inner(c, extent), lambda n: fits(c, n)))
    if time_model is None:
        return chosen
    from .cost import plan_seconds
    priced = time_model(g)
    best, best_s = chosen, plan_seconds(priced, chosen[0])
    for o in sorted((o for o in outers if max(1, c // 16) <= o < c), reverse=True):
        if not fits(o, least_inner(o, extent)):
            continue
        trial = at(o, largest(least_inner(o, extent), lambda n: fits(o, n)))
        t = plan_seconds(priced, trial[0])
        if t < best_s:
            best, best_s = trial, t
    return best


def _held_first(g: Graph, held: set[str], after: int) -> Graph:
    """``g`` with the producers of the ``held`` values, and theirs, scheduled before the other
    nodes from schedule position ``after`` on (the ones before it keep their places): the
    group's outer loop starts after the last of them, so nodes scheduled between them (a layer
    norm's statistics before the position tables its key chains read) would run unchunked."""
    tail = g.nodes[after:]
    inside = set(tail)
    needed: set[Node] = set()
    stack = [g.value(v).producer for v in held]
    while stack:
        n = stack.pop()
        if n is None or n in needed or n not in inside:
            continue
        needed.add(n)
        stack.extend(u.producer for u in n.inputs)
    if not needed:
        return g
    order = g.nodes[:after] + [n for n in tail if n in needed] + [n for n in tail if n not in needed]
    return g.reordered([n.name for n in order])


def least_inner(chunk: int, extent: int) -> int:
    """The smallest inner chunk nested loops take beside an outer ``chunk``: the outer chunk, and
    at least one that makes an inner loop run at most ``extent`` chunk bodies over all the outer
    iterations (ceil(extent / chunk) outer ones, each of at most extent // that many)."""
    outer = -(-extent // max(chunk, 1))
    return min(extent, max(chunk, -(-extent // max(extent // outer, 1))))


def _with_chunk(r: ChunkRegion, chunk: int, inner: int) -> ChunkRegion:
    return replace(r, chunk_size=chunk, inner=tuple(replace(q, chunk_size=inner) for q in r.inner))


def _fill(g: Graph, regions: list[ChunkRegion]) -> list[ChunkRegion]:
    """``regions`` and, over each span of the schedule they leave, the longest flat loop ending at
    the span's last node that stays in the span (whose nodes are in schedule order already)."""
    taken = {n for r in regions for n in r.nodes}
    idx = GraphIndex(g)
    spans, start = [], None
    for i, n in enumerate(g.nodes):
        if n.name not in taken and start is None:
            start = i
        elif n.name in taken and start is not None:
            spans.append((start, i - 1))
            start = None
    if start is not None:
        spans.append((start, len(g.nodes) - 1))
    out = list(regions)
    for lo, hi in spans:
        best = None
        for axis in candidate_axes(g.nodes[hi]):
            for cand in walk_regions(idx, hi, axis, min_start=lo):
                if not cand.hoisted and not cand.halos and list(cand.loop) == list(range(cand.start, hi + 1)) and \
                        (best is None or len(cand.loop) > len(best.loop)):
                    best = cand
        if best is not None:
            out.append(best.to_region(g, 1))
    position = {n.name: i for i, n in enumerate(g.nodes)}
    return sorted(out, key=lambda r: position[r.nodes[0]])


def _inner_region(g: Graph, names: list[str], chunk: Size, outer: ChunkRegion) -> ChunkRegion:
    """The inner loop over nodes ``names`` (a recomputed chain, then the accumulating node)."""
    end = g.node(names[-1])
    idx = GraphIndex(g)
    for key_axis in range(end.inputs[0].rank):
        if accumulating_end(end, key_axis) is None:
            continue
        for cand in walk_regions(idx, g.position(end), key_axis, accumulate=True):
            if sorted(g.nodes[i].name for i in cand.loop) == sorted(names) and list(cand.accumulators) == [end.outputs[0]]:
                r = cand.to_region(g, chunk)
                how = accumulating_end(end, key_axis)
                stop = None
                if how.offset_attr is not None and _rows_match(end, key_axis, r, outer):
                    stop = LOOP_STOP  # keys past the outer chunk's last query row attend none of it
                return replace(r, stop_at=stop)
    raise ChunkcError(f"nest_loops: no inner loop runs exactly {', '.join(names)}")


def _rows_match(node: Node, key_axis: int, inner: ChunkRegion, outer: ChunkRegion) -> bool:
    """Whether a placed accumulation (its record's ``offset_attr``: key j is used by row i when
    j <= i, counted from the offsets) may stop at the outer chunk's stop: the node's position
    attributes are all 0, and both loops count the same rows in the same units."""
    if any(node.attrs.get(a, 0) != 0 for a in node.op.size_attrs):
        return False
    c_in = inner.axis_of(node.inputs[0].name)
    c_out = outer.axis_of(node.outputs[0].name)
    return c_in is not None and c_out is not None and c_in.axis == key_axis and c_in.unit == c_out.unit and \
        sizes_equal(inner.extent, outer.extent)


def choose_hosts(graph: Graph, region: "ChunkRegion", sizes: Mapping[str, int]) -> "ChunkRegion":
    """``region`` with a host picked for each output that may have one (the rule
    chunkc.passes.loop_buffers.host_problem, asked as the plan checker asks it:
    :func:`chunkc.passes.plan_index.reuse_problem`; the first legal region input in schedule
    order; none twice; accumulators never): for regions built whole rather than by the
    selection.  A host that causal inner loops read (``loop_buffers.reads_rows_behind``) is
    taken with the chunks run last first, in a region that merges nothing across its chunks.
    ``sizes``: where views are followed."""
    from .plan_index import PlanIndex, reuse_problem

    plain = replace(region, reuse=())
    view = PlanIndex.build(graph, Plan(graph, (plain,), sizes=dict(sizes))).regions[0]
    read_whole = {n.inputs[k] for n in view.nodes for k in range(len(n.inputs)) if (n.name, k) in view.whole_reads}
    # running the chunks last first is legal for a loop that merges nothing across its chunks
    may_reverse = not view.accumulators and not view.has_halo
    pairs: list[tuple[str, str]] = []
    last_first = region.last_first
    taken: set[Value] = set()
    for o in view.outputs:
        if o in view.accumulators:
            continue
        for x in view.inputs:
            if x in taken:
                continue
            asked = replace(region, last_first=last_first or may_reverse)
            if not reuse_problem(graph, asked, o, x, view.chunk, view.inputs, view.node_set, view.whole_reads, sizes):
                pairs.append((o.name, x.name))
                taken.add(x)
                last_first = last_first or x in read_whole
                break
    return replace(region, reuse=tuple(pairs), last_first=last_first)


__all__ = ["choose_hosts", "nest_loops", "nested_plan", "row_reading"]
