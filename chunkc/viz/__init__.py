"""Pictures of graphs and plans: Graphviz dumps (:mod:`.dot`) and memory timelines (:mod:`.plot`).

Both forward lazily, so importing ``chunkc.viz`` loads neither Matplotlib nor Graphviz.
"""

from __future__ import annotations


def plot_memory(graph, plan=None, sizes=None, path="memory.png", **options):
    """The memory timeline before and after chunking, saved as PNG (see :mod:`.plot`)."""
    from .plot import plot_memory as _impl
    return _impl(graph, plan=plan, sizes=sizes, path=path, **options)


def to_dot(graph, plan=None, **options) -> str:
    """Graphviz source of ``graph``, each chunk region a cluster (see :mod:`.dot`)."""
    from .dot import to_dot as _impl
    return _impl(graph, plan=plan, **options)


__all__ = ["plot_memory", "to_dot"]
