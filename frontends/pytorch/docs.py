"""Generated parts of docs/frontend_torch.md: the supported ATen ops, by family, and
the ops the decomposition table keeps whole.

    python -m frontends.pytorch.docs            # rewrite the generated blocks in place
    python -m frontends.pytorch.docs --check    # exit 1 when the doc is out of date
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from .converters import CONVERTERS
from .decompositions import preserved_ops

DOC = Path(__file__).resolve().parents[2] / "docs" / "frontend_torch.md"
_BEGIN = "<!-- generated:{name} (python -m frontends.pytorch.docs) -->\n"
_END = "<!-- end:{name} -->"


def supported_ops_markdown() -> str:
    """One line per converter family: ``- **shape**: `aten.cat`, `aten.view`, ...``."""
    families: dict[str, list[str]] = defaultdict(list)
    for packet, fn in CONVERTERS.items():
        families[fn.__module__.rsplit(".", 1)[-1]].append(packet._qualified_op_name.replace("::", "."))
    total = sum(len(v) for v in families.values())
    lines = [f"{total} ATen operators (overload packets; every overload of each is handled):", ""]
    for family in sorted(families):
        ops = ", ".join(f"`{op}`" for op in sorted(families[family]))
        lines.append(f"- **{family}** ({len(families[family])}): {ops}")
    return "\n".join(lines) + "\n"


def preserved_ops_markdown() -> str:
    by_reason: dict[str, list[str]] = defaultdict(list)
    for p in preserved_ops():
        by_reason[p.reason].append(f"`{p.op}`")
    lines = ["| kept whole | why |", "|---|---|"]
    lines += [f"| {', '.join(ops)} | {reason} |" for reason, ops in by_reason.items()]
    return "\n".join(lines) + "\n"


GENERATED = {"supported-ops": supported_ops_markdown, "preserved-ops": preserved_ops_markdown}


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, fn in GENERATED.items():
        begin, end = _BEGIN.format(name=name), _END.format(name=name)
        i, j = text.find(begin), text.find(end)
        if i < 0 or j < i:
            raise ValueError(f"{DOC.name} has no generated block {name!r} ({begin.strip()} ... {end})")
        text = text[:i + len(begin)] + fn() + text[j:]
    return text


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is out of date: run python -m frontends.pytorch.docs")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
