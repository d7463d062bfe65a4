"""The IR before and after a pass, side by side.

Both graphs are printed in the text form and their lines aligned by what they
define (a node line by its first result's name, a constant by its name), so a
node whose attributes or types a pass changed sits beside its old self::

    print(diff_ir(before, after))          # side by side, 3 lines of context around each change
    open("d.html", "w").write(diff_html(before, after))   # the same rows as an HTML table

Row markers: ``|`` changed, ``<`` removed, ``>`` added, ``~`` moved (the same
line, elsewhere in the schedule: shown where it leaves and where it arrives),
blank for unchanged.  ``#@`` source comments are left out unless
``sources=True``.  From the shell: ``chunkc diff before.cir after.cir`` or
``chunkc diff model.cir -p 'dce,autochunk{budget=0.3}'`` (docs/passes.md).
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

from ..ir.graph import Graph
from ..ir.printer import print_graph

_DEFINES = re.compile(r"\s*(?:const\s+)?%([A-Za-z_][A-Za-z0-9_]*)")
MARKS = {"same": " ", "changed": "|", "removed": "<", "added": ">", "moved": "~"}


@dataclass(frozen=True)
class Row:
    kind: str  # a key of MARKS
    before: str | None  # the line on the left, or None
    after: str | None  # the line on the right, or None


def _lines(graph: Graph, sources: bool) -> list[str]:
    lines = print_graph(graph).splitlines()
    return lines if sources else [line.split("  #@ ", 1)[0] for line in lines]


def _key(line: str) -> str:
    m = _DEFINES.match(line)
    return "%" + m.group(1) if m else line.strip()


def align(before: Graph, after: Graph, sources: bool = False) -> list[Row]:
    """The two text forms as aligned rows (see the module docstring)."""
    a, b = _lines(before, sources), _lines(after, sources)
    ka, kb = [_key(x) for x in a], [_key(x) for x in b]
    matcher = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
    opcodes = matcher.get_opcodes()
    unmatched_a = {ka[i] for tag, i1, i2, _, _ in opcodes if tag != "equal" for i in range(i1, i2)}
    unmatched_b = {kb[j] for tag, _, _, j1, j2 in opcodes if tag != "equal" for j in range(j1, j2)}
    moved = (unmatched_a & unmatched_b) - {"}", "return"}
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            rows += [Row("same" if a[i] == b[j] else "changed", a[i], b[j]) for i, j in zip(range(i1, i2), range(j1, j2))]
            continue
        left = [Row("moved" if ka[i] in moved else "removed", a[i], None) for i in range(i1, i2)]
        right = [Row("moved" if kb[j] in moved else "added", None, b[j]) for j in range(j1, j2)]
        rows += left + right
    return rows


def summary(before: Graph, after: Graph, rows: list[Row]) -> str:
    counts = {k: sum(r.kind == k for r in rows) for k in ("changed", "removed", "added")}
    moved = sum(r.kind == "moved" and r.after is not None for r in rows)
    return (f"# {before.name}: {len(before.nodes)} nodes before, {len(after.nodes)} after; "
            f"{counts['changed']} changed, {counts['removed']} removed, {counts['added']} added, {moved} moved")


def _fit(text: str | None, width: int) -> str:
    text = text or ""
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def diff_ir(before: Graph, after: Graph, context: int | None = 3, width: int = 160, sources: bool = False) -> str:
    """Side-by-side text: ``context`` unchanged rows around each change (None: every row)."""
    rows = align(before, after, sources)
    side = max(20, (width - 3) // 2)
    near = [False] * len(rows)
    for i, r in enumerate(rows):
        if r.kind != "same":
            lo = 0 if context is None else max(0, i - context)
            hi = len(rows) if context is None else min(len(rows), i + context + 1)
            for k in range(lo, hi):
                near[k] = True
    if context is None:
        near = [True] * len(rows)
    out = [summary(before, after, rows), f"{_fit('before', side)}   after"]
    skipped = 0
    for r, show in zip(rows, near):
        if not show:
            skipped += 1
            continue
        if skipped:
            out.append(f"  ... {skipped} unchanged line{'s' if skipped != 1 else ''} ...")
            skipped = 0
        out.append(f"{_fit(r.before, side)} {MARKS[r.kind]} {r.after or ''}".rstrip())
    if skipped:
        out.append(f"  ... {skipped} unchanged line{'s' if skipped != 1 else ''} ...")
    return "\n".join(out) + "\n"


_COLORS = {"same": "#ffffff", "changed": "#fff3bf", "removed": "#ffd8d8", "added": "#d8f5d8", "moved": "#dde8ff"}


def diff_html(before: Graph, after: Graph, sources: bool = False, title: str = "chunkc IR diff") -> str:
    """Every row, side by side, as a self-contained HTML page (the text is escaped)."""
    rows = align(before, after, sources)
    cells = []
    for r in rows:
        color = _COLORS[r.kind]
        cells.append(f'<tr style="background:{color}"><td>{html.escape(r.before or "")}</td>'
                     f'<td class="m">{html.escape(MARKS[r.kind])}</td><td>{html.escape(r.after or "")}</td></tr>')
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif} table{border-collapse:collapse;font-family:monospace;"
            "font-size:12px} td{white-space:pre;padding:0 6px;vertical-align:top} td.m{color:#555}</style>"
            f"</head><body><p>{html.escape(summary(before, after, rows)[2:])}</p>\n<table>\n"
            "<tr><th>before</th><th></th><th>after</th></tr>\n" + "\n".join(cells) + "\n</table></body></html>\n")


__all__ = ["Row", "align", "diff_ir", "diff_html", "summary", "MARKS"]
