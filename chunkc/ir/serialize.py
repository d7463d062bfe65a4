"""Save and load a graph: the text form in ``path``, the weights in ``path + ".npz"``.

The ``.npz`` holds one array per constant that has data, keyed by the
constant's name (names are identifiers), written with ``np.savez`` and read
with ``allow_pickle=False``: loading never runs code from the file.

A constant of a type NumPy holds through ``ml_dtypes`` (bf16, the float8 and
float4 formats, the sub-byte integers) is stored widened to a NumPy type that
holds it exactly (f32, i8 or u8: ``DType.wide``); the text keeps its own type
and a comment at the top of the file says so.  :func:`load` casts it back.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from ..errors import IRError
from .graph import Graph
from .parser import attach_weights, parse_graph
from .printer import print_graph


def weights_path(path) -> Path:
    return Path(os.fspath(path) + ".npz")


def write_weights(graph: Graph, npz_path, only: Collection[str] | None = None) -> list[str]:
    """Write ``graph``'s constants' data (those named in ``only``, if given) to ``npz_path``;
    returns the constants stored widened."""
    arrays: dict[str, np.ndarray] = {}
    widened: list[str] = []
    for c in graph.constants:
        if c.data is None or (only is not None and c.name not in only):
            continue
        data = np.asarray(c.data)
        if c.dtype.from_ml_dtypes:
            data = data.astype(c.dtype.wide)
            widened.append(c.name)
        elif data.dtype.hasobject:
            raise IRError(f"constant %{c.name} holds Python objects ({data.dtype}); only numeric data can be saved")
        arrays[c.name] = data
    with open(npz_path, "wb") as f:
        np.savez(f, **arrays)
    return widened


def save(graph: Graph, path) -> None:
    """Write ``graph`` as text to ``path`` and its constants' data to ``path + ".npz"``."""
    widened = write_weights(graph, weights_path(path))
    header = f"# chunkc IR; constant data in {weights_path(path).name}\n"
    if widened:
        header += "# constants stored widened (f32, i8 or u8) in the .npz: " + ", ".join("%" + n for n in widened) + "\n"
    Path(path).write_text(header + print_graph(graph))


def load(path) -> Graph:
    """Read a graph written by :func:`save` (text in ``path``, data in ``path + ".npz"``)."""
    text = Path(path).read_text()
    wpath = weights_path(path)
    if not wpath.exists():
        raise IRError(f"{path}: its constant data {wpath} is missing; "
                      "use chunkc.parse_graph(text) for a shape-only graph")
    graph = parse_graph(text)
    with np.load(wpath, allow_pickle=False) as npz:
        weights = {name: npz[name] for name in npz.files}
    for c in graph.constants:
        if c.dtype.from_ml_dtypes and c.name in weights:
            weights[c.name] = weights[c.name].astype(c.dtype.numpy)
    attach_weights(graph, weights)
    return graph


__all__ = ["save", "load", "weights_path", "write_weights"]
