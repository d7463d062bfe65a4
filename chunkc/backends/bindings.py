"""Size variables bound at the top of a call from the input shapes (``L = x.shape[1]``)."""

from __future__ import annotations

from typing import Mapping

import sympy

from ..errors import ChunkcError
from ..ir.graph import Graph
from .pyexpr import SizeRenderer


def size_bindings(graph: Graph, params: list[str], symbols: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(symbol, source text)`` binding each symbol from an input shape, in dependency order.

    Data-dependent sizes (``Graph.data_dependent_sizes``) are left out: the generator binds each
    one right after the node that produces it."""
    known: dict[str, str] = {}
    order: list[tuple[str, str]] = []
    axes = [(param, k, s) for v, param in zip(graph.inputs, params) for k, s in enumerate(v.shape)
            if not isinstance(s, int)]
    for param, k, s in axes:  # direct bindings first: L = x.shape[1]
        if s.is_Symbol and s.name not in known:
            known[s.name] = f"{param}.shape[{k}]"
            order.append((s.name, known[s.name]))
    progress = True
    while progress:
        progress = False
        for param, k, s in axes:
            unknown = [x for x in s.free_symbols if x.name not in known]
            if len(unknown) != 1:
                continue
            target = unknown[0]
            dim = sympy.Symbol("_chunkc_dim", integer=True, positive=True)
            solutions = [sol for sol in sympy.solve(sympy.Eq(s, dim), target) if not sol.free_symbols - (s.free_symbols | {dim})]
            if not solutions:
                continue
            renderer = SizeRenderer({**{n: symbols[n] for n in known}, dim.name: f"{param}.shape[{k}]"})
            try:
                text = renderer.render(solutions[0])
            except ChunkcError:
                continue
            known[target.name] = text
            order.append((target.name, text))
            progress = True
    missing = sorted(set(symbols) - set(known) - set(graph.data_dependent_sizes()))  # those: bound by their node
    if missing:
        raise ChunkcError(f"graph {graph.name}: size(s) {', '.join(missing)} cannot be determined from the input "
                          f"shapes ({', '.join(f'%{v.name}: {v.type}' for v in graph.inputs)})")
    return order


__all__ = ["size_bindings"]
