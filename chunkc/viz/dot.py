"""Graphviz dumps of a graph and its chunk regions.

Two views, both returned as DOT source by :func:`to_dot` (no Graphviz needed):

* ``depth=None``: every node, each chunk region a cluster, nodes coloured by the
  bytes of their outputs.
* ``depth=K``: the model's module hierarchy as nested clusters; every module K
  levels down (``model.h.2`` at K=2; levels: :mod:`.grouping`) collapses into one
  box labelled with its node count, its peak live bytes and the regions it holds;
  each connected run of index arithmetic (masks, positions) folds into one box,
  whose edges to its readers are dashed and leave the layout alone.  Nodes in a
  region get that region's border colour.  A 24-layer GPT-2 at ``depth=2`` is a
  few dozen boxes.

Every node and box carries a tooltip (the op with its inputs and attributes, the
types, bytes and source line; for a box its ops and source lines), which an SVG
rendering shows on hover.  ``render_dot`` writes the source and, where Debian's
``dot`` is installed, renders SVG or PNG beside it; otherwise it says how to
render the ``.dot`` file.  Labels are built from sanitized names, types and the
module paths of ``node.source``, and escaped, so no text from a model can break
the DOT syntax.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import ChunkcError
from ..ir.graph import Graph, Node, Value
from ..ir.printer import format_attr
from ..ir.sizes import evaluate, format_size
from ..ir.source import span
from .grouping import connected_groups, dotted, index_arithmetic, module_of, op_summary

_PALETTE = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c"]
_REGION_COLORS = ["#e6550d", "#31a354", "#756bb1", "#d62728", "#8c6d31", "#e377c2", "#17becf", "#bcbd22"]
_TOOLTIP_LIMIT = 1500


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _bytes_label(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def to_dot(graph: Graph, plan=None, sizes: Mapping[str, int] | None = None, max_nodes: int = 4000,
           depth: int | None = None, fold_index: bool = True) -> str:
    """DOT source for ``graph`` (``plan.graph`` when a plan is given).

    ``depth``: None draws every node; an int K >= 1 draws the module view (module
    docstring).  ``fold_index``: in the module view, fold index arithmetic.
    ``max_nodes`` caps the nodes drawn by the flat view.
    """
    view = _View.make(graph, plan, sizes)
    if depth is None:
        return view.flat(max_nodes)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ChunkcError(f"to_dot: depth must be a positive int (module levels to keep), or None; got {depth!r}")
    return view.grouped(depth, fold_index)


@dataclass
class _View:
    graph: Graph
    plan: object
    sizes: dict[str, int]
    known: bool
    peaks: dict[str, int] = field(default_factory=dict)  # node -> the most live bytes during it
    region_of: dict[str, int] = field(default_factory=dict)

    @classmethod
    def make(cls, graph: Graph, plan, sizes) -> "_View":
        if plan is not None:
            graph = plan.graph
            sizes = sizes or plan.sizes
        sizes = dict(sizes or {})
        view = cls(graph, plan, sizes, graph.symbols() <= set(sizes))
        view.region_of = plan.region_of() if plan is not None else {}
        if view.known:
            from ..passes.memory import estimate_memory
            try:
                report = estimate_memory(graph, plan=plan, sizes=sizes)
                view.peaks = {e.node: e.peak_bytes for e in report.timeline}
            except ChunkcError:
                view.peaks = {}
        return view

    # -- pieces shared by both views ------------------------------------------------------
    def nbytes(self, v: Value) -> int | None:
        return v.type.nbytes(self.sizes) if self.known else None

    def out_bytes(self, node: Node) -> int:
        return sum(self.nbytes(o) or 0 for o in node.outputs)

    def header(self) -> list[str]:
        lines = [f'digraph "{_escape(self.graph.name)}" {{',
                 '  graph [rankdir=TB, fontname="Helvetica", fontsize=10];',
                 '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9];',
                 '  edge [color="#777777", arrowsize=0.6];']
        for v in self.graph.inputs:
            tip = f"graph input %{v.name}: {v.type}"
            lines.append(f'  "v_{v.name}" [label="{_escape(v.name)}\\n{_escape(str(v.type))}", shape=oval, '
                         f'fillcolor="#fff2cc", tooltip="{_escape(tip)}"];')
        return lines

    def footer(self, unit_of: Mapping[str, str]) -> list[str]:
        lines = []
        for k, v in enumerate(self.graph.outputs):
            lines.append(f'  "out_{k}" [label="output {k}\\n{_escape(str(v.type))}", shape=oval, '
                         f'fillcolor="#d9ead3", tooltip="graph output {k}: %{_escape(v.name)}"];')
            src = f"v_{v.name}" if v.producer is None else unit_of.get(v.producer.name)
            if src is not None:
                lines.append(f'  "{src}" -> "out_{k}";')
        lines.append("}")
        return lines

    def fill(self, nbytes: int, biggest: int) -> tuple[str, str]:
        color = _PALETTE[min(len(_PALETTE) - 1, int(len(_PALETTE) * nbytes / (biggest + 1)))]
        return color, "white" if color in _PALETTE[5:] else "black"

    def node_tooltip(self, node: Node) -> str:
        ins = ", ".join("%" + v.name for v in node.inputs)
        attrs = ", ".join(f"{k} = {format_attr(v)}" for k, v in node.attrs.items())
        lines = [f"{node.name} = {node.op.name}({ins})" + (f" {{{attrs}}}" if attrs else "")]
        for o in node.outputs:
            size = self.nbytes(o)
            lines.append(f"%{o.name}: {o.type}" + (f" ({_bytes_label(size)})" if size is not None else ""))
        if node.name in self.peaks:
            lines.append(f"live during the node: {_bytes_label(self.peaks[node.name])}")
        if node.name in self.region_of:
            lines.append(f"chunk region {self.region_of[node.name]}")
        src = node.source
        if src is not None and src.where():
            code = src.code()
            lines.append(src.where() + (f": {code}" if code else ""))
        return _clip("\n".join(lines))

    def node_statement(self, node: Node, biggest: int, indent: str = "  ") -> str:
        b = self.out_bytes(node)
        color, font = self.fill(b, biggest)
        mem = f"\\n{_bytes_label(b)}" if self.known else ""
        label = f"{_escape(node.name)}\\n{_escape(node.op.name)} {_escape(str(node.outputs[0].type))}{mem}"
        extra = ""
        k = self.region_of.get(node.name)
        if k is not None:
            label += f"\\nregion {k}"
            extra = f', color="{_REGION_COLORS[k % len(_REGION_COLORS)]}", penwidth=2.5'
        return (f'{indent}"n_{node.name}" [label="{label}", fillcolor="{color}", fontcolor="{font}", '
                f'tooltip="{_escape(self.node_tooltip(node))}"{extra}];')

    def edges(self, unit_of: Mapping[str, str], side: frozenset[str] = frozenset()) -> list[str]:
        """One edge per pair of units a value flows between; those leaving a ``side`` unit (folded
        index arithmetic: masks read by every layer) are dashed and do not shape the layout."""
        seen: dict[tuple[str, str], None] = {}
        for node in self.graph.nodes:
            dst = unit_of.get(node.name)
            if dst is None:
                continue
            for v in node.inputs:
                if v.is_constant:
                    continue
                src = f"v_{v.name}" if v.producer is None else unit_of.get(v.producer.name)
                if src is not None and src != dst:
                    seen.setdefault((src, dst), None)
        dashed = ' [style=dashed, color="#bbbbbb", constraint=false]'
        return [f'  "{a}" -> "{b}"{dashed if a in side else ""};' for a, b in seen]

    # -- every node -------------------------------------------------------------------------
    def flat(self, max_nodes: int) -> str:
        shown_nodes = self.graph.nodes[:max_nodes]
        biggest = max((self.out_bytes(n) for n in self.graph.nodes), default=0) or 1
        lines = self.header()
        clusters: dict[int, list[str]] = {}
        for node in shown_nodes:
            stmt = self.node_statement(node, biggest)
            if node.name in self.region_of:
                clusters.setdefault(self.region_of[node.name], []).append(stmt)
            else:
                lines.append(stmt)
        for k, stmts in clusters.items():
            lines.append(f'  subgraph "cluster_{k}" {{')
            lines.append(f'    label="{_escape(self.region_label(k))}"; style="dashed,filled"; fillcolor="#fdf0e6"; '
                         f'color="{_REGION_COLORS[k % len(_REGION_COLORS)]}";')
            lines.extend("  " + s for s in stmts)
            lines.append("  }")
        unit_of = {n.name: f"n_{n.name}" for n in shown_nodes}
        return "\n".join(lines + self.edges(unit_of) + self.footer(unit_of)) + "\n"

    def region_label(self, k: int) -> str:
        region = self.plan.regions[k]
        chunk, extent = region.chunk_size, region.extent
        if self.known:
            chunk, extent = evaluate(chunk, self.sizes), evaluate(extent, self.sizes)
        else:
            chunk, extent = format_size(chunk), format_size(extent)
        return f"region {k}: chunk {chunk} of {extent}"

    # -- the module view --------------------------------------------------------------------
    def grouped(self, depth: int, fold_index: bool) -> str:
        g = self.graph
        classes: dict[tuple[str, ...], str] = {}
        for n in g.nodes:
            if n.source is not None and n.source.module_class:
                classes.setdefault(module_of(n), n.source.module_class)
        boxes: dict[tuple[str, ...], list[Node]] = {}  # collapsed modules
        loose: dict[tuple[str, ...], list[Node]] = {}  # container -> nodes drawn one by one
        for n in g.nodes:
            levels = module_of(n)
            if len(levels) >= depth:
                boxes.setdefault(levels[:depth], []).append(n)
            else:
                loose.setdefault(levels, []).append(n)
        folds: list[tuple[tuple[str, ...], list[Node]]] = []
        if fold_index:
            index = index_arithmetic(g)
            for container, nodes in loose.items():
                for group in connected_groups(n for n in nodes if n in index):
                    if len(group) >= 2:
                        folds.append((container, group))
        folded = {n for _, group in folds for n in group}

        unit_of: dict[str, str] = {}
        contents: dict[tuple[str, ...], list[str]] = {}  # cluster -> DOT statements (without indent)
        peak_all = max(self.peaks.values(), default=0) or 1
        biggest = max((self.out_bytes(n) for n in g.nodes), default=0) or 1
        for k, (levels, nodes) in enumerate(boxes.items()):
            uid = f"m_{k}"
            for n in nodes:
                unit_of[n.name] = uid
            contents.setdefault(levels[:-1], []).append(self.box(uid, levels, classes.get(levels, ""), nodes,
                                                                 peak_all))
        for k, (container, group) in enumerate(folds):
            uid = f"f_{k}"
            for n in group:
                unit_of[n.name] = uid
            contents.setdefault(container, []).append(self.fold_box(uid, group))
        for container, nodes in loose.items():
            for n in nodes:
                if n not in folded:
                    unit_of[n.name] = f"n_{n.name}"
                    contents.setdefault(container, []).append(self.node_statement(n, biggest, indent=""))
        first: dict[tuple[str, ...], int] = {}  # container -> schedule position of its first node
        for i, n in enumerate(g.nodes):
            levels = module_of(n)
            for k in range(len(levels) + 1):
                first.setdefault(levels[:k], i)
        lines = self.header()
        lines += _clusters((), contents, classes, first, "  ")
        side = frozenset(f"f_{k}" for k in range(len(folds)))
        return "\n".join(lines + self.edges(unit_of, side) + self.footer(unit_of)) + "\n"

    def box(self, uid: str, levels: tuple[str, ...], cls: str, nodes: list[Node], peak_all: int) -> str:
        peak = max((self.peaks.get(n.name, 0) for n in nodes), default=0)
        regions = sorted({self.region_of[n.name] for n in nodes if n.name in self.region_of})
        title = dotted(levels) + (f" ({cls})" if cls else "")
        stats = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}" + (f", peak {_bytes_label(peak)}" if self.peaks else "")
        label = [title, stats]
        if regions:
            label.append(("regions " if len(regions) > 1 else "region ") + ", ".join(map(str, regions)))
        color, font = self.fill(peak, peak_all) if self.peaks else ("#eeeeee", "black")
        tip = [title, stats, "ops: " + op_summary(nodes, top=8)]
        where = span(nodes)
        if where:
            tip.append("source: " + where)
        if self.peaks:
            top = max(nodes, key=lambda n: self.peaks.get(n.name, 0))
            tip.append(f"peak during node {top.name} ({top.op.name})")
        extra = ""
        if regions:
            extra = f', color="{_REGION_COLORS[regions[0] % len(_REGION_COLORS)]}", penwidth=2.5'
        return (f'"{uid}" [label="{_escape(chr(10).join(label))}", shape=box3d, fillcolor="{color}", '
                f'fontcolor="{font}", tooltip="{_escape(_clip(chr(10).join(tip)))}"{extra}];')

    def fold_box(self, uid: str, nodes: list[Node]) -> str:
        label = f"index arithmetic\n{len(nodes)} nodes: {op_summary(nodes)}"
        tip = [f"index arithmetic (computed from sizes, integer or bool inputs and literals): {len(nodes)} nodes",
               ", ".join(n.name for n in nodes[:40]) + (", ..." if len(nodes) > 40 else "")]
        where = span(nodes)
        if where:
            tip.append("source: " + where)
        return (f'"{uid}" [label="{_escape(label)}", shape=note, fillcolor="#f2f2f2", '
                f'tooltip="{_escape(_clip(chr(10).join(tip)))}"];')


def _clusters(at: tuple[str, ...], contents: Mapping[tuple[str, ...], list[str]], classes: Mapping,
              first: Mapping[tuple[str, ...], int], indent: str) -> list[str]:
    """The statements of cluster ``at`` and, nested, of every cluster below it, in schedule order."""
    lines = [indent + s for s in contents.get(at, [])]
    children = sorted({c[: len(at) + 1] for c in contents if len(c) > len(at) and c[: len(at)] == at},
                      key=lambda c: first.get(c, 0))
    for child in children:
        title = dotted(child) + (f" ({classes[child]})" if child in classes else "")
        lines.append(f'{indent}subgraph "cluster_{_escape(dotted(child))}" {{')
        lines.append(f'{indent}  label="{_escape(title)}"; style="rounded"; color="#aaaaaa"; fontsize=11;')
        lines += _clusters(child, contents, classes, first, indent + "  ")
        lines.append(indent + "}")
    return lines


def _clip(text: str) -> str:
    return text if len(text) <= _TOOLTIP_LIMIT else text[: _TOOLTIP_LIMIT - 3] + "..."


def render_dot(source: str, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``path`` (.dot, .svg or .png). Without ``dot``, write the .dot and say how to render it."""
    path = Path(path)
    fmt = fmt or (path.suffix.lstrip(".") if path.suffix in (".svg", ".png", ".pdf") else None)
    dot_path = path.with_suffix(".dot")
    dot_path.parent.mkdir(parents=True, exist_ok=True)
    dot_path.write_text(source)
    if fmt is None:
        return dot_path
    exe = shutil.which("dot")
    if exe is None:
        print(f"chunkc: Graphviz 'dot' is not installed; wrote {dot_path}. "
              f"Render it with: apt-get install graphviz && dot -T{fmt} {dot_path} -o {path}")
        return dot_path
    subprocess.run([exe, f"-T{fmt}", str(dot_path), "-o", str(path)], check=True, timeout=300)
    return path
