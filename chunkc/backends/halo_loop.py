"""Emitting a chunk loop whose values hold rows beyond their chunk (halo regions).

A region in which a window op (convolution, pooling) reads overlapping rows
(chunkc.passes.halo) is emitted like any other loop, plus:

* at the top of each iteration, for each value with a halo, the rows it holds:
  ``h_rows = max(0, start - 1), min(64, stop + 1)``, one tuple for all the values
  that hold the same rows; region inputs are sliced on those rows (views);
* a node whose output rows need other rows of an input than the input holds
  reads ``rt.take_rows(x_chunk, axis, have, need, size, fill)``: a view of the
  rows it needs, padded with the op's padding value at the image border, and a
  window op runs with zero padding along the chunk axis (its loop attributes,
  chunkc.passes.plan_index.loop_attrs);
* an output buffer is written in its core rows only, and an accumulator merges the
  core rows of its sliced inputs (``RegionView.reads_core``): their halo rows belong
  to the neighbouring chunks.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from ..ir.graph import Value
from ..passes.halo import input_halo
from ..passes.plan_index import RegionView
from .loop_scope import START, STOP

if TYPE_CHECKING:  # (the generator calls this module)
    from .codegen import Generator


def _scaled(unit: int, var: str) -> str:
    return var if unit == 1 else f"{unit} * {var}"


def _affine(mult: int, base: str, add: int) -> str:
    """``mult * base + add``, written plainly."""
    text = base if mult == 1 else f"{mult} * {base}"
    return text if add == 0 else f"{text} + {add}" if add > 0 else f"{text} - {-add}"


def _fill(value: float) -> str:
    return repr(float(value)) if value == value and abs(value) != float("inf") else f"float('{value}')"


def emit_halo_region(gen: Generator, view: RegionView) -> None:
    nodes, chunk, outputs, sliced = view.nodes, view.chunk, view.outputs, view.sliced
    halos = ", ".join(f"%{v.name} ({c.halo_lo}, {c.halo_hi})" for v, c in chunk.items() if c.halo_lo or c.halo_hi)
    axes = ", ".join(f"%{v.name} axis {chunk[v].axis}" for v in sliced) or "no sliced input"
    gen.open_region(view, f"sliced: {axes}; rows beyond the chunk: {halos}")

    def size(v: Value) -> str:
        return gen.sizes.render(v.shape[chunk[v].axis])

    def base_name(v: Value) -> str:
        return gen.names.get(v) or gen.constants[v]

    bounds: dict[Value, tuple[str, str]] = {}  # value -> (first row, stop row) it holds, as source text
    # values holding the same rows share one (first, stop) tuple: a tuple per value would be
    # Python objects per iteration (and ints past the small-int cache) that tracemalloc counts
    held: dict[str, list[Value]] = {}  # the rows' source text -> the values that hold them
    for v, c in chunk.items():
        lo, hi = _scaled(c.unit, START), _scaled(c.unit, STOP)
        if c.halo_lo or c.halo_hi:
            held.setdefault(f"max(0, {_affine(1, lo, -c.halo_lo)}), min({size(v)}, {_affine(1, hi, c.halo_hi)})",
                            []).append(v)
        else:
            bounds[v] = (lo, hi)
    claimed: list[str] = []
    for text, values in held.items():
        name = gen.namer.claim(f"{base_name(values[0])}_rows")
        claimed.append(name)
        gen.emit(f"{name} = {text}  # rows of {', '.join(f'%{v.name}' for v in values)} held in this iteration")
        for v in values:
            gen.held_rows[v] = name
            bounds[v] = (f"{name}[0]", f"{name}[1]")

    def rows(v: Value) -> str:
        return gen.held_rows.get(v) or f"({bounds[v][0]}, {bounds[v][1]})"

    gen.bind_loop_values(view, lambda v: f"{gen.expr_of(v)}[{':, ' * chunk[v].axis}{bounds[v][0]}:{bounds[v][1]}]")
    out_set = set(outputs)
    dying = view.inner_deaths()
    in_loop = set(nodes)
    for k, node in enumerate(nodes):
        out = node.outputs[0] if node.outputs else None
        crop = None
        padded: list[str] = []  # padded copies that replace a dying chunk, dropped after the node
        for i, v in enumerate(node.inputs):
            if view.reads_core(node, i):
                c = chunk[v]
                core = f"({_scaled(c.unit, START)}, {_scaled(c.unit, STOP)})"
                gen.arg_exprs[(node, i)] = gen.dialect.take_rows(
                    f"{gen.expr_of(v)}, {c.axis}, {rows(v)}, {core}, {size(v)}")
                continue
            source = view.row_source(node, i)
            if source is None or out not in chunk:
                continue
            o0, o1 = bounds[out]
            w = source.window
            if w is not None:
                need = (_affine(w.stride, o0, -w.pad_lo), _affine(w.stride, o1, w.extent - w.pad_lo - w.stride))
            else:
                r = Fraction(source.ratio)
                if r.denominator == 1:
                    need = (_affine(r.numerator, o0, 0), _affine(r.numerator, o1, 0))
                else:
                    q = r.denominator
                    need = (f"{o0} // {q}", f"-(-{o1} // {q})")
                    if chunk[out].halo_lo % q or chunk[out].halo_hi % q:
                        crop = (f"({q} * ({need[0]}), {q} * ({need[1]}))", rows(out))
            if w is None and input_halo(source, *chunk[out].halo) == chunk[v].halo:
                continue  # it holds exactly the rows the node needs
            args = f"{gen.expr_of(v)}, {chunk[v].axis}, {rows(v)}, ({need[0]}, {need[1]}), {size(v)}"
            take = gen.dialect.take_rows(args + (f", {_fill(w.fill)}" if w and w.fill else ""))
            if w is not None and v in dying[k] and v.producer in in_loop and v not in out_set \
                    and node.inputs.count(v) == 1:
                # the node is the chunk's last reader: at the border the padded copy replaces
                # it, so it is dropped before the node runs (inner iterations read a view)
                t = gen.namer.claim(f"{base_name(v)}_padded")
                gen.emit(f"{t} = {take}")
                gen.emit(f"del {gen.inner.get(v, gen.names.get(v))}")
                dying[k] = [u for u in dying[k] if u is not v]
                padded.append(t)
                gen.arg_exprs[(node, i)] = t
            else:
                gen.arg_exprs[(node, i)] = take
        targets = [gen.inner.get(o, gen.names[o]) for o in node.outputs]
        gen._node_statement(node, targets)
        if padded:
            gen.emit(f"del {', '.join(padded)}")
            for t in padded:
                gen.namer.release(t)
        if crop is not None:  # it computed more rows than it holds (a ratio 1/n)
            t = targets[0]
            gen.emit(f"{t} = {gen.dialect.take_rows(f'{t}, {chunk[out].axis}, {crop[0]}, {crop[1]}, {size(out)}')}")
        for o in node.outputs:
            if o in view.accumulators:
                gen.emit_merge(view, o)
            elif o in out_set and o not in view.reuse:
                _write_core(gen, view, o, bounds)
        if k == len(nodes) - 1:
            for o in view.reuse:
                _write_core(gen, view, o, bounds)
        dead = [gen.inner.get(v, gen.names.get(v)) for v in dying[k]]
        if dead:
            gen.emit(f"del {', '.join(dead)}")
    gen.close_region(view)
    for name in claimed:
        gen.namer.release(name)
    gen.held_rows.clear()
    gen.arg_exprs.clear()


def _write_core(gen: Generator, view: RegionView, o: Value, bounds) -> None:
    """Write the chunk's own rows of output ``o`` into its buffer."""
    c = view.chunk[o]
    lo, hi = _scaled(c.unit, START), _scaled(c.unit, STOP)
    target = f"{gen.names[o]}[{':, ' * c.axis}{lo}:{hi}]"
    value = gen.inner[o]
    if c.halo_lo or c.halo_hi:
        size = gen.sizes.render(o.shape[c.axis])
        value = gen.dialect.take_rows(f"{value}, {c.axis}, {gen.held_rows[o]}, ({lo}, {hi}), {size}")
    gen.emit(f"{target} = {value}")
