"""Graphviz dumps: the graph, each chunk region as a cluster, nodes coloured by memory.

``to_dot`` returns DOT source (no Graphviz needed); ``render_dot`` writes it and,
where Debian's ``dot`` is installed, renders SVG or PNG beside it — otherwise it
says how to render the ``.dot`` file.  Labels are built from sanitized names
and types and escaped, so no text from a model can break the DOT syntax.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Mapping

from ..ir.graph import Graph, Value
from ..ir.sizes import evaluate

_PALETTE = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c"]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _bytes_label(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def to_dot(graph: Graph, plan=None, sizes: Mapping[str, int] | None = None, max_nodes: int = 4000) -> str:
    """DOT source for ``graph`` (``plan.graph`` when a plan is given)."""
    if plan is not None:
        graph = plan.graph
        sizes = sizes or plan.sizes
    sizes = dict(sizes or {})
    known = graph.symbols() <= set(sizes)

    def nbytes(v: Value) -> int | None:
        return v.type.nbytes(sizes) if known else None

    sizes_of = {n.name: sum(nbytes(o) or 0 for o in n.outputs) for n in graph.nodes}
    biggest = max(sizes_of.values(), default=0) or 1
    region_of = plan.region_of() if plan is not None else {}
    lines = [f'digraph "{_escape(graph.name)}" {{',
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=10];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9];',
             '  edge [color="#777777", arrowsize=0.6];']
    for v in graph.inputs:
        lines.append(f'  "v_{v.name}" [label="{_escape(v.name)}\\n{_escape(str(v.type))}", shape=oval, fillcolor="#fff2cc"];')
    clusters: dict[int, list[str]] = {}
    for node in graph.nodes[:max_nodes]:
        b = sizes_of[node.name]
        color = _PALETTE[min(len(_PALETTE) - 1, int(len(_PALETTE) * b / (biggest + 1)))]
        font = "white" if color in _PALETTE[5:] else "black"
        mem = f"\\n{_bytes_label(b)}" if known else ""
        label = f"{_escape(node.name)}\\n{_escape(node.op.name)} {_escape(str(node.outputs[0].type))}{mem}"
        stmt = f'  "n_{node.name}" [label="{label}", fillcolor="{color}", fontcolor="{font}"];'
        if node.name in region_of:
            clusters.setdefault(region_of[node.name], []).append(stmt)
        else:
            lines.append(stmt)
    for k, stmts in clusters.items():
        region = plan.regions[k]
        chunk = region.chunk_size
        desc = f"region {k}: chunk {evaluate(chunk, sizes) if known else chunk} of {evaluate(region.extent, sizes) if known else region.extent}"
        lines.append(f'  subgraph "cluster_{k}" {{')
        lines.append(f'    label="{_escape(desc)}"; style="dashed,filled"; fillcolor="#fdf0e6"; color="#e6550d";')
        lines.extend("  " + s for s in stmts)
        lines.append("  }")
    shown = {n.name for n in graph.nodes[:max_nodes]}
    for node in graph.nodes[:max_nodes]:
        for v in dict.fromkeys(node.inputs):
            if v.is_constant:
                continue
            src = f"v_{v.name}" if v.producer is None else f"n_{v.producer.name}"
            if v.producer is None or v.producer.name in shown:
                lines.append(f'  "{src}" -> "n_{node.name}";')
    for k, v in enumerate(graph.outputs):
        lines.append(f'  "out_{k}" [label="output {k}\\n{_escape(str(v.type))}", shape=oval, fillcolor="#d9ead3"];')
        src = f"v_{v.name}" if v.producer is None else f"n_{v.producer.name}"
        lines.append(f'  "{src}" -> "out_{k}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


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
