"""Pictures of graphs and plans: Graphviz dumps (:mod:`.dot`), memory timelines (:mod:`.plot`)
and the IR before and after a pass side by side (:mod:`.diff`).

They forward lazily, so importing ``chunkc.viz`` loads neither Matplotlib nor Graphviz.
"""

from __future__ import annotations


def plot_memory(graph, plan=None, sizes=None, path="memory.png", **options):
    """The memory timeline before and after chunking, saved as PNG (see :mod:`.plot`)."""
    from .plot import plot_memory as _impl
    return _impl(graph, plan=plan, sizes=sizes, path=path, **options)


def to_dot(graph, plan=None, **options) -> str:
    """Graphviz source of ``graph``, each chunk region a cluster; ``depth=K``: one box per
    module K levels down (see :mod:`.dot`)."""
    from .dot import to_dot as _impl
    return _impl(graph, plan=plan, **options)


def diff_ir(before, after, **options) -> str:
    """The text forms of two graphs side by side, aligned by name (see :mod:`.diff`)."""
    from .diff import diff_ir as _impl
    return _impl(before, after, **options)


__all__ = ["plot_memory", "to_dot", "diff_ir"]
